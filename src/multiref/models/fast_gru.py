"""A GRU over right-padded sequences for training on the CPU: PyTorch's equations and weights, a hand-written backward.

PyTorch's CPU GRU over a packed batch runs every time step as a few small autograd operations (input and
hidden projections included), and its backward walks that graph step by step. :func:`gru` computes the same
function with one matrix product for the input projections of all steps, a loop of hidden-state products with
no autograd graph, and a backward (:class:`_GRULayer`) that loops once over the steps for the gate gradients
and then forms the weight gradients with one matrix product each. For each layer and direction:

    r_t = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
    z_t = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
    n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}

The sequences are packed as for ``nn.GRU`` (sorted by length, time-major: the rows still running at a step are
a prefix of the batch, and no padding is computed); outputs after a sequence's end are 0 and its final state is the one at its last token, the
reverse direction starting there, exactly as ``pack_padded_sequence`` + ``nn.GRU`` + ``pad_packed_sequence``.
The parameters are those of the ``nn.GRU`` module (its state_dict is unchanged). Dropout between stacked
layers is not implemented (:func:`supported` says when this path applies).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


def supported(rnn: nn.GRU, inputs: Tensor) -> bool:
    """Whether :func:`gru` should replace this module on these inputs: on the CPU (on a GPU cuDNN's fused GRU is
    faster than a Python loop of small kernels), batch first, biases, no dropout between layers in training
    (PyTorch draws it on the packed data), no projections, and not under autocast (its explicit products would mix
    bf16 activations with fp32 weights)."""
    return (inputs.device.type == "cpu" and not torch.is_autocast_enabled("cpu") and rnn.batch_first and rnn.bias
            and not getattr(rnn, "proj_size", 0)
            and (rnn.num_layers == 1 or rnn.dropout == 0 or not rnn.training))


def _steps(batch_sizes: list[int], reverse: bool) -> list[tuple[int, int]]:
    """(first packed row, rows running) of every time step, in processing order."""
    offsets = [0]
    for bs in batch_sizes[:-1]:
        offsets.append(offsets[-1] + bs)
    order = list(zip(offsets, batch_sizes, strict=True))
    return order[::-1] if reverse else order


class _GRULayer(torch.autograd.Function):
    """One direction of one layer over packed input projections gi [sum of lengths, 3H] (PyTorch's packed layout:
    time-major, the rows running at a step are the first ``batch_sizes[t]`` of the length-sorted batch)."""

    @staticmethod
    def forward(ctx: Any, gi: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor, batch_sizes: list[int], reverse: bool) -> tuple[Tensor, Tensor]:
        hid = h0.size(1)
        h = h0.clone()
        out = gi.new_empty((gi.size(0), hid))
        saved = []
        for row, bs in _steps(batch_sizes, reverse):
            hp = h[:bs].clone()
            gh = torch.addmm(b_hh, hp, w_hh.t())
            g = gi[row : row + bs]
            rz = torch.sigmoid(g[:, : 2 * hid] + gh[:, : 2 * hid])
            ghn = gh[:, 2 * hid :]
            n = torch.tanh(torch.addcmul(g[:, 2 * hid :], rz[:, :hid], ghn))
            new = out[row : row + bs]
            torch.addcmul(n, rz[:, hid:], hp - n, out=new)
            h[:bs] = new
            saved.append((hp, rz, n, ghn))
        ctx.saved = saved
        ctx.batch_sizes, ctx.reverse = batch_sizes, reverse
        ctx.save_for_backward(w_hh)
        return out, h

    @staticmethod
    def backward(ctx: Any, d_out: Tensor, d_h: Tensor) -> tuple[Tensor | None, ...]:
        (w_hh,) = ctx.saved_tensors
        hid = w_hh.size(1)
        d_gi = d_out.new_empty((d_out.size(0), 3 * hid))
        dh = d_h.clone()
        d_gh = []
        for (row, bs), (hp, rz, n, ghn) in zip(reversed(_steps(ctx.batch_sizes, ctx.reverse)), reversed(ctx.saved), strict=True):
            dh_t = dh[:bs] + d_out[row : row + bs]
            r, z = rz[:, :hid], rz[:, hid:]
            dn = (dh_t - dh_t * z) * (1 - n * n)  # through n, then tanh
            dg = d_gi[row : row + bs]
            torch.mul(dn, ghn, out=dg[:, :hid])
            torch.mul(dh_t, hp - n, out=dg[:, hid : 2 * hid])
            dg[:, : 2 * hid] *= rz * (1 - rz)  # through the sigmoids
            dg[:, 2 * hid :] = dn
            gh = dg.clone()
            gh[:, 2 * hid :] *= r  # the hidden projection's share of n
            d_gh.append(gh)
            dh[:bs] = torch.addmm(dh_t * z, gh, w_hh)
        all_gh = torch.cat(d_gh)
        all_hp = torch.cat([s[0] for s in reversed(ctx.saved)])
        return d_gi, dh, all_gh.t() @ all_hp, all_gh.sum(0), None, None


def gru(rnn: nn.GRU, inputs: Tensor, lengths: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``rnn`` over inputs [N, T, D] right-padded to ``lengths`` [N] (each >= 1): outputs [N, T, dirs * H] (0 after a
    sequence's end) and final states [layers * dirs, N, H], as the packed ``nn.GRU`` (see the module docstring)."""
    n, width, _ = inputs.shape
    dirs, hid = 2 if rnn.bidirectional else 1, rnn.hidden_size
    lengths = lengths.cpu()
    order = torch.argsort(lengths, descending=True, stable=True)
    running = lengths[order].unsqueeze(0) > torch.arange(int(lengths.max())).unsqueeze(1)  # [steps, N], sorted rows
    batch_sizes = running.sum(1).tolist()
    # Row n * T + t of the flattened batch for every packed row (time-major, sorted within a step): gathering and
    # scattering with it packs and unpacks in one indexing operation each, forward and backward.
    rows = (order.unsqueeze(0) * width + torch.arange(running.size(0)).unsqueeze(1))[running].to(inputs.device)
    order = order.to(inputs.device)
    start = inputs.new_zeros((rnn.num_layers * dirs, n, hid)) if h0 is None else h0
    start = start.index_select(1, order)
    x, finals = inputs.reshape(n * width, -1).index_select(0, rows), []
    for layer in range(rnn.num_layers):
        outs = []
        for d in range(dirs):
            sfx = f"l{layer}" + ("_reverse" if d else "")
            gi = nn.functional.linear(x, getattr(rnn, f"weight_ih_{sfx}"), getattr(rnn, f"bias_ih_{sfx}"))
            out, final = _GRULayer.apply(gi, start[layer * dirs + d], getattr(rnn, f"weight_hh_{sfx}"), getattr(rnn, f"bias_hh_{sfx}"),
                                         batch_sizes, bool(d))
            outs.append(out)
            finals.append(final)
        x = outs[0] if dirs == 1 else torch.cat(outs, dim=-1)
    outputs = x.new_zeros((n * width, x.size(-1))).index_copy(0, rows, x).view(n, width, -1)
    unsort = torch.empty_like(order)
    unsort[order] = torch.arange(n, device=order.device)
    return outputs, torch.stack(finals).index_select(1, unsort)
