"""MHRED: the mechanism-aware HRED of Zhou et al. (2017), as compared in Zhao, Lala & Kawahara (2021), §3.3 / Table 2.

On top of HRED's encoders (dialogue vector c, word memory), K learnt mechanism embeddings m_1..m_K:

    p(m_k | x)  = softmax_k( (W_c c)^T B m_k )               bilinear mechanism scores
    c_k         = W_m [c ; m_k]                               mechanism-specific decoder context
    p(y | x)    = sum_k p(m_k | x) p(y | c_k, x)              mixture over mechanisms
    L           = -log sum_k exp( log p(m_k | x) + log p(y | c_k, x) )   (per response, batch mean)

Training decodes the response once per mechanism and marginalises exactly (log-sum-exp). Evaluation
reports the likelihood under the most probable mechanism (the authors' dev perplexity); decoding
samples one mechanism from p(m | x) (seeded) and decodes greedily from its context.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from multiref.models.hred import HRED, HREDConfig
from multiref.models.layers import init_linear, token_nll


@dataclass(frozen=True)
class MHREDConfig(HREDConfig):
    mechanisms: int = 5
    mechanism_dim: int = 200


class MHRED(HRED):
    def __init__(self, cfg: MHREDConfig) -> None:
        super().__init__(cfg)
        k, m, c = cfg.mechanisms, cfg.mechanism_dim, self.ctx_dim
        if k < 1:
            raise ValueError(f"MHRED needs at least one mechanism, got {k}")
        self.mechanisms = nn.Embedding(k, m)
        self.ctx_to_mech = nn.Linear(c, m)
        self.bilinear = nn.Parameter(torch.empty(m, m))
        self.combine = nn.Linear(c + m, c)
        # The authors' init_module_weights: an embedding always U(-1, 1), a Parameter and linear layers U(-0.08, 0.08).
        nn.init.uniform_(self.mechanisms.weight, -1.0, 1.0)
        nn.init.uniform_(self.bilinear, -0.08, 0.08)
        init_linear(self.ctx_to_mech, 0.08)
        init_linear(self.combine, 0.08)

    def mechanism_probs(self, context: Tensor) -> Tensor:
        """p(m_k | x): [B, K]."""
        return (self.ctx_to_mech(context) @ self.bilinear @ self.mechanisms.weight.T).softmax(-1)

    def mechanism_context(self, context: Tensor, k: Tensor) -> Tensor:
        """c_k = W_m [c ; m_k] for mechanism ids k [B]."""
        return self.combine(torch.cat([context, self.mechanisms(k)], dim=-1))

    def forward(self, x: Tensor, x_floor: Tensor, y: Tensor, y_floor: Tensor, step: int = 0) -> dict[str, Tensor]:
        memory, mask, context = self.encode(x, x_floor, y_floor)
        b = context.size(0)
        probs = self.mechanism_probs(context)
        target = y[:, 1:]
        n_tokens = (target != self.cfg.pad_id).sum()
        if not self.training:  # the authors' dev evaluation: the most probable mechanism only
            dec_ctx = self.mechanism_context(context, probs.argmax(-1))
            logits, _ = self.decoder(y[:, :-1], self.initial_state(dec_ctx), dec_ctx, memory, mask, y[:, 1:] != self.cfg.pad_id)
            nll = token_nll(logits, y, self.cfg.pad_id)
            return {"loss": nll.sum(1).mean(), "nll_sum": nll.sum(), "n_tokens": n_tokens, "mech_max": probs.max(-1).values.mean(),
                    "monitor": (nll.sum() / n_tokens.clamp(min=1)).exp()}
        sent_nll = self._all_mechanisms_nll(context, memory, mask, y)  # [B, K]
        log_joint = (probs + 1e-10).log() - sent_nll
        loss = -torch.logsumexp(log_joint, dim=-1).mean()
        best = log_joint.argmax(-1)
        return {"loss": loss, "nll_sum": sent_nll[torch.arange(b), best].sum(), "n_tokens": n_tokens, "mech_max": probs.max(-1).values.mean()}

    @torch.no_grad()
    def log_likelihood(self, x: Tensor, x_floor: Tensor, y: Tensor, y_floor: Tensor) -> Tensor:
        """log p(y | x) = log sum_k p(m_k | x) p(y | c_k, x) of each response [B] (exact marginal)."""
        memory, mask, context = self.encode(x, x_floor, y_floor)
        log_joint = (self.mechanism_probs(context) + 1e-10).log() - self._all_mechanisms_nll(context, memory, mask, y)
        return torch.logsumexp(log_joint, dim=-1)

    def _all_mechanisms_nll(self, context: Tensor, memory: Tensor, mask: Tensor, y: Tensor) -> Tensor:
        """-log p(y | c_k, x) summed over tokens, for every mechanism k: [B, K]."""
        b, k = context.size(0), self.cfg.mechanisms
        ids = torch.arange(k, device=context.device).repeat(b)  # [B*K], mechanism-major within a context
        rep = lambda t: t.repeat_interleave(k, dim=0)
        dec_ctx = self.mechanism_context(rep(context), ids)
        yk = rep(y)
        logits, _ = self.decoder(yk[:, :-1], self.initial_state(dec_ctx), dec_ctx, rep(memory), rep(mask), yk[:, 1:] != self.cfg.pad_id)
        nll = token_nll(logits, yk, self.cfg.pad_id)
        return nll.sum(1).view(b, k)

    @torch.no_grad()
    def greedy(self, x: Tensor, x_floor: Tensor, y_floor: Tensor, max_len: int = 40, mechanism: int | None = None) -> Tensor:  # type: ignore[override]
        """Greedy decoding from one mechanism: drawn from p(m | x) (the authors' default), or the given one."""
        memory, mask, context = self.encode(x, x_floor, y_floor)
        if mechanism is None:
            k = torch.multinomial(self.mechanism_probs(context), 1).squeeze(1)
        else:
            k = torch.full((context.size(0),), mechanism, dtype=torch.long, device=context.device)
        return self._greedy_from(self.mechanism_context(context, k), memory, mask, max_len)
