"""VHRED-MBoW: VHRED with the multiple bag-of-words loss of Qiu et al. (2019), second step only, as
compared in Zhao, Lala & Kawahara (2021), §3.3 / Table 2.

A training example is one context with its K references y_1..y_K (the teacher's hypotheses of that
context, plus the ground truth where the data setting has it). With c the dialogue vector and
z_j ~ q(z | y_j, x) the posterior sample of reference j:

    L_rec  = mean_j  -log p(y_j | z_j, x)                                   (summed over tokens)
    L_KL   = mean_j  KL(q(z | y_j, x) || p(z | x))                           (annealed as VHRED)
    L_MBoW = mean_j [ -sum_t log f_j(y_j,t) - (lambda / K) sum_{i != j} sum_t log(1 - f_j(y_i,t)) ]
    f_j    = softmax(W_bow [z_j ; c])                                       bag-of-words distribution
    L      = L_rec + beta_t L_KL + L_MBoW

so each z_j must predict its own reference's words and *not* the words of the context's other
references: the latent variable carries what is specific to a response. The means run over the
references that have at least one token (an empty hypothesis adds nothing). The authors' ``+1e-10``
inside both logarithms is kept. With one reference (the dev set) the loss is VHRED's.

K is not every reference of the context: as the authors' ``DataSource`` does at each visit of a context, a
training step draws ``references`` of the context's references at random (without replacement; all of them when
it has fewer), so K = ``references`` (docs/fidelity.md, M12, for the choice of 20). ``references: null`` uses
every reference at every step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from multiref.models.layers import token_nll
from multiref.models.priors import gaussian_kl
from multiref.models.vhred import VHRED, VHREDConfig

EPS = 1e-10


@dataclass(frozen=True)
class VHREDMBoWConfig(VHREDConfig):
    mbow_weight: float = 1.0  # lambda
    references: int | None = 20  # references drawn per context at each training step (None: all)


def draw_references(y: Tensor, n: int, pad_id: int) -> Tensor:
    """``n`` of each context's references [B, K, T] -> [B, n', T] (n' = min(n, K)), drawn uniformly without
    replacement among the references that have a token (absent, all-padding rows come last)."""
    present = (y != pad_id).any(-1)  # [B, K]
    keys = torch.rand(present.shape, device=y.device).masked_fill(~present, 2.0)
    order = keys.argsort(dim=1)[:, : min(n, y.size(1))]
    return y.gather(1, order.unsqueeze(-1).expand(-1, -1, y.size(-1)))


def multiple_bow_loss(bow_probs: Tensor, targets: Tensor, pad_id: int, weight: float) -> Tensor:
    """Per-reference MBoW loss [B, K] from bag-of-words distributions [B, K, V] and targets [B, K, T]."""
    b, k, t = targets.shape
    keep = (targets != pad_id).to(bow_probs.dtype)  # [B, K, T]
    # p[b, j, i, t] = f_j(y_i,t): reference j's distribution at reference i's words
    p = bow_probs.gather(2, targets.reshape(b, 1, k * t).expand(b, k, k * t)).view(b, k, k, t)
    own = torch.diagonal(p, dim1=1, dim2=2).permute(0, 2, 1)  # [B, K, T] = f_j(y_j,t)
    own_loss = -((own + EPS).log() * keep).sum(-1)
    others = -((1 - p + EPS).log() * keep.unsqueeze(1)).sum(-1)  # [B, K(j), K(i)]
    others = others * (1 - torch.eye(k, dtype=others.dtype, device=others.device))
    present = (keep.sum(-1) > 0).to(bow_probs.dtype)  # [B, K]
    n_refs = present.sum(-1, keepdim=True).clamp(min=1)
    return (own_loss + weight / n_refs * (others * present.unsqueeze(1)).sum(-1)) * present


class VHREDMBoW(VHRED):
    nested: ClassVar[bool] = True  # trained on one example per context with all its references

    def __init__(self, cfg: VHREDMBoWConfig) -> None:
        if cfg.references is not None and cfg.references < 1:
            raise ValueError(f"references must be at least 1 (or null for every reference), got {cfg.references}")
        if not cfg.bow:
            raise ValueError("VHRED-MBoW needs its bag-of-words network (bow: true)")
        super().__init__(cfg)

    def forward(self, x: Tensor, x_floor: Tensor, y: Tensor, y_floor: Tensor, step: int = 0) -> dict[str, Tensor]:
        """y [B, K, Ty]: K references per context (all-padding rows are absent references); a
        two-dimensional y [B, Ty] is one reference per context."""
        if y.dim() == 2:
            y = y.unsqueeze(1)
        if self.training and self.cfg.references is not None and y.size(1) > self.cfg.references:
            y = draw_references(y, self.cfg.references, self.cfg.pad_id)
        b, k, _ = y.shape
        memory, mask, context = self.encode(x, x_floor, y_floor)
        prior = self.prior(context)
        rep = lambda t: t.repeat_interleave(k, dim=0)
        flat_y = y.reshape(b * k, -1)
        ctx_k = rep(context)
        _, y_vec = self.sentence_encoder(flat_y, (flat_y != self.cfg.pad_id).sum(-1))
        post = self.post_net(torch.cat([y_vec, ctx_k], dim=-1))
        dec_ctx = self.ctx_fc(torch.cat([post.z, ctx_k], dim=-1))
        logits, _ = self.decoder(flat_y[:, :-1], self.initial_state(dec_ctx), dec_ctx, rep(memory), rep(mask), flat_y[:, 1:] != self.cfg.pad_id)
        target = flat_y[:, 1:]
        keep = target != self.cfg.pad_id
        present = keep.any(-1).to(logits.dtype)  # [B*K]
        n_present = present.sum().clamp(min=1)
        nll = token_nll(logits, flat_y, self.cfg.pad_id)
        reconstruction = nll.sum(1).sum() / n_present
        kl = (gaussian_kl(post.mu, post.var, rep(prior.mu), rep(prior.var)) * present).sum() / n_present
        bow_probs = self.latent_to_bow(torch.cat([post.z, ctx_k], dim=-1)).softmax(-1).view(b, k, -1)
        bow = (multiple_bow_loss(bow_probs, target.view(b, k, -1), self.cfg.pad_id, self.cfg.mbow_weight).view(-1) * present).sum() / n_present
        loss = reconstruction + self.kl_weight(step) * kl + bow
        return {"loss": loss, "nll_sum": nll.sum(), "n_tokens": keep.sum(), "kl": kl, "reconstruction": reconstruction, "bow": bow,
                "monitor": (reconstruction + kl).detach()}
