"""VHRED (Serban et al., 2017) with the priors of Zhao, Lala & Kawahara (2021): Gaussian, GMM, LGM.

On top of HRED's encoders (context vector c, word memory) and attentional decoder:

    q(z | x, y) = N(mu_q, var_q),  [mu_q, var_q] = GaussianNet([SentEnc(y); c])     posterior
    p(z | x)                       = Gaussian | GMM_K | LGM_K (c)                       prior
    c'                             = tanh(W [z; c])                                      decoder context
    L = -log p(y | z, x) + beta_t KL(q || p) + BoW(y | z, c),  z ~ q                   training loss
    beta_t = min(1, t / anneal_steps)                                                   KL annealing

The reconstruction term is summed over a response's tokens and averaged over the batch, as the
authors do; the bag-of-words term predicts every response token from ``[z; c]`` with weight 1. At test
time z is drawn from the prior once per context.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from multiref.models.hred import HRED, HREDConfig
from multiref.models.layers import init_linear, token_nll
from multiref.models.priors import GaussianNet, Latent, MixturePrior, gaussian_kl


@dataclass(frozen=True)
class VHREDConfig(HREDConfig):
    latent_dim: int = 200
    prior: str = "gaussian"  # gaussian | gmm | lgm
    components: int = 1
    anneal_steps: int = 40000
    bow: bool = True
    lgm_exact_variance: bool = False


class VHRED(HRED):
    def __init__(self, cfg: VHREDConfig) -> None:
        super().__init__(cfg)
        h, z = self.ctx_dim, cfg.latent_dim
        if cfg.prior == "gaussian":
            self.prior_net: nn.Module = GaussianNet(h, z)
        elif cfg.prior in ("gmm", "lgm"):
            self.prior_net = MixturePrior(h, z, cfg.components, cfg.prior, exact_variance=cfg.lgm_exact_variance)
        else:
            raise ValueError(f"unknown prior {cfg.prior!r} (expected gaussian, gmm or lgm)")
        self.post_net = GaussianNet(self.sent_dim + h, z)
        self.latent_to_bow = nn.Sequential(nn.Linear(z + h, z), nn.Tanh(), nn.Dropout(cfg.dropout), nn.Linear(z, cfg.vocab_size))
        self.ctx_fc = nn.Sequential(nn.Linear(z + h, h), nn.Tanh(), nn.Dropout(cfg.dropout))
        for layer in (*self.latent_to_bow, *self.ctx_fc):
            if isinstance(layer, nn.Linear):
                init_linear(layer, 0.08)

    def prior(self, context: Tensor, assign_k: int | None = None) -> Latent:
        if assign_k is not None:
            return self.prior_net(context, assign_k=assign_k)
        return self.prior_net(context)

    def kl_weight(self, step: int) -> float:
        return min(1.0, step / self.cfg.anneal_steps) if self.cfg.anneal_steps > 0 else 1.0

    def forward(self, x: Tensor, x_floor: Tensor, y: Tensor, y_floor: Tensor, step: int = 0) -> dict[str, Tensor]:
        memory, mask, context = self.encode(x, x_floor, y_floor)
        _, y_vec = self.sentence_encoder(y, (y != self.cfg.pad_id).sum(-1))
        prior = self.prior(context)
        post = self.post_net(torch.cat([y_vec, context], dim=-1))
        dec_ctx = self.ctx_fc(torch.cat([post.z, context], dim=-1))
        logits, _ = self.decoder(y[:, :-1], self.initial_state(dec_ctx), dec_ctx, memory, mask, y[:, 1:] != self.cfg.pad_id)
        target = y[:, 1:]
        keep = target != self.cfg.pad_id
        nll = token_nll(logits, y, self.cfg.pad_id)
        reconstruction = nll.sum(1).mean()
        kl = gaussian_kl(post.mu, post.var, prior.mu, prior.var).mean()
        loss = reconstruction + self.kl_weight(step) * kl
        out = {"nll_sum": nll.sum(), "n_tokens": keep.sum(), "kl": kl, "reconstruction": reconstruction,
               "monitor": (reconstruction + kl).detach()}  # the authors' dev monitor: no annealing, no BoW
        if self.cfg.bow:
            bow_logp = self.latent_to_bow(torch.cat([post.z, context], dim=-1)).log_softmax(-1)
            bow = -(bow_logp.gather(1, target) * keep).sum(1).mean()
            loss = loss + bow
            out["bow"] = bow
        out["loss"] = loss
        return out

    @torch.no_grad()
    def prior_nll(self, x: Tensor, x_floor: Tensor, y: Tensor, y_floor: Tensor, assign_k: int | None = None) -> dict[str, Tensor]:
        """Token NLL of y with z drawn from the prior (what a test-time perplexity of a latent model
        measures); ``assign_k``: from the k-th latent variable only."""
        memory, mask, context = self.encode(x, x_floor, y_floor)
        dec_ctx = self.ctx_fc(torch.cat([self.prior(context, assign_k).z, context], dim=-1))
        logits, _ = self.decoder(y[:, :-1], self.initial_state(dec_ctx), dec_ctx, memory, mask, y[:, 1:] != self.cfg.pad_id)
        target = y[:, 1:]
        nll = token_nll(logits, y, self.cfg.pad_id)
        return {"nll_sum": nll.sum(), "n_tokens": (target != self.cfg.pad_id).sum(), "sent_nll": nll.sum(1)}

    # log p(y | x) = log E_{z ~ p(z|x)} p(y | x, z) has no closed form: one call gives log p(y | x, z) for one
    # prior draw z, and callers average p over draws (multiref.eval.synthetic_distance).
    likelihood_needs_samples = True

    @torch.no_grad()
    def log_likelihood(self, x: Tensor, x_floor: Tensor, y: Tensor, y_floor: Tensor) -> Tensor:
        """log p(y | x, z) of each response [B] for one z drawn from the prior."""
        return -self.prior_nll(x, x_floor, y, y_floor)["sent_nll"]

    @torch.no_grad()
    def greedy(self, x: Tensor, x_floor: Tensor, y_floor: Tensor, max_len: int = 40, assign_k: int | None = None) -> Tensor:  # type: ignore[override]
        """Greedy decoding with z drawn once from the prior (``assign_k``: only component k)."""
        memory, mask, context = self.encode(x, x_floor, y_floor)
        z = self.prior(context, assign_k).z
        dec_ctx = self.ctx_fc(torch.cat([z, context], dim=-1))
        return self._greedy_from(dec_ctx, memory, mask, max_len)
