"""HRED (Serban et al., 2016) as in Zhao, Lala & Kawahara (2021), §4.1 and Appendix B.1.

For a context of utterances x_1..x_n with floors f_1..f_n and a response y spoken by floor f_y:

    w_i, h_i = SentEnc(x_i)                      word encodings and sentence vector (biGRU)
    s_i      = W_f [h_i ; e(f_i == f_y)]         relative floor encoding
    c        = DialEnc(s_1, ..., s_n)            dialogue vector (GRU)
    d_0      = W_init c
    d_t      = GRU(W_x [e(y_{t-1}) ; c], d_{t-1})
    o_t      = Attn(d_t, {w_i})                  additive attention over all context words
    p(y_t | y_<t, x) = softmax(E^T W_p o_t + b)  tied output embeddings

The loss is the negative log-likelihood of the response tokens after ``<s>`` (``</s>`` included),
summed over a response's tokens and averaged over the batch, as the authors' code does. The dev
monitor (learning-rate decay, best model) is the authors' too: the batch's token-level perplexity.
HRED_l and HRED_xl are the same model with larger ``hidden`` and ``layers``; each GRU's size can also be
set on its own (``sent_*``, ``dial_*``, ``dec_*``), as the authors' code allows. As the authors' code:
multi-layer encoder GRUs have ``dropout`` between their layers (``encoder_layer_dropout``), the decoder GRU
none; word encodings average neighbouring units of the biGRU's output (``word_average``, see
:class:`multiref.models.layers.SentenceEncoder`); ``W_init`` is drawn from U(-0.08, 0.08) with zero bias.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from multiref.models.layers import (
    AttentionDecoder,
    DialogueEncoder,
    RelFloorEncoder,
    SentenceEncoder,
    init_linear,
    response_nll,
)


@dataclass(frozen=True)
class HREDConfig:
    vocab_size: int
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    embedding_dim: int = 200
    floor_dim: int = 30
    hidden: int = 500
    layers: int = 1
    dropout: float = 0.2
    # Per-GRU sizes; None takes ``hidden`` / ``layers``.
    sent_hidden: int | None = None
    sent_layers: int | None = None
    dial_hidden: int | None = None
    dial_layers: int | None = None
    dec_hidden: int | None = None
    dec_layers: int | None = None
    # The authors' choices (docs/fidelity.md, Models): word encodings average neighbouring units of the biGRU's
    # [forward; backward] output ("adjacent"; "directions": the mean of the two directions), and ``dropout``
    # between the layers of multi-layer encoder GRUs (False: none).
    word_average: str = "adjacent"
    encoder_layer_dropout: bool = True

    @property
    def sizes(self) -> dict[str, tuple[int, int]]:
        """(hidden units, layers) of the sentence encoder, dialogue encoder and decoder."""
        def pick(h: int | None, n: int | None) -> tuple[int, int]:
            return (self.hidden if h is None else h, self.layers if n is None else n)

        return {"sent": pick(self.sent_hidden, self.sent_layers), "dial": pick(self.dial_hidden, self.dial_layers),
                "dec": pick(self.dec_hidden, self.dec_layers)}


class HRED(nn.Module):
    likelihood_needs_samples = False  # log_likelihood is exact (latent-variable subclasses set True)

    def __init__(self, cfg: HREDConfig) -> None:
        super().__init__()
        self.cfg = cfg
        (s, s_layers), (d, d_layers), (h, h_layers) = cfg.sizes.values()
        self.sent_dim, self.ctx_dim, self.dec_hidden, self.dec_layers = s, d, h, h_layers
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.embedding_dim, padding_idx=cfg.pad_id)
        nn.init.uniform_(self.embedding.weight, -1.0, 1.0)  # the authors' init without pretrained vectors
        with torch.no_grad():
            self.embedding.weight[cfg.pad_id].zero_()
        self.sentence_encoder = SentenceEncoder(self.embedding, s, s_layers, cfg.dropout, cfg.word_average, cfg.encoder_layer_dropout)
        self.floor_encoder = RelFloorEncoder(s, cfg.floor_dim)
        self.dialogue_encoder = DialogueEncoder(s, d, d_layers, cfg.dropout, cfg.encoder_layer_dropout)
        self.enc2dec = nn.Linear(d, h_layers * h)
        init_linear(self.enc2dec, 0.08)  # the authors' init_module_weights default
        self.decoder = AttentionDecoder(self.embedding, h, h_layers, d, s, cfg.dropout)

    def word_embeddings(self) -> list[nn.Embedding]:
        """The table that initial word vectors go into (shared by the encoder, the decoder and the tied
        classifier)."""
        return [self.embedding]

    def encode(self, x: Tensor, x_floor: Tensor, y_floor: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x [B, C, T] context ids (padded turns are all padding) -> memory [B, C*T, H], its mask, c [B, H]."""
        b, turns, width = x.shape
        lengths = (x != self.cfg.pad_id).sum(-1)  # [B, C]
        words, sentences = self.sentence_encoder(x.view(b * turns, width), lengths.view(-1))
        sentences = self.floor_encoder(sentences.view(b, turns, -1), x_floor, y_floor)
        context = self.dialogue_encoder(sentences, (lengths > 0).sum(-1))
        memory = words.reshape(b, turns * width, -1)
        return memory, (x != self.cfg.pad_id).view(b, turns * width), context

    def initial_state(self, context: Tensor) -> Tensor:
        h = self.enc2dec(context).view(context.size(0), self.dec_layers, self.dec_hidden)
        return h.transpose(0, 1).contiguous()

    def forward(self, x: Tensor, x_floor: Tensor, y: Tensor, y_floor: Tensor, step: int = 0) -> dict[str, Tensor]:
        """Teacher-forced loss of responses y [B, Ty] (``<s>`` ... ``</s>``, right-padded); ``step`` is
        unused here (latent models anneal their KL term with it)."""
        memory, mask, context = self.encode(x, x_floor, y_floor)
        logits, _ = self.decoder(y[:, :-1], self.initial_state(context), context, memory, mask, y[:, 1:] != self.cfg.pad_id)
        return response_nll(logits, y, self.cfg.pad_id)

    @torch.no_grad()
    def log_likelihood(self, x: Tensor, x_floor: Tensor, y: Tensor, y_floor: Tensor) -> Tensor:
        """log p(y | x) of each response [B]: the sum of its token log-probabilities (``</s>`` included)."""
        return -self(x, x_floor, y, y_floor)["token_nll"].sum(1)

    @torch.no_grad()
    def greedy(self, x: Tensor, x_floor: Tensor, y_floor: Tensor, max_len: int = 40) -> Tensor:
        """Greedy decoding (the authors' test decoding): ids [B, <= max_len], ``</s>`` then padding."""
        memory, mask, context = self.encode(x, x_floor, y_floor)
        return self._greedy_from(context, memory, mask, max_len)

    def _greedy_from(self, context: Tensor, memory: Tensor, mask: Tensor, max_len: int) -> Tensor:
        """Greedy decoding from a decoder context vector [B, H] and the word memory."""
        hidden = self.initial_state(context)
        token = torch.full((context.size(0), 1), self.cfg.bos_id, dtype=torch.long, device=context.device)
        out, done = [], torch.zeros(context.size(0), dtype=torch.bool, device=context.device)
        for _ in range(max_len):
            logits, hidden = self.decoder(token, hidden, context, memory, mask)
            token = logits[:, -1].argmax(-1, keepdim=True)
            out.append(token.masked_fill(done.unsqueeze(1), self.cfg.pad_id))
            done |= token.squeeze(1) == self.cfg.eos_id
            if done.all():
                break
        return torch.cat(out, dim=1)


def parameter_count(model: nn.Module) -> int:
    """Distinct parameters (tied weights counted once), as ``sum(p.numel() for p in parameters())``."""
    return sum(p.numel() for p in model.parameters())
