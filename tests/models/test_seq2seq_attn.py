"""Seq2SeqAttn (the Mirror paper's attention LSTM baseline): encoder input, masking, learning, decoding, saving."""

from collections.abc import Iterator
from dataclasses import replace
from itertools import pairwise

import pytest
import torch

from multiref.data.pairs import SPECIAL_TOKENS
from multiref.errors import ConfigError
from multiref.models import registry
from multiref.models.beam import hypotheses_to_ids
from multiref.models.data import Example, collate
from multiref.models.hred import parameter_count
from multiref.models.seq2seq_attn import Seq2SeqAttn, Seq2SeqAttnConfig

PAD, BOS, EOS, SEP = 0, 1, 2, 4
V = 14
WORDS = range(5, V)  # tokens of the toy tasks


def tiny(**fields: object) -> Seq2SeqAttn:
    torch.manual_seed(0)
    spec = {"embedding_dim": 8, "hidden": 16, "layers": 2, "dropout": 0.0, "beam": 4, "min_len": 0, **fields}
    return Seq2SeqAttn(Seq2SeqAttnConfig(vocab_size=V, **spec))  # type: ignore[arg-type]


def triple(c: list[int], x: list[int], y: list[int]) -> Example:
    return Example(((BOS, *c, EOS), (BOS, *x, EOS)), (0, 1), (BOS, *y, EOS), 0)


def copy_examples(n: int, seed: int) -> list[Example]:
    """Respond with the query: y = x (c is noise)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        c, x = (torch.randint(5, V, (int(torch.randint(1, 4, (1,), generator=g)),), generator=g).tolist() for _ in range(2))
        out.append(triple(c, x, x))
    return out


@pytest.fixture(scope="module")
def copier() -> Iterator[tuple[Seq2SeqAttn, list[float]]]:
    """A tiny model trained for 300 steps on the copy task, and its losses."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = tiny(hidden=32, embedding_dim=16, layers=1)
        opt = torch.optim.Adam(model.parameters(), lr=3e-2)
        data = copy_examples(512, seed=1)
        losses = []
        for step in range(300):
            batch = collate(data[(step * 16) % 512 : (step * 16) % 512 + 16], PAD)
            loss = model(*batch)["loss"]
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0)
            opt.step()
            losses.append(loss.item())
        yield model.eval(), losses
    finally:
        torch.set_num_threads(threads)


def test_encoder_input_joins_the_turns_with_the_separator() -> None:
    torch.set_num_threads(1)
    assert SPECIAL_TOKENS[SEP] == "<sep>" and Seq2SeqAttnConfig(vocab_size=V).sep_id == SEP
    model = tiny()
    examples = [triple([5, 6], [7], [8]), Example(((BOS, 9, 10, EOS),), (1,), (BOS, 8, EOS), 0)]  # a triple; a backward-model example
    x, *_ = collate(examples, PAD)
    assert x.shape == (2, 2, 4)  # the second example has an all-padding turn
    src, lengths = model.source(x)
    assert src.tolist() == [[5, 6, SEP, 7], [9, 10, PAD, PAD]] and lengths.tolist() == [4, 2]


def test_defaults_are_the_mirror_sizes_and_the_parameters_add_up() -> None:
    torch.set_num_threads(1)
    cfg = Seq2SeqAttnConfig(vocab_size=10)
    assert (cfg.layers, cfg.hidden, cfg.embedding_dim, cfg.dropout, cfg.beam, cfg.min_len) == (2, 1000, 200, 0.3, 10, 2)
    e, h, v = 200, 1000, 10
    expected = (
        2 * v * e  # source and target embeddings
        + 4 * h * (e + h) + 8 * h + 4 * h * (2 * h) + 8 * h  # 2-layer encoder LSTM
        + 4 * h * (e + 2 * h) + 8 * h + 4 * h * (2 * h) + 8 * h  # 2-layer decoder LSTM, input feeding
        + h * h + 2 * h * h  # W_a and W_o, no biases
        + h * v + v  # generator
    )
    assert parameter_count(Seq2SeqAttn(cfg)) == expected
    shared = Seq2SeqAttn(replace(cfg, share_embeddings=True))
    assert parameter_count(shared) == expected - v * e and shared.src_embedding is shared.tgt_embedding


def test_loss_ignores_padding_and_an_empty_source_trains() -> None:
    torch.set_num_threads(1)
    model = tiny().eval()
    examples = [triple([5, 6], [7], [8, 9]), triple([10], [11, 12], [13])]
    out = model(*collate(examples, PAD))
    assert int(out["n_tokens"]) == 3 + 2
    # More padding (a longer turn elsewhere in the batch, an extra padding turn) must change nothing.
    longer = [*examples, Example(((BOS, 5, 6, 7, 8, 9, 10, EOS), (BOS, 5, EOS), (BOS, 6, EOS)), (0, 1, 0), (BOS, 5, 6, 7, 8, EOS), 1)]
    ll = model.log_likelihood(*collate(longer, PAD))[:2]
    assert torch.allclose(ll, -out["token_nll"].sum(1), atol=1e-5)
    model.train()
    empty = [Example(((),), (0,), (BOS, 5, EOS), 0), triple([5], [6], [7])]  # a context with no words at all
    loss = model(*collate(empty, PAD))["loss"]
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_loss_decreases_on_a_copy_task(copier: tuple[Seq2SeqAttn, list[float]]) -> None:
    torch.set_num_threads(1)
    model, losses = copier
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10 / 4
    test = copy_examples(20, seed=7)
    x, x_floor, _, y_floor = collate(test, PAD)
    ids = model.generate(x, x_floor, y_floor, max_len=8)
    correct = sum(row[: len(e.response) - 1] == list(e.response[1:]) for row, e in zip(ids.tolist(), test, strict=True))
    assert correct >= 15


def test_generate_with_beam_1_is_greedy(copier: tuple[Seq2SeqAttn, list[float]]) -> None:
    torch.set_num_threads(1)
    trained, _ = copier
    for model in (trained, tiny().eval()):  # a trained model, and an untrained one that rarely says </s>
        one = Seq2SeqAttn(replace(model.cfg, beam=1, min_len=0)).eval()
        one.load_state_dict(model.state_dict())
        x, x_floor, _, y_floor = collate(copy_examples(12, seed=3), PAD)
        assert torch.equal(one.generate(x, x_floor, y_floor, max_len=6), one.greedy(x, x_floor, y_floor, max_len=6))


@pytest.mark.parametrize("trained", [True, False])
def test_n_best_is_sorted_and_scored_by_log_likelihood(copier: tuple[Seq2SeqAttn, list[float]], trained: bool) -> None:
    torch.set_num_threads(1)
    base = copier[0] if trained else tiny().eval()
    model = Seq2SeqAttn(replace(base.cfg, min_len=2)).eval()
    model.load_state_dict(base.state_dict())
    examples = copy_examples(5, seed=11)
    x, x_floor, _, y_floor = collate(examples, PAD)
    lists = model.n_best(x, x_floor, y_floor, n=4, max_len=6)
    assert len(lists) == 5
    for e, hyps in zip(examples, lists, strict=True):
        assert len(hyps) == 4 and len({h.ids for h in hyps}) == 4
        assert all(a.logprob >= b.logprob for a, b in pairwise(hyps))
        assert all(len(h.ids) >= 2 for h in hyps if h.finished)
        # A finished hypothesis scores <s> ids </s>; a cut one, its tokens only.
        scored = [Example(e.context, e.floors, (BOS, *h.ids, *([EOS] if h.finished else [])), e.response_floor) for h in hyps]
        ll = model.log_likelihood(*collate(scored, PAD))
        assert torch.allclose(ll, torch.tensor([h.logprob for h in hyps]), atol=1e-5)
    if trained:  # the copy model finishes most of its best hypotheses
        assert sum(hyps[0].finished for hyps in lists) >= 4
    ids = hypotheses_to_ids([hyps[0] for hyps in lists], EOS, PAD)
    assert model.cfg.beam == 4 and torch.equal(ids, model.generate(x, x_floor, y_floor, max_len=6))  # the same search


@pytest.mark.parametrize("fields", [{"bidirectional_encoder": True}, {"share_embeddings": True, "layers": 1}])
def test_variants_and_registry_round_trip(tmp_path, fields: dict) -> None:
    torch.set_num_threads(1)
    spec = {"kind": "seq2seq_attn", "embedding_dim": 8, "hidden": 16, "layers": 2, "dropout": 0.1, **fields}
    torch.manual_seed(0)
    model = registry.build("s2s", spec, V, {"pad_id": PAD, "bos_id": BOS, "eos_id": EOS}).eval()
    assert isinstance(model, Seq2SeqAttn) and model.cfg.bidirectional_encoder == fields.get("bidirectional_encoder", False)
    batch = collate([triple([5, 6], [7], [8, 9]), triple([10], [11, 12, 13], [5])], PAD)
    registry.save(model, "s2s", tmp_path / "model.pt", {"vocab_sha256": "abc"})
    loaded, saved = registry.load(tmp_path / "model.pt", "abc")
    assert saved["kind"] == "seq2seq_attn" and loaded.cfg == model.cfg
    assert torch.equal(loaded.log_likelihood(*batch), model.log_likelihood(*batch))
    x, x_floor, _, y_floor = batch
    assert torch.equal(loaded.generate(x, x_floor, y_floor, max_len=5), model.generate(x, x_floor, y_floor, max_len=5))


@pytest.mark.parametrize(
    ("fields", "message"),
    [({"bidirectional_encoder": True, "hidden": 15}, "even hidden size"), ({"dropout": 1.0}, "dropout"),
     ({"layers": 0}, "layers"), ({"sep_id": V}, "sep_id")],
)
def test_bad_configuration_names_the_field(fields: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=f"model 's2s'.*{message}"):
        registry.build("s2s", {"kind": "seq2seq_attn", "hidden": 16, **fields}, V, {"pad_id": PAD, "bos_id": BOS, "eos_id": EOS})
