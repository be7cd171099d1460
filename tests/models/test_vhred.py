"""VHRED and its priors: closed-form KL against Monte Carlo, mixture moments, training signal,
and the paper's parameter counts."""

import math

import pytest
import torch
from hred_helpers import PAD, batch

from multiref.models.hred import HRED, HREDConfig, parameter_count
from multiref.models.priors import GaussianNet, MixturePrior, gaussian_kl
from multiref.models.vhred import VHRED, VHREDConfig

MEBI = 2**20  # the paper's "M" in the Param column is 2^20 parameters (every count below matches so)


@pytest.mark.parametrize(
    ("model", "paper"),
    [
        (HRED(HREDConfig(vocab_size=10000)), 8.04),
        (VHRED(VHREDConfig(vocab_size=10000)), 11.02),
        (VHRED(VHREDConfig(vocab_size=10000, prior="gmm", components=5)), 11.36),
        (VHRED(VHREDConfig(vocab_size=10000, prior="lgm", components=5)), 11.36),
        (VHRED(VHREDConfig(vocab_size=10000, prior="lgm", components=20)), 12.52),
        (VHRED(VHREDConfig(vocab_size=10000, prior="lgm", components=100)), 18.67),
    ],
    ids=["HRED", "VHRED", "VHRED-GMM5", "VHRED-LGM5", "VHRED-LGM20", "VHRED-LGM100"],
)
def test_parameter_counts_match_the_paper(model: torch.nn.Module, paper: float) -> None:
    count = parameter_count(model) / MEBI
    assert abs(count - paper) / paper < 0.02
    assert round(count, 2) == paper  # in fact equal to the printed precision


def test_gaussian_kl_closed_form_equals_monte_carlo() -> None:
    torch.manual_seed(0)
    mu_q, mu_p = torch.randn(3, 4), torch.randn(3, 4)
    var_q, var_p = torch.rand(3, 4) + 0.2, torch.rand(3, 4) + 0.2
    closed = gaussian_kl(mu_q, var_q, mu_p, var_p)
    q = torch.distributions.Normal(mu_q, var_q.sqrt())
    p = torch.distributions.Normal(mu_p, var_p.sqrt())
    z = q.sample((200_000,))
    mc = (q.log_prob(z) - p.log_prob(z)).sum(-1).mean(0)
    assert torch.allclose(closed, mc, atol=0.03)
    assert torch.allclose(closed, torch.distributions.kl_divergence(q, p).sum(-1), atol=1e-5)
    assert torch.allclose(gaussian_kl(mu_q, var_q, mu_q, var_q), torch.zeros(3), atol=1e-6)


@pytest.mark.parametrize("exact", [False, True])
def test_lgm_moments(exact: bool) -> None:
    torch.manual_seed(0)
    prior = MixturePrior(6, 3, components=4, kind="lgm", exact_variance=exact)
    h = torch.randn(1, 6).repeat(40_000, 1)
    out = prior(h)
    pi = out.pi[0]
    g = torch.tanh(prior.ctx_fc(h[:1]))
    mu_k = prior.ctx2mu(g).view(4, 3)
    var_k = torch.nn.functional.softplus(prior.ctx2var(g)).view(4, 3)
    assert torch.allclose(pi.sum(), torch.tensor(1.0)) and (pi > 0).all()
    assert torch.allclose(out.mu[0], (pi[:, None] * mu_k).sum(0), atol=1e-6)
    exact_var = (pi[:, None] ** 2 * var_k).sum(0)
    code_var = (pi[:, None] * var_k).sum(0)
    assert torch.allclose(out.var[0], exact_var if exact else code_var, atol=1e-6)
    # z = sum_k pi_k z_k really has the exact variance (the authors' formula overstates it)
    assert torch.allclose(out.z.var(0), exact_var.detach(), rtol=0.05)
    assert torch.allclose(out.z.mean(0), out.mu[0].detach(), atol=0.02)


def test_gmm_selects_one_component_and_assign_k_forces_it() -> None:
    torch.manual_seed(0)
    prior = MixturePrior(6, 3, components=5, kind="gmm")
    out = prior(torch.randn(8, 6))
    assert torch.equal(out.pi.sum(-1), torch.ones(8)) and set(out.pi.unique().tolist()) <= {0.0, 1.0}
    forced = prior(torch.randn(8, 6), assign_k=2)
    assert torch.equal(forced.pi.argmax(-1), torch.full((8,), 2))


def test_gaussian_net_sample_follows_its_moments() -> None:
    torch.manual_seed(0)
    net = GaussianNet(5, 3)
    out = net(torch.randn(1, 5).repeat(50_000, 1))
    assert torch.allclose(out.z.mean(0), out.mu[0].detach(), atol=0.02)
    assert torch.allclose(out.z.var(0), out.var[0].detach(), rtol=0.05)


def test_unknown_prior_is_named() -> None:
    with pytest.raises(ValueError, match="unknown prior 'vamp'"):
        VHRED(VHREDConfig(vocab_size=30, prior="vamp"))
    with pytest.raises(ValueError, match="at least 2 components"):
        MixturePrior(4, 2, components=1, kind="lgm")


def tiny(prior: str, k: int) -> VHRED:
    torch.manual_seed(0)
    return VHRED(VHREDConfig(vocab_size=30, embedding_dim=8, floor_dim=3, hidden=12, layers=1, dropout=0.0,
                             latent_dim=4, prior=prior, components=k, anneal_steps=100))


@pytest.mark.parametrize(("prior", "k"), [("gaussian", 1), ("gmm", 3), ("lgm", 3)])
def test_every_prior_trains(prior: str, k: int) -> None:
    model = tiny(prior, k)
    x, x_floor, y, y_floor = batch()
    out = model(x, x_floor, y, y_floor, step=0)
    assert all(torch.isfinite(v) for v in out.values()) and out["kl"] >= -1e-6  # float32 rounding near 0
    assert math.isclose(model.kl_weight(50), 0.5) and model.kl_weight(10_000) == 1.0
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = out["loss"].item()
    for step in range(80):
        loss = model(x, x_floor, y, y_floor, step=step)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first / 2
    ids = model.eval().greedy(x, x_floor, y_floor, max_len=6, assign_k=0 if k > 1 else None)
    assert ids.shape[0] == 2 and (ids != PAD).any()


def test_bow_loss_can_be_switched_off() -> None:
    x, x_floor, y, y_floor = batch()
    torch.manual_seed(0)
    model = VHRED(VHREDConfig(vocab_size=30, embedding_dim=8, floor_dim=3, hidden=12, dropout=0.0, latent_dim=4, bow=False))
    out = model(x, x_floor, y, y_floor)
    assert "bow" not in out and torch.allclose(out["loss"], out["reconstruction"] + model.kl_weight(0) * out["kl"])
