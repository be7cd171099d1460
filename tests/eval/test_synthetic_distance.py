"""log q(y | c) of each model kind, and the exact distance to a known response distribution."""

import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from hred_helpers import batch

from multiref.data.pairs import Vocabulary
from multiref.eval.synthetic_distance import model_fit, response_log_likelihoods
from multiref.models.data import Example
from multiref.models.hred import HRED, HREDConfig
from multiref.models.mhred import MHRED, MHREDConfig
from multiref.models.vhred import VHRED, VHREDConfig

SMALL = {"vocab_size": 30, "embedding_dim": 8, "floor_dim": 3, "hidden": 12, "dropout": 0.0}


def test_hred_log_likelihood_is_minus_the_summed_token_nll() -> None:
    torch.manual_seed(0)
    model = HRED(HREDConfig(**SMALL)).eval()
    x, x_floor, y, y_floor = batch()
    assert torch.allclose(-model.log_likelihood(x, x_floor, y, y_floor).mean(), model(x, x_floor, y, y_floor)["loss"])
    assert not model.likelihood_needs_samples


def test_mhred_log_likelihood_is_the_exact_marginal_of_its_training_loss() -> None:
    torch.manual_seed(1)
    model = MHRED(MHREDConfig(**SMALL, mechanisms=3, mechanism_dim=4)).train()  # training loss = -log sum_k p_k p(y|k)
    x, x_floor, y, y_floor = batch()
    loss = model(x, x_floor, y, y_floor)["loss"]
    assert (-model.log_likelihood(x, x_floor, y, y_floor).mean()).item() == pytest.approx(loss.item(), rel=1e-5)


def test_latent_models_average_q_over_prior_draws() -> None:
    torch.manual_seed(0)
    model = VHRED(VHREDConfig(**SMALL, latent_dim=4, prior="lgm", components=3)).eval()
    x, x_floor, y, y_floor = batch()
    assert model.likelihood_needs_samples
    torch.manual_seed(7)
    draws = torch.stack([model.log_likelihood(x, x_floor, y, y_floor) for _ in range(5)])
    assert not torch.allclose(draws[0], draws[1])  # z differs between draws
    examples = [Example(tuple(tuple(int(t) for t in u if t != 0) for u in x[i] if (u != 0).any()), tuple(int(f) for f in x_floor[i][: int((x[i] != 0).any(-1).sum())]),
                        tuple(int(t) for t in y[i] if t != 0), int(y_floor[i])) for i in range(x.size(0))]
    got = response_log_likelihoods(model, examples, pad_id=0, samples=5, seed=7)
    want = (torch.logsumexp(draws, 0) - math.log(5)).tolist()
    assert got == pytest.approx(want, rel=1e-5)


class Lookup(torch.nn.Module):
    """A stand-in model whose q(y | c) is a fixed table over response ids."""

    likelihood_needs_samples = False

    def __init__(self, table: dict[tuple[int, ...], float]) -> None:
        super().__init__()
        self.table = table
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def log_likelihood(self, x: torch.Tensor, x_floor: torch.Tensor, y: torch.Tensor, y_floor: torch.Tensor) -> torch.Tensor:
        return torch.tensor([math.log(self.table[tuple(int(t) for t in row if t != 0)]) for row in y])


def test_model_fit_kl_and_valid_mass_by_hand(tmp_path: Path) -> None:
    vocab = Vocabulary(("<pad>", "<unk>", "<s>", "</s>", "hi", "yes", "no", "ok"), (None,) * 4 + (1,) * 4)
    enc = vocab.encode
    pairs = tmp_path / "test.parquet"
    pq.write_table(pa.table({
        "pair_id": [0, 1], "context": [["hi"], ["ok"]], "context_ids": [[enc(["hi"])], [enc(["ok"])]],
        "context_floors": [["A"], ["A"]], "response_ids": [enc(["yes"]), enc(["no"])], "response_floor": ["B", "B"],
    }), pairs)
    truth = {"hi": {"yes": 0.75, "no": 0.25}}  # "ok" has no known distribution: skipped
    q = Lookup({tuple(enc(["yes"])): 0.5, tuple(enc(["no"])): 0.25})
    frame = model_fit(q, pairs, vocab, truth, max_contexts=10)
    assert frame["pair_id"].tolist() == [0]
    kl = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.25)
    assert frame["kl"].iloc[0] == pytest.approx(kl) and frame["valid_mass"].iloc[0] == pytest.approx(0.75)
    assert frame["entropy"].iloc[0] == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
