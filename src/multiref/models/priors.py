"""Latent-variable networks of VHRED: the Gaussian posterior and the three priors of the paper.

All map a conditioning vector h to a diagonal Gaussian summary (mu, var) used in the closed-form KL,
and to a reparameterised sample z:

- :class:`GaussianNet`: ``g = tanh(W h)``, ``mu = MLP(g)``, ``var = softplus(MLP(g))``, ``z = mu + sqrt(var) eps``.
- :class:`MixturePrior` ``kind="gmm"``: K components; a hard Gumbel-softmax (tau 0.1) picks one; z,
  mu, var are the selected component's.
- :class:`MixturePrior` ``kind="lgm"`` (the paper's linear Gaussian model): ``pi = softmax(MLP(g))``,
  ``z = sum_k pi_k z_k`` with ``z_k ~ N(mu_k, sigma_k^2)``; ``mu = sum_k pi_k mu_k``. The exact
  variance of that z is ``sum_k pi_k^2 sigma_k^2``; the authors' code uses ``sum_k pi_k sigma_k^2``,
  which is the default here (it produced the paper's numbers) with ``exact_variance=True`` as the option.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from multiref.models.layers import init_linear


class Latent(NamedTuple):
    z: Tensor  # [B, Z]
    mu: Tensor  # [B, Z]
    var: Tensor  # [B, Z]
    pi: Tensor | None  # [B, K] mixture weights, None for a single Gaussian


def gaussian_kl(mu_q: Tensor, var_q: Tensor, mu_p: Tensor, var_p: Tensor) -> Tensor:
    """KL(N(mu_q, var_q) || N(mu_p, var_p)) for diagonal Gaussians, summed over dimensions: [B]."""
    return 0.5 * (torch.log(var_p) - torch.log(var_q) + (var_q + (mu_q - mu_p).pow(2)) / var_p - 1).sum(-1)


def _mlp(z_dim: int, out_dim: int) -> nn.Sequential:
    net = nn.Sequential(nn.Linear(z_dim, z_dim), nn.Tanh(), nn.Linear(z_dim, out_dim))
    for layer in net:
        if isinstance(layer, nn.Linear):
            init_linear(layer, 0.08)
    return net


class GaussianNet(nn.Module):
    def __init__(self, input_dim: int, z_dim: int) -> None:
        super().__init__()
        self.ctx_fc = nn.Linear(input_dim, z_dim)
        self.ctx2mu = _mlp(z_dim, z_dim)
        self.ctx2var = _mlp(z_dim, z_dim)
        init_linear(self.ctx_fc, 0.08)

    def forward(self, h: Tensor) -> Latent:
        g = torch.tanh(self.ctx_fc(h))
        mu, var = self.ctx2mu(g), nn.functional.softplus(self.ctx2var(g))
        return Latent(mu + var.sqrt() * torch.randn_like(mu), mu, var, None)


class MixturePrior(nn.Module):
    def __init__(self, input_dim: int, z_dim: int, components: int, kind: str, gumbel_tau: float = 0.1, exact_variance: bool = False) -> None:
        super().__init__()
        if kind not in ("gmm", "lgm"):
            raise ValueError(f"unknown mixture prior {kind!r} (expected 'gmm' or 'lgm')")
        if components < 2:
            raise ValueError(f"a mixture prior needs at least 2 components, got {components}")
        self.kind, self.k, self.z_dim = kind, components, z_dim
        self.gumbel_tau, self.exact_variance = gumbel_tau, exact_variance
        self.ctx_fc = nn.Linear(input_dim, z_dim)
        self.pi_fc = _mlp(z_dim, components)
        self.ctx2mu = _mlp(z_dim, z_dim * components)
        self.ctx2var = _mlp(z_dim, z_dim * components)
        init_linear(self.ctx_fc, 0.08)

    def weights(self, h: Tensor) -> Tensor:
        """The mixture weights softmax(MLP(tanh(W h))) [B, K] (for GMM the expectation of its hard Gumbel sample)."""
        return self.pi_fc(torch.tanh(self.ctx_fc(h))).softmax(-1)

    def forward(self, h: Tensor, assign_k: int | None = None) -> Latent:
        """``assign_k`` forces a one-hot pi on component k (the paper's Table 5 analysis)."""
        b = h.size(0)
        g = torch.tanh(self.ctx_fc(h))
        scores = self.pi_fc(g)
        if assign_k is not None:
            pi = nn.functional.one_hot(torch.full((b,), assign_k, device=h.device), self.k).to(h.dtype)
        elif self.kind == "gmm":
            pi = nn.functional.gumbel_softmax(scores, tau=self.gumbel_tau, hard=True)
        else:
            pi = scores.softmax(-1)
        mu_k = self.ctx2mu(g).view(b, self.k, self.z_dim)
        var_k = nn.functional.softplus(self.ctx2var(g)).view(b, self.k, self.z_dim)
        z_k = mu_k + var_k.sqrt() * torch.randn_like(mu_k)
        w = pi.unsqueeze(-1)
        mu = (w * mu_k).sum(1)
        var = ((w * w if self.exact_variance and self.kind == "lgm" else w) * var_k).sum(1)
        return Latent((w * z_k).sum(1), mu, var, pi)
