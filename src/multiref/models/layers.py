"""Shared building blocks of the HRED family, following the authors' modules.

- :class:`SentenceEncoder`: bidirectional GRU over word embeddings; the sentence vector is the mean of the
  final states over directions and layers. Word encodings [H] average pairs of the GRU's [forward; backward]
  outputs [2H]: by default neighbouring units (the authors' ``view(B, T, H, 2).mean(3)``: unit i is the mean of
  units 2i and 2i + 1, so the first H/2 units are forward-only and the rest backward-only), or the two
  directions (``word_average="directions"``: unit i is the mean of forward i and backward i).
- :class:`RelFloorEncoder`: ``Linear([s; emb(same_floor)])`` with a 2-entry floor embedding
  (is the utterance's speaker the responder?).
- :class:`DialogueEncoder`: unidirectional GRU over sentence vectors; the dialogue vector is the mean
  of its final states over layers.
- :class:`AdditiveAttention`: ``e = w_emit tanh(W_q q + W_c c)``, ``out = tanh(W_out [sum a c; q])``.
- :class:`AttentionDecoder`: ``x_t = feat_fc([emb(y_{t-1}); feat])``, GRU, attention over the context's
  word encodings, ``project_fc`` to the embedding size and a classifier tied to the embeddings.
- :class:`LuongDecoder` (Mirror and its Seq2SeqAttn baseline, OpenNMT-py 0.x): LSTM with Luong "general"
  attention and input feeding, an optional per-step feature (Mirror's z) appended to every input, its
  own output layer; :class:`LuongState` is its state between steps.

Dropout is the authors': embedding-row dropout (a word is dropped everywhere in the batch), "locked"
dropout with one mask per feature shared across batch and time, and (``layer_dropout``) PyTorch's dropout
between the stacked layers of the sentence and dialogue encoder GRUs; the decoder GRU has none.

Initialisation is the authors' ``init_module_weights``: GRU weight matrices Xavier-uniform (biases keep
PyTorch's default), the attention's and the decoder's linear layers and the floor encoder's linear layer
U(-0.1, 0.1) with zero bias, the floor embedding U(-1, 1); the tied classifier's bias keeps PyTorch's default.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from multiref.models import fast_gru
from multiref.models.fused_attention import additive_scores


def init_linear(module: nn.Linear, scale: float = 0.1) -> None:
    """Uniform(-scale, scale) weights and zero bias, as the authors' ``init_module_weights``."""
    nn.init.uniform_(module.weight, -scale, scale)
    if module.bias is not None:
        nn.init.zeros_(module.bias)


def init_rnn(module: nn.RNNBase) -> None:
    """Xavier-uniform weight matrices (biases keep PyTorch's default), as the authors do."""
    for name, param in module.named_parameters():
        if "weight" in name:
            nn.init.xavier_uniform_(param)


def embedded_dropout(embedding: nn.Embedding, words: Tensor, p: float, training: bool) -> Tensor:
    """Embeddings of ``words`` with whole rows of the embedding matrix dropped with probability ``p``."""
    weight = embedding.weight
    if training and p > 0:
        mask = weight.new_empty((weight.size(0), 1)).bernoulli_(1 - p) / (1 - p)
        weight = weight * mask
    return nn.functional.embedding(words, weight, embedding.padding_idx)


def token_nll(logits: Tensor, y: Tensor, pad_id: int) -> Tensor:
    """-log p(y_t | y_<t, ...) of every token of responses y [B, Ty] (``<s>`` ... ``</s>``, right-padded) under a
    word decoder's teacher-forced logits [B, Ty - 1, V]: [B, Ty - 1], 0 on padding. Every model's reconstruction
    term is a sum of these."""
    target = y[:, 1:]
    flat = nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), target.reshape(-1), ignore_index=pad_id, reduction="none")
    return flat.view(target.shape)  # the [B * T, V] layout: no transposed copy of the logits


def response_nll(logits: Tensor, y: Tensor, pad_id: int) -> dict[str, Tensor]:
    """The teacher-forced loss of a word decoder over responses y [B, Ty] (``<s>`` ... ``</s>``, right-padded)
    from its logits [B, Ty - 1, V]: the per-sentence NLL averaged over the batch (``loss``), the summed
    token NLL and token count (perplexity), the token NLLs [B, Ty - 1], and the token perplexity
    (``monitor``)."""
    nll = token_nll(logits, y, pad_id)
    n_tokens = (y[:, 1:] != pad_id).sum()
    return {"loss": nll.sum(1).mean(), "nll_sum": nll.sum(), "n_tokens": n_tokens, "token_nll": nll,
            "monitor": (nll.sum() / n_tokens.clamp(min=1)).exp().detach()}


class LockedDropout(nn.Module):
    """Dropout with one mask per feature, shared over the batch and the time steps."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        shape = (1,) * (x.dim() - 1) + (x.size(-1),)
        return x * x.new_empty(shape).bernoulli_(1 - self.p) / (1 - self.p)


def _run_gru(rnn: nn.GRU, inputs: Tensor, lengths: Tensor, h0: Tensor | None = None, optimised: bool = True) -> tuple[Tensor, Tensor]:
    """A GRU over padded sequences (length 0 treated as 1, as the authors do). ``optimised``: in training (with
    gradients, on the CPU) :func:`multiref.models.fast_gru.gru`, otherwise PyTorch's packed GRU; the same function."""
    lengths = lengths.clamp(min=1).cpu()
    if optimised and torch.is_grad_enabled() and fast_gru.supported(rnn, inputs):
        return fast_gru.gru(rnn, inputs, lengths, h0)
    packed = pack_padded_sequence(inputs, lengths, batch_first=True, enforce_sorted=False)
    outputs, final = rnn(packed) if h0 is None else rnn(packed, h0)
    outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=inputs.size(1))
    return outputs, final


def set_optimised(model: nn.Module, optimised: bool) -> None:
    """Switch every module of ``model`` that has an optimised training path (the fused additive attention, the
    hand-differentiated GRUs) to it (True, the default) or to the plain formulation it replaces (False, kept as
    the reference of the equivalence tests). Both compute the same function; parameters are shared."""
    for module in model.modules():
        if hasattr(module, "optimised"):
            module.optimised = optimised


WORD_AVERAGES = ("adjacent", "directions")


class SentenceEncoder(nn.Module):
    optimised: bool = True  # see set_optimised

    def __init__(self, embedding: nn.Embedding, hidden: int, layers: int, dropout: float, word_average: str = "adjacent",
                 layer_dropout: bool = True) -> None:
        super().__init__()
        if word_average not in WORD_AVERAGES:
            raise ValueError(f"word_average must be one of {list(WORD_AVERAGES)}, got {word_average!r}")
        self.embedding = embedding
        self.hidden = hidden
        self.word_average = word_average
        between = dropout if layer_dropout and layers > 1 else 0.0  # the authors' dropout_hidden
        self.rnn = nn.GRU(embedding.embedding_dim, hidden, layers, batch_first=True, bidirectional=True, dropout=between)
        self.p_emb = dropout
        self.drop = LockedDropout(dropout)
        init_rnn(self.rnn)

    def forward(self, words: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """words [N, T] -> word encodings [N, T, H] and sentence vectors [N, H]."""
        x = self.drop(embedded_dropout(self.embedding, words, self.p_emb, self.training))
        outputs, final = _run_gru(self.rnn, x, lengths, optimised=self.optimised)  # outputs [N, T, 2H] = [forward; backward]
        n, t = words.shape
        if self.word_average == "adjacent":  # the authors' view(B, T, H, 2).mean(3)
            outputs = outputs.view(n, t, self.hidden, 2).mean(3)
        else:
            outputs = outputs.view(n, t, 2, self.hidden).mean(2)
        return self.drop(outputs), self.drop(final.mean(0))


class RelFloorEncoder(nn.Module):
    def __init__(self, hidden: int, floor_dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(2, floor_dim)
        self.linear = nn.Linear(hidden + floor_dim, hidden)
        nn.init.uniform_(self.embedding.weight, -1.0, 1.0)
        init_linear(self.linear)

    def forward(self, sentences: Tensor, floors: Tensor, response_floor: Tensor) -> Tensor:
        """sentences [B, C, H], floors [B, C], response_floor [B] -> [B, C, H]."""
        same = (floors == response_floor.unsqueeze(1)).long()
        return self.linear(torch.cat([sentences, self.embedding(same)], dim=-1))


class DialogueEncoder(nn.Module):
    optimised: bool = True  # see set_optimised

    def __init__(self, input_dim: int, hidden: int, layers: int, dropout: float, layer_dropout: bool = True) -> None:
        super().__init__()
        between = dropout if layer_dropout and layers > 1 else 0.0  # the authors' dropout_hidden
        self.rnn = nn.GRU(input_dim, hidden, layers, batch_first=True, dropout=between)
        self.drop = LockedDropout(dropout)
        init_rnn(self.rnn)

    def forward(self, sentences: Tensor, n_turns: Tensor) -> Tensor:
        """sentences [B, C, H] with ``n_turns`` real turns each -> dialogue vector [B, H]."""
        _, final = _run_gru(self.rnn, sentences, n_turns, optimised=self.optimised)
        return self.drop(final.mean(0))


class AdditiveAttention(nn.Module):
    """``e = w_emit tanh(W_q q + W_c c)``, ``out = tanh(W_out [sum a c; q])``.

    ``optimised`` (default True; on the CPU, a GPU keeps the plain path): the scores come from :func:`multiref.models.fused_attention.additive_scores`
    over the unmasked context positions only (moved to the front of each row), without the [B, Q, K, H]
    tanh tensor; False: the plain formulation, kept as the reference of the equivalence tests. Both give the
    same outputs, weights and gradients up to float rounding.
    """

    optimised: bool = True

    def __init__(self, query_dim: int, context_dim: int, hidden: int) -> None:
        super().__init__()
        self.w_query = nn.Linear(query_dim, hidden)
        self.w_context = nn.Linear(context_dim, hidden)
        self.w_emit = nn.Linear(hidden, 1)
        self.linear_out = nn.Linear(query_dim + context_dim, query_dim)
        for layer in (self.w_query, self.w_context, self.w_emit, self.linear_out):
            init_linear(layer)

    def forward(self, query: Tensor, context: Tensor, mask: Tensor, query_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """query [B, Q, Dq], context [B, K, Dc], mask [B, K] (True = attend) -> ([B, Q, Dq], [B, Q, K]).

        ``query_mask`` [B, Q] (optional, True = needed) is a hint: the fused path gives the queries after a
        row's last needed one no attention (a zero context vector) instead of computing it; the plain path
        ignores it. Callers pass it where those outputs carry no loss (teacher forcing over padding)."""
        if not self.optimised or query.device.type != "cpu" or torch.is_autocast_enabled("cpu"):
            scores = self.w_emit(torch.tanh(self.w_context(context).unsqueeze(1) + self.w_query(query).unsqueeze(2))).squeeze(-1)
            return self._mix(scores.masked_fill(~mask.unsqueeze(1), float("-inf")), context, query)
        # The unmasked positions first (stable, so their order is kept), then only as many as the fullest row has.
        order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)[:, : max(int(mask.sum(1).max()), 1)]
        kept = context.gather(1, order.unsqueeze(-1).expand(-1, -1, context.size(-1)))
        kept_mask = mask.gather(1, order)
        positions = torch.arange(1, query.size(1) + 1, device=query.device)
        q_len = (positions if query_mask is None else query_mask * positions).amax(-1).expand(query.size(0))  # last needed + 1
        scores = additive_scores(self.w_query(query), self.w_context(kept), self.w_emit.weight[0], q_len.tolist(), kept_mask.sum(1).tolist())
        keep = kept_mask.unsqueeze(1) & (positions <= q_len.unsqueeze(1)).unsqueeze(2)
        out, attn = self._mix((scores + self.w_emit.bias).masked_fill(~keep, float("-inf")), kept, query)
        return out, attn.new_zeros((*attn.shape[:2], context.size(1))).scatter_(2, order.unsqueeze(1).expand_as(attn), attn)

    def _mix(self, scores: Tensor, context: Tensor, query: Tensor) -> tuple[Tensor, Tensor]:
        """The output and the attention weights from the masked scores [B, Q, K] (-inf = masked)."""
        attn = torch.nan_to_num(scores.softmax(-1), nan=0.0)  # a row with nothing to attend gets zeros
        mixed = torch.bmm(attn, context)
        return torch.tanh(self.linear_out(torch.cat([mixed, query], dim=-1))), attn


class AttentionDecoder(nn.Module):
    optimised: bool = True  # see set_optimised

    def __init__(self, embedding: nn.Embedding, hidden: int, layers: int, feat_dim: int, attn_dim: int, dropout: float) -> None:
        super().__init__()
        emb_dim = embedding.embedding_dim
        self.embedding = embedding
        self.layers, self.hidden = layers, hidden
        self.feat_fc = nn.Linear(emb_dim + feat_dim, emb_dim)
        self.rnn = nn.GRU(emb_dim, hidden, layers, batch_first=True)
        self.attention = AdditiveAttention(hidden, attn_dim, hidden)
        self.project_fc = nn.Linear(hidden, emb_dim)
        self.classifier = nn.Linear(emb_dim, embedding.num_embeddings)
        self.classifier.weight = embedding.weight  # tied output embeddings; its bias keeps PyTorch's default, as the authors'
        self.p_emb = dropout
        self.drop = LockedDropout(dropout)
        init_linear(self.feat_fc)
        init_linear(self.project_fc)
        init_rnn(self.rnn)  # no dropout between its layers (the authors' decoders.py leaves it out)

    def forward(self, inputs: Tensor, h0: Tensor, feat: Tensor, memory: Tensor, memory_mask: Tensor,
                needed: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Teacher forcing (or one step): inputs [B, T] -> logits [B, T, V] and the last hidden state.

        ``needed`` [B, T] (optional): the positions whose logits carry a loss (real target tokens); the
        attention may skip the others (see :class:`AdditiveAttention`), whose logits are then not the
        plain formulation's."""
        x = embedded_dropout(self.embedding, inputs, self.p_emb, self.training)
        x = self.feat_fc(torch.cat([x, feat.unsqueeze(1).expand(-1, inputs.size(1), -1)], dim=-1))
        x = self.drop(x)
        if self.optimised and torch.is_grad_enabled() and fast_gru.supported(self.rnn, x):
            outputs, hidden = fast_gru.gru(self.rnn, x, torch.full((x.size(0),), x.size(1)), h0)
        else:
            outputs, hidden = self.rnn(x, h0)
        outputs, _ = self.attention(self.drop(outputs), memory, memory_mask, needed)
        return self.classifier(self.project_fc(outputs)), hidden


class LuongState(NamedTuple):
    """A :class:`LuongDecoder`'s state between steps, batch first (a beam search reorders dim 0)."""

    h: Tensor  # [B, layers, H]
    c: Tensor  # [B, layers, H], the LSTM cell state
    feed: Tensor  # [B, H]: o_{t-1}, the input feed (zeros before the first step)


class LuongDecoder(nn.Module):
    """LSTM decoder with Luong et al. (2015) "general" attention and input feeding and its own output layer
    (OpenNMT-py 0.x's ``InputFeedRNNDecoder``; with ``feat_dim`` > 0 the Mirror authors'
    ``Input_Z_FeedRNNDecoder``, which appends a feature such as the latent z to every step's input):

        d_t = LSTM([e(y_{t-1}); o_{t-1}; feat], d_{t-1}),   o_0 = 0
        a_t = softmax_j(d_t^T W_a H_j)                       over the memory positions the mask keeps
        o_t = dropout(tanh(W_o [sum_j a_tj H_j; d_t]))       also the next step's input feed
        logits_t = W_g o_t + b_g

    As OpenNMT-py 0.x: dropout between stacked LSTM layers and on o_t, bias-free W_a and W_o. The caller
    embeds the words (``emb``) and draws the weights (they keep PyTorch's default initialisation here).
    """

    def __init__(self, embedding_dim: int, hidden: int, layers: int, vocab_size: int, dropout: float, feat_dim: int = 0) -> None:
        super().__init__()
        self.rnn = nn.LSTM(embedding_dim + hidden + feat_dim, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.attn_in = nn.Linear(hidden, hidden, bias=False)  # W_a
        self.attn_out = nn.Linear(2 * hidden, hidden, bias=False)  # W_o
        self.drop = nn.Dropout(dropout)
        self.generator = nn.Linear(hidden, vocab_size)  # W_g, b_g

    def attend(self, d: Tensor, memory: Tensor, mask: Tensor) -> Tensor:
        """o_t [B, H] from d_t [B, H] and the memory [B, S, H] with its mask [B, S] (True = attend)."""
        scores = torch.bmm(memory, self.attn_in(d).unsqueeze(2)).squeeze(2).masked_fill(~mask, float("-inf"))
        mixed = torch.bmm(scores.softmax(-1).unsqueeze(1), memory).squeeze(1)
        return self.drop(torch.tanh(self.attn_out(torch.cat([mixed, d], dim=-1))))

    def step(self, emb: Tensor, state: LuongState, memory: Tensor, mask: Tensor, feat: Tensor | None = None) -> tuple[Tensor, LuongState]:
        """One step: emb [B, E] of the previous word (and feat [B, F]) -> o_t [B, H] and the new state."""
        inputs = torch.cat([emb, state.feed] if feat is None else [emb, state.feed, feat], dim=-1).unsqueeze(1)
        out, (h, c) = self.rnn(inputs, (state.h.transpose(0, 1).contiguous(), state.c.transpose(0, 1).contiguous()))
        o = self.attend(out.squeeze(1), memory, mask)
        return o, LuongState(h.transpose(0, 1), c.transpose(0, 1), o)

    def forward(self, emb: Tensor, state: LuongState, memory: Tensor, mask: Tensor, feat: Tensor | None = None) -> tuple[Tensor, LuongState]:
        """Teacher forcing over emb [B, T, E] -> logits [B, T, V] and the final state."""
        outputs = []
        for t in range(emb.size(1)):
            o, state = self.step(emb[:, t], state, memory, mask, feat)
            outputs.append(o)
        return self.generator(torch.stack(outputs, dim=1)), state
