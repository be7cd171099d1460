"""Additive attention scores without the [B, Q, K, H] tensor: ``s[b, i, k] = w . tanh(qp[b, i] + p[b, k])``.

The plain formulation (``w_emit(tanh(w_context(c).unsqueeze(1) + w_query(q).unsqueeze(2)))``) builds the
[B, Q, K, H] tanh tensor, keeps it for the backward pass and walks it again there: at the paper's sizes
(batch 30, 41 queries, 210 context words, H = 500) that is 516 MB per step and half of a CPU training
step. :func:`additive_scores` computes the same scores chunk by chunk (a few queries of one batch row at a
time, sized to stay in the core's cache) and recomputes tanh in the backward pass instead of storing it. Per
batch row it also skips the queries after the row's last requested query and the context positions after
its last unmasked one (:class:`multiref.models.layers.AdditiveAttention` moves the unmasked positions to the
front first), whose scores the caller masks anyway; those entries are returned as 0.

Backward, with ``g`` the gradient of the scores and ``t = tanh(qp_i + p_k)``:

    dw    = sum_{i,k} g_ik t_ik
    dqp_i = w * sum_k g_ik (1 - t_ik^2)        dp_k = w * sum_i g_ik (1 - t_ik^2)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

CHUNK_ELEMENTS = 1 << 20  # elements of one chunk's [queries, K, H] tanh block (4 MiB in fp32, about one core's L2)


def _chunks(q_len: list[int], k_len: list[int], width: int, budget: int) -> list[tuple[int, int, int, int]]:
    """(row, first query, end query, context length) of every chunk: whole queries of one row, about
    ``budget`` elements of the tanh block each."""
    out = []
    for b, (nq, nk) in enumerate(zip(q_len, k_len, strict=True)):
        if nq == 0 or nk == 0:
            continue
        step = max(1, budget // (nk * width))
        out += [(b, i, min(i + step, nq), nk) for i in range(0, nq, step)]
    return out


def _tanh_block(qp: Tensor, p: Tensor, b: int, i0: int, i1: int, nk: int) -> Tensor:
    """tanh(qp[b, i0:i1, None] + p[b, None, :nk]): [i1 - i0, nk, H]."""
    return torch.add(qp[b, i0:i1].unsqueeze(1), p[b, :nk].unsqueeze(0)).tanh_()


class _AdditiveScores(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, qp: Tensor, p: Tensor, w: Tensor, q_len: list[int], k_len: list[int], budget: int) -> Tensor:
        chunks = _chunks(q_len, k_len, qp.size(-1), budget)
        scores = qp.new_zeros((qp.size(0), qp.size(1), p.size(1)))
        for b, i0, i1, nk in chunks:
            scores[b, i0:i1, :nk] = torch.matmul(_tanh_block(qp, p, b, i0, i1, nk), w)
        ctx.save_for_backward(qp, p, w)
        ctx.chunks = chunks
        return scores

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        qp, p, w = ctx.saved_tensors
        grad = grad.contiguous()
        d_qp, d_p, d_w = torch.zeros_like(qp), torch.zeros_like(p), torch.zeros_like(w)
        for b, i0, i1, nk in ctx.chunks:
            t = _tanh_block(qp, p, b, i0, i1, nk)  # recomputed, not stored
            g = grad[b, i0:i1, :nk]
            d_w += torch.mv(t.view(-1, t.size(-1)).t(), g.reshape(-1))
            t.square_()
            d_qp[b, i0:i1] = g.sum(1, keepdim=True) - torch.bmm(g.unsqueeze(1), t).squeeze(1)
            d_p[b, :nk] += g.sum(0).unsqueeze(1) - t.mul_(g.unsqueeze(-1)).sum(0)
        return d_qp * w, d_p * w, d_w, None, None, None


def additive_scores(qp: Tensor, p: Tensor, w: Tensor, q_len: list[int], k_len: list[int], budget: int | None = None) -> Tensor:
    """Scores [B, Q, K] of projected queries qp [B, Q, H] against projected context p [B, K, H] with the emit
    vector w [H] (no bias): row b's first ``q_len[b]`` queries against its first ``k_len[b]`` positions, 0
    elsewhere; chunks of about ``budget`` tanh elements (default :data:`CHUNK_ELEMENTS`). Differentiable in qp, p
    and w."""
    return _AdditiveScores.apply(qp.contiguous(), p.contiguous(), w.contiguous(), q_len, k_len, budget or CHUNK_ELEMENTS)
