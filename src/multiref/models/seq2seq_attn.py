"""Seq2SeqAttn: the LSTM encoder-decoder with attention that Li, Kiseleva & de Rijke (SIGIR 2021) compare
Mirror with (§4.2, "a LSTM-based dialogue generation model with attention mechanism"), as the OpenNMT-py 0.x
``rnn`` model of the code that produced their baseline outputs (abaheti95/DC-NeuralConversation).

The context turns are joined into one source sequence, the authors' ``c __utt__ x``:

    s        = c_1 <sep> c_2 <sep> ... <sep> c_n      each turn without its <s> / </s>; the vocabulary has
                                                     no ``__utt__``, its ``<sep>`` special plays that part
    H, (h,c) = LSTM_enc(E_src s)                      memory bank H = (H_1..H_S), final states per layer
    d_0      = (h, c),  o_0 = 0
    d_t      = LSTM_dec([E_tgt y_{t-1} ; o_{t-1}], d_{t-1})          input feeding (Luong et al., 2015)
    a_t      = softmax_j(d_t^T W_a H_j)                              Luong "general" attention
    o_t      = dropout(tanh(W_o [sum_j a_tj H_j ; d_t]))
    p(y_t | y_<t, s) = softmax(W_g o_t + b_g)

The decoder is :class:`multiref.models.layers.LuongDecoder` (Mirror's, without its z).

Triples (c, x, y) are examples whose context is [c, x]; any number of turns is joined the same way. The
backward model p(x | y) of MMI (:mod:`multiref.mirror.mmi`) is this model trained on examples whose context
is [y] and whose response is x: the source is then y alone. Floors are not used (the model has none).

As in OpenNMT-py 0.x: no embedding dropout, dropout between stacked LSTM layers and on the attention output
(which is also the next step's input feed), a bias-free ``W_a`` and ``W_o``, every parameter drawn from
U(-init_scale, init_scale) (``-param_init``), separate source and target embeddings unless
``share_embeddings`` (``-share_embeddings``), a bidirectional encoder with ``hidden / 2`` units per
direction and per-layer concatenated final states when ``bidirectional_encoder`` (``-encoder_type brnn``).
The loss is the response's token NLL (``</s>`` included) summed per response and averaged over the batch
(per-sentence normalisation, as the Mirror code); the dev monitor is the token-level perplexity.

Defaults are the sizes the Mirror paper gives for its own networks (2-layer LSTMs of 1,000 units,
200-dimensional embeddings; dropout 0.3 and init 0.08 from its code): the paper gives none for the
baseline, whose DC-NeuralConversation README trains a 4-layer brnn of 1,000 units with 1,000-dimensional
embeddings (a config change). Test decoding is beam search (:mod:`multiref.models.beam`) with the settings
of the Mirror code and of the DC-NeuralConversation translator: beam 10 and OpenNMT's ``min_length`` 3,
which counts ``<s>`` and so forbids ``</s>`` before two words (``min_len`` 2 here, which counts words);
:meth:`Seq2SeqAttn.n_best` gives the N-best list that MMI reranks. The first token is never ``<unk>``
(``ban_unk_first``, default on): the translators of both codes give it a score of -100000 at the first step
(cszmli/mirror-sigir ``onmt/translate/Beam.py:415-433``; DC-NeuralConversation's ``Beam.py:388-403``, which also
bans it at every later step together with its distributional constraints); greedy decoding does the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from multiref.data.pairs import SPECIAL_TOKENS
from multiref.models.beam import Hypothesis, beam_search, hypotheses_to_ids
from multiref.models.layers import LuongDecoder, LuongState, response_nll

# The decoding state carried between steps (and reordered by the beam search on dim 0): the decoder's
# LuongState (h, c [B, layers, H], input feed o_{t-1} [B, H]), the memory bank [B, S, H] and its mask [B, S].
DecoderState = tuple[LuongState, Tensor, Tensor]


@dataclass(frozen=True)
class Seq2SeqAttnConfig:
    vocab_size: int
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    sep_id: int = SPECIAL_TOKENS.index("<sep>")  # joins the context turns (the authors' ``__utt__``)
    unk_id: int = SPECIAL_TOKENS.index("<unk>")
    embedding_dim: int = 200
    hidden: int = 1000
    layers: int = 2
    dropout: float = 0.3
    init_scale: float = 0.08
    bidirectional_encoder: bool = False
    share_embeddings: bool = False
    beam: int = 10  # test decoding (generate)
    min_len: int = 2  # fewest tokens before </s>: OpenNMT 0.x's min_length 3 counts <s> (see the module docstring)
    ban_unk_first: bool = True  # the authors' decoders never start a response with <unk> (see the module docstring)

    def __post_init__(self) -> None:
        for name in ("pad_id", "bos_id", "eos_id", "sep_id", "unk_id"):
            value = getattr(self, name)
            if not 0 <= value < self.vocab_size:
                raise ValueError(f"{name} {value} lies outside the vocabulary of {self.vocab_size} entries")
        for name in ("embedding_dim", "hidden", "layers", "beam"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.bidirectional_encoder and self.hidden % 2:
            raise ValueError(f"a bidirectional encoder needs an even hidden size (hidden / 2 per direction), got hidden={self.hidden}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")
        if self.min_len < 0:
            raise ValueError(f"min_len must be >= 0, got {self.min_len}")


class Seq2SeqAttn(nn.Module):
    likelihood_needs_samples = False  # log_likelihood is exact

    def __init__(self, cfg: Seq2SeqAttnConfig) -> None:
        super().__init__()
        self.cfg = cfg
        e, h, n = cfg.embedding_dim, cfg.hidden, cfg.layers
        between = cfg.dropout if n > 1 else 0.0  # dropout between stacked LSTM layers
        self.src_embedding = nn.Embedding(cfg.vocab_size, e, padding_idx=cfg.pad_id)
        self.tgt_embedding = self.src_embedding if cfg.share_embeddings else nn.Embedding(cfg.vocab_size, e, padding_idx=cfg.pad_id)
        bi = cfg.bidirectional_encoder
        self.encoder = nn.LSTM(e, h // 2 if bi else h, n, batch_first=True, dropout=between, bidirectional=bi)
        self.decoder = LuongDecoder(e, h, n, cfg.vocab_size, cfg.dropout)  # LSTM_dec, W_a, W_o, W_g
        for p in self.parameters():
            nn.init.uniform_(p, -cfg.init_scale, cfg.init_scale)
        with torch.no_grad():
            self.src_embedding.weight[cfg.pad_id].zero_()
            self.tgt_embedding.weight[cfg.pad_id].zero_()

    def word_embeddings(self) -> list[nn.Embedding]:
        """The tables that initial word vectors go into: source and target (one table when shared), as
        OpenNMT-py's ``-pre_word_vecs_enc`` and ``-pre_word_vecs_dec``."""
        return [self.src_embedding, self.tgt_embedding]

    # -- encoder ---------------------------------------------------------------------------------------

    def source(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The encoder input: context turns x [B, C, T] joined into s [B, S] (``<sep>`` between turns,
        each turn without ``<s>``/``</s>``, all-padding turns skipped, right-padded) and lengths [B]."""
        cfg = self.cfg
        rows: list[list[int]] = []
        for turns in x.tolist():
            joined: list[int] = []
            real = [[t for t in turn if t != cfg.pad_id] for turn in turns]
            for j, ids in enumerate(u for u in real if u):
                if ids[0] == cfg.bos_id:
                    ids = ids[1:]
                if ids and ids[-1] == cfg.eos_id:
                    ids = ids[:-1]
                joined += ([cfg.sep_id] if j else []) + ids
            rows.append(joined)
        width = max([len(r) for r in rows] + [1])
        src = torch.full((len(rows), width), cfg.pad_id, dtype=torch.long)
        for i, r in enumerate(rows):
            src[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        return src.to(x.device), torch.tensor([len(r) for r in rows], dtype=torch.long, device=x.device)

    def encode(self, x: Tensor) -> DecoderState:
        """The decoder's initial state from the context turns x [B, C, T]."""
        src, lengths = self.source(x)
        packed = pack_padded_sequence(self.src_embedding(src), lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        outputs, (h, c) = self.encoder(packed)
        memory, _ = pad_packed_sequence(outputs, batch_first=True, total_length=src.size(1))
        if self.cfg.bidirectional_encoder:  # [2 * layers, B, H/2] -> [layers, B, H]: both directions per layer
            h, c = (torch.cat([s[0::2], s[1::2]], dim=-1) for s in (h, c))
        # An empty source (no context words) is read as one padding token, which is then attended to.
        mask = torch.arange(src.size(1), device=src.device).unsqueeze(0) < lengths.clamp(min=1).unsqueeze(1)
        feed = memory.new_zeros(memory.size(0), self.cfg.hidden)  # o_0 = 0
        return LuongState(h.transpose(0, 1), c.transpose(0, 1), feed), memory, mask

    # -- decoder ---------------------------------------------------------------------------------------

    def logits(self, x: Tensor, y: Tensor) -> Tensor:
        """Teacher forcing: logits [B, Ty-1, V] of y[:, 1:] given y[:, :-1] and the context x."""
        state, memory, mask = self.encode(x)
        logits, _ = self.decoder(self.tgt_embedding(y[:, :-1]), state, memory, mask)
        return logits

    def forward(self, x: Tensor, x_floor: Tensor, y: Tensor, y_floor: Tensor, step: int = 0) -> dict[str, Tensor]:
        """Teacher-forced loss of responses y [B, Ty] (``<s>`` ... ``</s>``, right-padded); floors and
        ``step`` are unused."""
        return response_nll(self.logits(x, y), y, self.cfg.pad_id)

    @torch.no_grad()
    def log_likelihood(self, x: Tensor, x_floor: Tensor, y: Tensor, y_floor: Tensor) -> Tensor:
        """log p(y | context) of each response [B]: the sum of its token log-probabilities (``</s>`` included)."""
        return -self(x, x_floor, y, y_floor)["token_nll"].sum(1)

    # -- decoding --------------------------------------------------------------------------------------

    def _step_log_probs(self, tokens: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        """One decoder step: previous tokens [B] -> log p(y_t | y_<t, s) [B, V] and the new state."""
        dec, memory, mask = state
        o, dec = self.decoder.step(self.tgt_embedding(tokens), dec, memory, mask)
        return self.decoder.generator(o).log_softmax(-1), (dec, memory, mask)

    def banned_first(self) -> tuple[int, ...]:
        """The tokens a response may not start with: ``<unk>`` (``cfg.ban_unk_first``) or none."""
        return (self.cfg.unk_id,) if self.cfg.ban_unk_first else ()

    @torch.no_grad()
    def greedy(self, x: Tensor, x_floor: Tensor, y_floor: Tensor, max_len: int = 40) -> Tensor:
        """Greedy decoding: ids [B, <= max_len], ``</s>`` then padding."""
        state = self.encode(x)
        token = torch.full((x.size(0),), self.cfg.bos_id, dtype=torch.long, device=x.device)
        out, done = [], torch.zeros(x.size(0), dtype=torch.bool, device=x.device)
        for t in range(max_len):
            log_probs, state = self._step_log_probs(token, state)
            if t == 0 and self.banned_first():
                log_probs[:, list(self.banned_first())] = float("-inf")
            token = log_probs.argmax(-1)
            out.append(token.masked_fill(done, self.cfg.pad_id))
            done |= token == self.cfg.eos_id
            if done.all():
                break
        return torch.stack(out, dim=1)

    @torch.no_grad()
    def n_best(self, x: Tensor, x_floor: Tensor, y_floor: Tensor, n: int, max_len: int = 40, beam: int | None = None) -> list[list[Hypothesis]]:
        """The n best beam-search hypotheses of each context, best first, with their log-probabilities
        (beam ``max(n, cfg.beam)`` unless given; ``cfg.min_len``)."""
        width = max(n, self.cfg.beam) if beam is None else beam
        return beam_search(self._step_log_probs, self.encode(x), x.size(0), self.cfg.bos_id, self.cfg.eos_id,
                           beam=width, max_len=max_len, min_len=self.cfg.min_len, n_best=n, ban_first=self.banned_first())

    @torch.no_grad()
    def generate(self, x: Tensor, x_floor: Tensor, y_floor: Tensor, max_len: int = 40) -> Tensor:
        """Beam-search decoding (``cfg.beam``, ``cfg.min_len``): ids [B, <= max_len] as :meth:`greedy`'s."""
        best = [hyps[0] for hyps in self.n_best(x, x_floor, y_floor, 1, max_len, beam=self.cfg.beam)]
        return hypotheses_to_ids(best, self.cfg.eos_id, self.cfg.pad_id, x.device)

