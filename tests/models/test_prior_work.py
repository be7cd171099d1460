"""The prior-work models of Table 2 (MHRED, HRED-CVaR, VHRED-MBoW) and per-GRU sizes (HRED_l, HRED_xl)."""

import math

import pytest
import torch
from hred_helpers import PAD, batch

from multiref.errors import ConfigError
from multiref.models import registry
from multiref.models.data import Example, NestedExample, collate, nest
from multiref.models.hred import HRED, HREDConfig, parameter_count
from multiref.models.hred_cvar import HREDCVaR, HREDCVaRConfig, cvar_loss
from multiref.models.mhred import MHRED, MHREDConfig
from multiref.models.vhred import VHRED, VHREDConfig
from multiref.models.vhred_mbow import VHREDMBoW, VHREDMBoWConfig, multiple_bow_loss

SMALL = {"vocab_size": 30, "embedding_dim": 8, "floor_dim": 3, "hidden": 12, "dropout": 0.0}


def gru_params(inputs: int, hidden: int, layers: int, directions: int = 1) -> int:
    """Parameters of a PyTorch GRU (two bias vectors per gate group)."""
    total = 0
    for layer in range(layers):
        width = inputs if layer == 0 else hidden * directions
        total += directions * 3 * (hidden * width + hidden * hidden + 2 * hidden)
    return total


@pytest.mark.parametrize(("hidden", "layers"), [(1000, 2), (2000, 2)], ids=["HRED_l", "HRED_xl"])
def test_per_gru_sizes_follow_the_authors_wiring(hidden: int, layers: int) -> None:
    """HRED_l / HRED_xl as the paper's text describes them: every GRU grows; the rest follows."""
    model = HRED(HREDConfig(vocab_size=10000, hidden=hidden, layers=layers))
    h = hidden
    expected = (
        10000 * 200 + gru_params(200, h, layers, 2) + 2 * 30 + (h + 30) * h + h + gru_params(h, h, layers)
        + h * layers * h + layers * h + (200 + h) * 200 + 200 + gru_params(200, h, layers)
        + 2 * (h * h + h) + h + 1 + 2 * h * h + h + h * 200 + 200 + 10000
    )
    assert parameter_count(model) == expected
    # ...which is not the paper's Param column (21.04 / 52.52): docs/fidelity.md, M2.
    assert expected / 2**20 > 2 * {1000: 21.04, 2000: 52.52}[hidden]


def test_sizes_can_differ_per_gru() -> None:
    """A decoder-only 2 x 2000 HRED comes within 1.1 % of HRED_xl's 52.52 (docs/fidelity.md, M2)."""
    model = HRED(HREDConfig(vocab_size=10000, dec_hidden=2000, dec_layers=2))
    assert model.decoder.rnn.hidden_size == 2000 and model.sentence_encoder.rnn.hidden_size == 500
    assert abs(parameter_count(model) / 2**20 - 52.52) / 52.52 < 0.011
    out = HRED(HREDConfig(**SMALL, sent_hidden=5, dial_hidden=7, dec_hidden=9, dec_layers=2)).eval()(*batch())
    assert torch.isfinite(out["loss"])


# ---------------------------------------------------------------- HRED-CVaR


def test_cvar_tail_is_the_mean_of_the_hardest_share() -> None:
    losses = torch.tensor([1.0, 7.0, 3.0, 5.0, 2.0, 9.0, 4.0, 6.0, 8.0, 0.5])
    assert cvar_loss(losses, 0.3, "tail").item() == pytest.approx((9 + 8 + 7) / 3)
    # alpha * B = 1.2: the hardest response and a fifth of the next one
    four = torch.tensor([4.0, 1.0, 10.0, 2.0])
    assert cvar_loss(four, 0.3, "tail").item() == pytest.approx((10 + 0.2 * 4) / 1.2)


def test_cvar_tail_equals_the_rockafellar_uryasev_minimum() -> None:
    torch.manual_seed(3)
    for b in (5, 7, 30):
        losses = torch.rand(b) * 40
        alpha = 0.3
        # min over tau of tau + E[(l - tau)_+] / alpha; the minimum sits at one of the losses
        ru = min(float(t + torch.clamp(losses - t, min=0).mean() / alpha) for t in losses)
        assert cvar_loss(losses, alpha, "tail").item() == pytest.approx(ru, rel=1e-5)


def test_cvar_gradient_reaches_only_the_tail() -> None:
    losses = torch.tensor([1.0, 7.0, 3.0, 5.0, 2.0, 9.0, 4.0, 6.0, 8.0, 0.5], requires_grad=True)
    cvar_loss(losses, 0.3, "tail").backward()
    assert torch.nonzero(losses.grad).flatten().tolist() == [1, 5, 8]


def test_cvar_threshold_and_authors_objectives() -> None:
    losses = torch.tensor([0.5, 3.0, 1.0, 2.0])  # -log 0.3 = 1.204: the last three... but 1.0 is "easy"
    assert cvar_loss(losses, 0.3, "threshold").item() == pytest.approx((3.0 + 2.0) / 2)
    assert cvar_loss(torch.tensor([0.1, 0.2]), 0.3, "threshold").item() == 0.0
    # The authors' loop stacks the whole vector once per hard response: a rescaled mean.
    assert cvar_loss(losses, 0.3, "authors").item() == pytest.approx(losses.mean().item() / 0.7)
    with pytest.raises(ValueError, match="unknown CVaR objective"):
        cvar_loss(losses, 0.3, "quantile")
    with pytest.raises(ValueError, match="alpha"):
        cvar_loss(losses, 1.5)


def test_hred_cvar_trains_on_the_tail_and_evaluates_as_hred() -> None:
    torch.manual_seed(0)
    model = HREDCVaR(HREDCVaRConfig(**SMALL, alpha=0.5))
    plain = HRED(HREDConfig(**SMALL))
    plain.load_state_dict(model.state_dict())
    x, x_floor, y, y_floor = batch()
    sentence = plain.train()(x, x_floor, y, y_floor)["token_nll"].sum(1)  # no dropout: deterministic
    out = model.train()(x, x_floor, y, y_floor)
    assert out["loss"].item() == pytest.approx(sentence.max().item())  # alpha * B = 1: the hardest response
    assert out["mle_loss"].item() == pytest.approx(plain(x, x_floor, y, y_floor)["loss"].item())
    assert torch.allclose(model.eval()(x, x_floor, y, y_floor)["loss"], plain.eval()(x, x_floor, y, y_floor)["loss"])
    with pytest.raises(ValueError, match="unknown CVaR objective"):
        HREDCVaR(HREDCVaRConfig(**SMALL, objective="median"))


# ---------------------------------------------------------------- MHRED


def test_mhred_marginalises_over_mechanisms_exactly() -> None:
    torch.manual_seed(1)
    model = MHRED(MHREDConfig(**SMALL, mechanisms=3, mechanism_dim=4)).train()
    x, x_floor, y, y_floor = batch()
    loss = model(x, x_floor, y, y_floor)["loss"]
    memory, mask, context = model.encode(x, x_floor, y_floor)
    probs = model.mechanism_probs(context)
    assert torch.allclose(probs.sum(-1), torch.ones(2))
    likelihood = torch.zeros(2)
    for k in range(3):  # decode once per mechanism, by hand
        dec_ctx = model.mechanism_context(context, torch.full((2,), k))
        logits, _ = model.decoder(y[:, :-1], model.initial_state(dec_ctx), dec_ctx, memory, mask)
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), y[:, 1:], ignore_index=PAD, reduction="none").sum(1)
        likelihood += probs[:, k] * torch.exp(-nll)
    assert loss.item() == pytest.approx(-likelihood.log().mean().item(), rel=1e-4)


def test_mhred_scores_are_bilinear_and_decoding_uses_one_mechanism() -> None:
    torch.manual_seed(2)
    model = MHRED(MHREDConfig(**SMALL, mechanisms=4, mechanism_dim=5)).eval()
    context = torch.randn(3, 12)
    scores = model.ctx_to_mech(context) @ model.bilinear @ model.mechanisms.weight.T
    assert torch.allclose(model.mechanism_probs(context), scores.softmax(-1))
    x, x_floor, _, y_floor = batch()
    fixed = [model.greedy(x, x_floor, y_floor, max_len=6, mechanism=k) for k in range(4)]
    assert all(torch.equal(f, model.greedy(x, x_floor, y_floor, max_len=6, mechanism=k)) for k, f in enumerate(fixed))
    torch.manual_seed(5)
    sampled = model.greedy(x, x_floor, y_floor, max_len=6)
    assert sampled.shape[0] == 2 and sampled.shape[1] <= 6
    assert parameter_count(MHRED(MHREDConfig(vocab_size=10000))) / 2**20 == pytest.approx(8.51, abs=0.005)


# ---------------------------------------------------------------- VHRED-MBoW


def mbow_by_loops(probs: torch.Tensor, targets: torch.Tensor, weight: float) -> torch.Tensor:
    """The loss written as the authors' double loop (with absent references skipped)."""
    b, k, _ = targets.shape
    out = torch.zeros(b, k)
    for i in range(b):
        present = [j for j in range(k) if (targets[i, j] != PAD).any()]
        for j in present:
            own = sum(-math.log(probs[i, j, w] + 1e-10) for w in targets[i, j].tolist() if w != PAD)
            other = sum(-math.log(1 - probs[i, j, w] + 1e-10) for r in present if r != j for w in targets[i, r].tolist() if w != PAD)
            out[i, j] = own + weight / len(present) * other
    return out


def test_multiple_bow_loss_matches_the_written_double_loop() -> None:
    torch.manual_seed(4)
    probs = torch.rand(2, 3, 20).softmax(-1)
    targets = torch.tensor([
        [[5, 6, 2, PAD], [7, 2, PAD, PAD], [PAD, PAD, PAD, PAD]],  # third reference absent
        [[8, 8, 9, 2], [3, 2, PAD, PAD], [4, 5, 2, PAD]],
    ])
    got = multiple_bow_loss(probs, targets, PAD, 0.7)
    assert torch.allclose(got, mbow_by_loops(probs, targets, 0.7), atol=1e-5)
    assert got[0, 2] == 0


def test_mbow_with_one_reference_is_vhred() -> None:
    cfg = {**SMALL, "latent_dim": 6, "anneal_steps": 10}
    torch.manual_seed(0)
    vhred = VHRED(VHREDConfig(**cfg)).eval()
    mbow = VHREDMBoW(VHREDMBoWConfig(**cfg)).eval()
    mbow.load_state_dict(vhred.state_dict())
    x, x_floor, y, y_floor = batch()
    torch.manual_seed(9)
    a = vhred(x, x_floor, y, y_floor, step=5)
    torch.manual_seed(9)
    b = mbow(x, x_floor, y.unsqueeze(1), y_floor, step=5)
    for key in ("reconstruction", "kl", "bow", "loss"):
        assert b[key].item() == pytest.approx(a[key].item(), rel=1e-5), key


def test_mbow_trains_on_contexts_with_all_their_references() -> None:
    examples = [Example(((1, 5, 2),), (0,), (1, 6 + i, 2), 1) for i in range(3)] + [Example(((1, 9, 2),), (1,), (1, 4, 2), 0)]
    nested = nest(examples, [7, 7, 7, 8])
    assert [len(e.responses) for e in nested] == [3, 1] and isinstance(nested[0], NestedExample)
    x, x_floor, y, y_floor = collate(nested, PAD)
    assert y.shape == (2, 3, 3) and (y[1, 1:] == PAD).all() and x.shape == (2, 1, 3)
    torch.manual_seed(0)
    model = VHREDMBoW(VHREDMBoWConfig(**SMALL, latent_dim=6, anneal_steps=1))
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    first = None
    for step in range(60):
        loss = model(x, x_floor, y, y_floor, step=step)["loss"]
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.6 * first
    assert registry.is_nested({"kind": "vhred_mbow"}) and not registry.is_nested({"kind": "hred"})


# ---------------------------------------------------------------- registry


def test_registry_names_bad_entries() -> None:
    specials = {"pad_id": 0, "bos_id": 1, "eos_id": 2}
    with pytest.raises(ConfigError, match="model 'm': unknown kind 'rnn'"):
        registry.build("m", {"kind": "rnn"}, 30, specials)
    with pytest.raises(ConfigError, match="model 'm'.*mechanisms"):
        registry.build("m", {"kind": "hred", "mechanisms": 5}, 30, specials)
    with pytest.raises(ConfigError, match="model 'c'.*unknown CVaR objective"):
        registry.build("c", {"kind": "hred_cvar", "objective": "x"}, 30, specials)
