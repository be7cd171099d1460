"""Mirror (multiref.models.mirror): Eq. 6, the four decoders' conditioning, the prior at generation,
the authors' compatibility flags, a toy training run and the registry round trip."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from multiref.errors import ConfigError, MultirefError
from multiref.models import mirror as mirror_module
from multiref.models import registry
from multiref.models.data import Example, collate
from multiref.models.mirror import Mirror, MirrorConfig

PAD, BOS, EOS, V = 0, 1, 2, 12


def tiny(**kw) -> MirrorConfig:
    base = {"vocab_size": V, "embedding_dim": 8, "hidden": 12, "layers": 2, "latent_dim": 4, "dropout": 0.0, "kl_anneal_steps": 10}
    return MirrorConfig(**{**base, **kw})


def utt(words: list[int]) -> tuple[int, ...]:
    return (BOS, *words, EOS)


def batch(seed: int = 0, b: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)

    def words(n: int) -> list[int]:
        return torch.randint(3, V, (n,), generator=g).tolist()

    examples = [Example((utt(words(2 + i)), utt(words(3 + i % 2))), (0, 1), utt(words(4 - i % 2)), 0) for i in range(b)]
    return collate(examples, PAD)


@pytest.fixture(autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def model() -> Mirror:
    torch.manual_seed(0)
    return Mirror(tiny()).eval()


def zero_noise(m: Mirror) -> None:
    m.noise = lambda mu: torch.zeros_like(mu)  # type: ignore[method-assign]


def test_decoders_condition_on_what_eq6_says(model: Mirror) -> None:
    x, _, y, _ = batch(0)
    x2, _, y2, _ = batch(1)
    z = torch.randn(3, 4)
    with torch.no_grad():
        base = model.decoder_logits(x, y, z)
        other_y = model.decoder_logits(x, y2, z)  # same (c, x), another y
        other_x = x.clone()
        other_x[:, 1] = x2[:, 1]  # same c and y, another query x
        other_x = model.decoder_logits(other_x, y, z)
        other_c = x.clone()
        other_c[:, 0] = x2[:, 0]
        other_c = model.decoder_logits(other_c, y, z)
        other_z = model.decoder_logits(x, y, z + 1)
    assert torch.equal(base["dec2"], other_y["dec2"])  # p(x | c, z): not y
    assert torch.equal(base["dec4"], other_x["dec4"])  # p(y | c, z): not x
    assert not torch.allclose(base["dec1"], other_x["dec1"])  # p(y | c, z, x): x
    assert not torch.allclose(base["dec3"], other_y["dec3"])  # p(x | c, z, y): y
    for name in ("dec1", "dec2", "dec3", "dec4"):  # every decoder reads c and z
        assert not torch.allclose(base[name], other_c[name]) and not torch.allclose(base[name], other_z[name])


def test_generation_uses_the_prior(model: Mirror, monkeypatch: pytest.MonkeyPatch) -> None:
    x, xf, _, yf = batch(0)

    def forbidden(*args, **kwargs):
        raise AssertionError("the posterior network was called at generation")

    monkeypatch.setattr(model.posterior_net, "forward", forbidden)
    calls = []
    prior_forward = model.prior_net.forward
    monkeypatch.setattr(model.prior_net, "forward", lambda h: calls.append(h.shape) or prior_forward(h))
    out = model.generate(x, xf, yf, max_len=6)
    assert out.shape[0] == 3 and out.shape[1] <= 6 and calls == [(3, 12)]
    rows = out.tolist()
    for row in rows:  # </s> then padding; at least min_len = 2 tokens before </s>
        if EOS in row:
            end = row.index(EOS)
            assert end >= model.cfg.min_len and all(t == PAD for t in row[end + 1 :])
    assert model.greedy(x, xf, yf, max_len=6).shape[0] == 3
    assert model.prior_nll(*batch(0))["sent_nll"].shape == (3,)


def test_kl_matches_hand_computation(model: Mirror) -> None:
    x, xf, y, yf = batch(2)
    zero_noise(model)
    with torch.no_grad():
        out = model(x, xf, y, yf, step=10)
        c_ids, x_ids = model.split_triple(x)
        c, q, r = model.encode_context(c_ids), model.encode_query(x_ids), model.encode_response(y)
        mu1, lv1 = model.posterior_net(torch.cat([c.summary, q.summary, r.summary], -1))
        mu2, lv2 = model.prior_net(c.summary)
    s1, s2 = lv1.exp(), lv2.exp()
    hand = 0.5 * (torch.log(s2 / s1) + (s1 + (mu1 - mu2) ** 2) / s2 - 1).sum(-1)
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(mu1, s1.sqrt()), torch.distributions.Normal(mu2, s2.sqrt())).sum(-1)
    assert hand.mean().item() > 0
    assert out["kl"].item() == pytest.approx(hand.mean().item(), rel=1e-5)
    assert out["kl"].item() == pytest.approx(ref.mean().item(), rel=1e-5)


def test_loss_is_annealed_kl_plus_half_the_four_nlls(model: Mirror) -> None:
    x, xf, y, yf = batch(3)
    zero_noise(model)  # z = mu of the posterior, so the NLLs can be recomputed with the same z

    def sentence_nll(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        lp = logits.log_softmax(-1).gather(2, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        return -(lp * (ids[:, 1:] != PAD)).sum(1)

    with torch.no_grad():
        c_ids, x_ids = model.split_triple(x)
        c, q, r = model.encode_context(c_ids), model.encode_query(x_ids), model.encode_response(y)
        mu, _ = model.posterior_net(torch.cat([c.summary, q.summary, r.summary], -1))
        logits = model.decoder_logits(x, y, mu)
        n1, n4 = sentence_nll(logits["dec1"], y), sentence_nll(logits["dec4"], y)
        n2, n3 = sentence_nll(logits["dec2"], x_ids), sentence_nll(logits["dec3"], x_ids)
        for step in (0, 4, 10, 50):
            out = model(x, xf, y, yf, step=step)
            kl_w = min(1.0, step / 10)
            expected = (kl_w * out["kl"] + 0.5 * (n1 + n2 + n3 + n4).mean()).item()
            assert out["loss"].item() == pytest.approx(expected, rel=1e-5)
            assert out["monitor"].item() == pytest.approx((out["kl"] + 0.5 * (n1 + n2 + n3 + n4).mean()).item(), rel=1e-5)
        # nll_sum / n_tokens / token_nll are Dec1's (posterior z), as VHRED's forward
        assert out["nll_sum"].item() == pytest.approx(n1.sum().item(), rel=1e-5)
        assert int(out["n_tokens"]) == int((y[:, 1:] != PAD).sum())
        assert out["token_nll"].shape == y[:, 1:].shape


def test_kl_weight_ramp() -> None:
    m = Mirror(tiny(kl_anneal_steps=100))
    assert [m.kl_weight(s) for s in (0, 25, 50, 100, 1000)] == [0.0, 0.25, 0.5, 1.0, 1.0]
    assert Mirror(tiny(kl_anneal_steps=0)).kl_weight(0) == 1.0


def test_uniform_noise_flag() -> None:
    torch.manual_seed(0)
    mu = torch.zeros(20000)
    uniform = Mirror(tiny(noise="uniform")).noise(mu)
    gaussian = Mirror(tiny()).noise(mu)
    assert uniform.min() >= 0 and uniform.max() < 1 and abs(uniform.mean().item() - 0.5) < 0.02
    assert gaussian.min() < 0 and abs(gaussian.mean().item()) < 0.05 and abs(gaussian.std().item() - 1) < 0.05
    # the flag changes only the noise: with the same eps the two models compute the same thing
    a, b = Mirror(tiny()).eval(), Mirror(tiny(noise="uniform")).eval()
    b.load_state_dict(a.state_dict())
    eps = torch.rand(3, 4)
    for m in (a, b):
        m.noise = lambda mu: eps  # type: ignore[method-assign]
    assert torch.equal(a(*batch(0), step=3)["loss"], b(*batch(0), step=3)["loss"])


def test_dec4_init_flag(model: Mirror) -> None:
    x, _, y, _ = batch(4)
    authors = Mirror(tiny(dec4_init="dec2_final")).eval()
    authors.load_state_dict(model.state_dict())
    z = torch.randn(3, 4)
    with torch.no_grad():
        c_ids, x_ids = model.split_triple(x)
        encodings = (model.encode_context(c_ids), model.encode_query(x_ids), model.encode_response(y), x_ids, y, z)
        own = model.decoder_runs(*encodings)
        theirs = authors.decoder_runs(*encodings)
    for a, b in zip(theirs["dec4"].initial, theirs["dec2"].final, strict=True):  # h, cell state, input feed
        assert torch.equal(a, b)
    for a, b in zip(own["dec4"].initial, own["dec2"].initial, strict=True):
        assert torch.equal(a, b)
    assert not torch.allclose(own["dec4"].logits, theirs["dec4"].logits)
    for name in ("dec1", "dec2", "dec3"):  # nothing else changes
        assert torch.equal(own[name].logits, theirs[name].logits)


def test_first_finished_flag_reaches_the_beam(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    real = mirror_module.beam_search

    def spy(*args, **kwargs):
        seen.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(mirror_module, "beam_search", spy)
    x, xf, _, yf = batch(0)
    for flag in (False, True):
        Mirror(tiny(beam_first_finished=flag)).eval().generate(x, xf, yf, max_len=5)
    assert [(k["first_finished"], k["beam"], k["min_len"], k["max_len"]) for k in seen] == [(False, 10, 2, 5), (True, 10, 2, 5)]


def test_tiny_mirror_learns_a_copy_task() -> None:
    """c = x = y, a random utterance: every decoder can copy what it attends to; the loss must fall."""
    torch.manual_seed(1)
    g = torch.Generator().manual_seed(1)
    m = Mirror(tiny(hidden=24, layers=1, embedding_dim=12, kl_anneal_steps=50))
    opt = torch.optim.Adam(m.parameters(), lr=3e-2)

    def draw(n: int) -> tuple[torch.Tensor, ...]:
        examples = []
        for _ in range(n):
            q = utt(torch.randint(3, V, (int(torch.randint(2, 4, (1,), generator=g)),), generator=g).tolist())
            examples.append(Example((q, q), (0, 1), q, 0))
        return collate(examples, PAD)

    losses = []
    for step in range(150):
        out = m(*draw(16), step=step)
        opt.zero_grad()
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 4.0)
        opt.step()
        losses.append(out["loss"].item())
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert math.isfinite(last) and last < 0.25 * first
    m.eval()
    x, xf, y, yf = draw(20)
    assert torch.exp(m.prior_nll(x, xf, y, yf)["nll_sum"] / (y[:, 1:] != PAD).sum()).item() < 2.0  # Dec1 copies
    # and beam search with a prior z generates the copy (queries of >= min_len = 3 words)
    long = [(row, [t for t in ref if t != PAD][1:]) for row, ref in zip(m.generate(x, xf, yf, max_len=6).tolist(), y.tolist(), strict=True)]
    long = [(row, ref) for row, ref in long if len(ref) > 3]
    assert long and sum(row[: len(ref)] == ref for row, ref in long) >= len(long) / 2


def test_registry_round_trip_and_bad_input(tmp_path: Path) -> None:
    spec = {"kind": "mirror", "embedding_dim": 8, "hidden": 12, "layers": 1, "latent_dim": 4, "dec4_init": "dec2_final"}
    torch.manual_seed(0)
    m = registry.build("m", spec, V, {"pad_id": PAD, "bos_id": BOS, "eos_id": EOS}).eval()
    registry.save(m, "m", tmp_path / "model.pt", {"vocab_sha256": "abc"})
    loaded, saved = registry.load(tmp_path / "model.pt", vocab_sha256="abc")
    assert saved["kind"] == "mirror" and loaded.cfg == m.cfg and isinstance(loaded, Mirror)
    for k, v in m.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    torch.manual_seed(5)
    a = m(*batch(0))["loss"]
    torch.manual_seed(5)
    assert torch.equal(a, loaded(*batch(0))["loss"])
    with pytest.raises(ConfigError, match="model 'm'.*noise"):
        registry.build("m", {**spec, "noise": "laplace"}, V, {"pad_id": PAD, "bos_id": BOS, "eos_id": EOS})
    with pytest.raises(ConfigError, match="dec4_init"):
        registry.build("m", {**spec, "dec4_init": "dec3"}, V, {"pad_id": PAD, "bos_id": BOS, "eos_id": EOS})
    five_turns = collate([Example(tuple(utt([3, 4]) for _ in range(5)), (0, 1, 0, 1, 0), utt([5]), 1)], PAD)
    with pytest.raises(MultirefError, match="exactly 2 turns"):
        m(*five_turns)
    assert dataclasses.asdict(MirrorConfig(vocab_size=V))["hidden"] == 1000  # paper sizes by default
