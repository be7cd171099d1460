"""Mirror (Li, Kiseleva & de Rijke, SIGIR 2021): dialogue generation trained with backward reasoning.

A triple is a context c (turn t-2), a query x (turn t-1) and a response y (turn t); in the pipeline's
batches (:func:`multiref.models.data.collate`) it is an example whose context has exactly two turns,
``x[:, 0]`` = c and ``x[:, 1]`` = x (:mod:`multiref.mirror.triples`). Floors are not used. §3.2.4 and the
authors' code (cszmli/mirror-sigir, OpenNMT-py 0.x):

    H_c, (h_c, s_c) = Enc_ctx(c)                      context encoder (LSTM)
    H_x, (h_x, s_x) = Enc_utt(x),  H_y, (h_y, s_y) = Enc_utt(y)        one utterance encoder for x and y
    c = S_c(h_c, s_c),  x = S_x(h_x, s_x),  y = S_y(h_y, s_y)          summaries: every layer's final h
        and cell state flattened, ReLU(Linear(layers*H -> H/2)) each, concatenated -> H
    q(z | c, x, y) = N(mu, diag(exp(logvar))),  g = ReLU(W [c; x; y]),  mu = W_mu g,  logvar = W_lv g
    p(z | c)       = N(mu', diag(exp(logvar'))), the same network shape on c
    z = mu + exp(logvar / 2) * eps                    reparameterisation (Kingma & Welling [12])
    Dec1 p(y | c, z, x): d_0 = ReLU(W_1 [c; x]), attends over H_x
    Dec2 p(x | c, z)   : d_0 = ReLU(W_c c),      attends over H_c
    Dec3 p(x | c, z, y): d_0 = ReLU(W_3 [c; y]), attends over H_y
    Dec4 p(y | c, z)   : d_0 = ReLU(W_c c),      attends over H_c
    each decoder k (own weights and output layer), Luong et al. (2015) "general" attention with input feeding
    (:class:`multiref.models.layers.LuongDecoder` with z as its per-step feature):
        d_t = LSTM_k([e(w_{t-1}); o_{t-1}; z], d_{t-1}),   o_0 = 0            z appended to every input
        a_t = softmax_j(d_t^T W_a H_j),  o_t = dropout(tanh(W_o [sum_j a_tj H_j; d_t]))
        p(w_t | w_<t, ...) = softmax(W_g o_t + b_g)
    L(c, x, y) = E_q [ 1/2 log p(x|c,z,y) + 1/2 log p(y|c,z) + 1/2 log p(y|c,z,x) + 1/2 log p(x|c,z) ]
                 - KL(q(z|c,x,y) || p(z|c))                                                       (Eq. 6)

Training minimises ``beta_t * KL + 0.5 * (NLL1 + NLL2 + NLL3 + NLL4)`` per sentence (one z from the
posterior, each NLL summed over the sentence's tokens, ``</s>`` included), averaged over the batch, as
the authors' trainer (``normalization="sents"``). ``beta_t = min(1, t / kl_anneal_steps)`` is a linear
ramp from 0 at step 0: the authors ramp over ``kl_balance`` epochs (1 in their DailyDialog script); the
default 500 steps is about one epoch of their run (65k triples / batch 128 = 508 steps); set it to your
steps per epoch. ``monitor`` (learning-rate decay and model selection on the dev set) is the negative
ELBO ``KL + 0.5 * (NLL1 + ... + NLL4)`` without annealing: the authors early-stop on the validation ELBO.

``nll_sum`` / ``n_tokens`` / ``token_nll`` (the dev perplexity) are Dec1's, the response decoder, with z
from the **posterior**, as :class:`multiref.models.vhred.VHRED` computes its own in ``forward``;
:meth:`Mirror.prior_nll` (what the test perplexity uses, :func:`multiref.eval.decode.perplexity`) and
:meth:`Mirror.log_likelihood` use one z drawn from the prior, as VHRED's. Generation (:meth:`generate`)
is Dec1 with one z drawn from the prior per context and beam search (:mod:`multiref.models.beam`;
``beam`` 10, at most ``max_len`` 40 tokens, at least ``min_len`` 2 words before ``</s>``: the authors'
``min_length`` 3 counts ``<s>``).

As the authors' code: one embedding matrix for every encoder and decoder (``-share_embeddings``), no
embedding dropout, dropout between stacked LSTM layers and on the attention output (which is also the
next input feed), bias-free ``W_a`` and ``W_o``, every parameter drawn from U(-init_scale, init_scale)
(``-param_init``), separate summary layers for c, x and y, one initial-state layer shared by Dec2 and
Dec4 (their ``cz2xy``). Encoders and decoders strip ``<s>``/``</s>`` from the utterances they read
(OpenNMT's source side has none). One difference without a flag: the encoders here read each utterance
up to its length (packed sequences); the authors' encoders are called without lengths and also run over
the batch's padding before their final state is taken.

The authors' known defects are flags whose default is the correct behaviour:

- ``noise="uniform"``: eps ~ U[0, 1) (their ``torch.rand``) instead of N(0, I), for the posterior's and
  the prior's samples alike (``"gaussian"``, default).
- ``dec4_init="dec2_final"``: Dec4 starts from Dec2's final state (its h, cell state and input feed after
  the whole teacher-forced pass over the padded x), because OpenNMT's decoders update the one decoder
  state object that the two share; ``"own"`` (default) starts Dec4 from ReLU(W_c c) like Dec2.
- ``beam_first_finished=True``: beam search returns the first hypothesis that finishes rather than the
  most probable (their Beam scores every finished hypothesis 0; see :mod:`multiref.models.beam`).

Their beam also never starts a response with ``<unk>`` (``onmt/translate/Beam.py:415-433``; later steps only
with their DC options, :267-268); that is the default here too (``ban_unk_first``, ``unk_id``), and applies to
:meth:`Mirror.greedy` (a beam of width 1) as well.

Paper dimensions (§4.3, DailyDialog) are the defaults: 2-layer LSTMs of 1,000 units, embeddings of 200,
z of 160; dropout 0.3 and init 0.08 from the code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from multiref.data.pairs import SPECIAL_TOKENS
from multiref.errors import MultirefError
from multiref.models.beam import Hypothesis, beam_search, hypotheses_to_ids
from multiref.models.layers import LuongDecoder, LuongState, token_nll
from multiref.models.priors import gaussian_kl

NOISES = ("gaussian", "uniform")
DEC4_INITS = ("own", "dec2_final")
DECODERS = ("dec1", "dec2", "dec3", "dec4")


@dataclass(frozen=True)
class MirrorConfig:
    vocab_size: int
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    embedding_dim: int = 200
    hidden: int = 1000
    layers: int = 2
    latent_dim: int = 160
    dropout: float = 0.3
    init_scale: float = 0.08
    kl_anneal_steps: int = 500
    beam: int = 10
    min_len: int = 2  # words before </s> may end: the authors' min_length 3 counts <s> (docs/fidelity.md, Mi7)
    noise: str = "gaussian"  # authors: "uniform"
    dec4_init: str = "own"  # authors: "dec2_final"
    beam_first_finished: bool = False  # authors: True
    unk_id: int = SPECIAL_TOKENS.index("<unk>")
    ban_unk_first: bool = True  # authors: True (their beam never starts a response with <unk>)

    def __post_init__(self) -> None:
        for name in ("pad_id", "bos_id", "eos_id", "unk_id"):
            value = getattr(self, name)
            if not 0 <= value < self.vocab_size:
                raise ValueError(f"{name} {value} lies outside the vocabulary of {self.vocab_size} entries")
        for name in ("embedding_dim", "hidden", "layers", "latent_dim", "beam"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.hidden % 2:
            raise ValueError(f"hidden must be even (the summaries are two halves of H), got {self.hidden}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")
        if self.kl_anneal_steps < 0 or self.min_len < 0:
            raise ValueError(f"kl_anneal_steps and min_len must be >= 0, got {self.kl_anneal_steps} and {self.min_len}")
        if self.noise not in NOISES:
            raise ValueError(f"noise must be one of {list(NOISES)}, got {self.noise!r}")
        if self.dec4_init not in DEC4_INITS:
            raise ValueError(f"dec4_init must be one of {list(DEC4_INITS)}, got {self.dec4_init!r}")


class LatentLogVar(NamedTuple):
    """A draw of Mirror's z with its Gaussian's mean and log-variance (not VHRED's :class:`multiref.models.priors.Latent`,
    which carries the variance and mixture weights)."""

    z: Tensor  # [B, Z]
    mu: Tensor  # [B, Z]
    logvar: Tensor  # [B, Z]


class DecoderRun(NamedTuple):
    logits: Tensor  # [B, T, V]
    initial: LuongState  # h, cell state, input feed
    final: LuongState


class Memory(NamedTuple):
    """An encoded utterance: word encodings [B, S, H], their mask [B, S], the summary vector [B, H]."""

    words: Tensor
    mask: Tensor
    summary: Tensor


class Summary(nn.Module):
    """Every layer's final (h, cell) flattened, ReLU(Linear(layers*H -> H/2)) each, concatenated -> [B, H]
    (the authors' ``EncoderStateFix``)."""

    def __init__(self, hidden: int, layers: int) -> None:
        super().__init__()
        self.from_h = nn.Sequential(nn.Linear(layers * hidden, hidden // 2), nn.ReLU())
        self.from_c = nn.Sequential(nn.Linear(layers * hidden, hidden // 2), nn.ReLU())

    def forward(self, h: Tensor, c: Tensor) -> Tensor:
        """h, c [layers, B, H] -> [B, H]."""
        b = h.size(1)
        return torch.cat([self.from_h(h.transpose(0, 1).reshape(b, -1)), self.from_c(c.transpose(0, 1).reshape(b, -1))], -1)


class GaussianLogVarNet(nn.Module):
    """g = ReLU(Linear(in -> 2Z)), mu = Linear(g), logvar = Linear(g) (the authors' ``cxy2z`` / ``c2z``); Mirror's,
    not VHRED's :class:`multiref.models.priors.GaussianNet` (tanh, softplus variance)."""

    def __init__(self, input_dim: int, z_dim: int) -> None:
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(input_dim, 2 * z_dim), nn.ReLU())
        self.mu = nn.Linear(2 * z_dim, z_dim)
        self.logvar = nn.Linear(2 * z_dim, z_dim)

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        g = self.hidden(h)
        return self.mu(g), self.logvar(g)


class InitState(nn.Module):
    """A decoder's initial state: ReLU(Linear(v)) for h and for the cell state, each [B, layers, H]
    (the authors' ``BuildDecoderState``); the input feed starts at zero."""

    def __init__(self, input_dim: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.layers, self.hidden = layers, hidden
        self.to_h = nn.Sequential(nn.Linear(input_dim, layers * hidden), nn.ReLU())
        self.to_c = nn.Sequential(nn.Linear(input_dim, layers * hidden), nn.ReLU())

    def forward(self, v: Tensor) -> LuongState:
        b = v.size(0)
        return LuongState(self.to_h(v).view(b, self.layers, self.hidden), self.to_c(v).view(b, self.layers, self.hidden),
                            v.new_zeros(b, self.hidden))


class Mirror(nn.Module):
    likelihood_needs_samples = True  # log_likelihood is log p(y | c, x, z) for one prior draw of z

    def __init__(self, cfg: MirrorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        e, h, n, z = cfg.embedding_dim, cfg.hidden, cfg.layers, cfg.latent_dim
        between = cfg.dropout if n > 1 else 0.0
        self.embedding = nn.Embedding(cfg.vocab_size, e, padding_idx=cfg.pad_id)  # shared by all
        self.utt_encoder = nn.LSTM(e, h, n, batch_first=True, dropout=between)  # Enc_utt, for x and y
        self.ctx_encoder = nn.LSTM(e, h, n, batch_first=True, dropout=between)  # Enc_ctx, for c
        self.summary_c, self.summary_x, self.summary_y = Summary(h, n), Summary(h, n), Summary(h, n)
        self.posterior_net = GaussianLogVarNet(3 * h, z)  # q(z | c, x, y)
        self.prior_net = GaussianLogVarNet(h, z)  # p(z | c)
        self.init_cx = InitState(2 * h, h, n)  # Dec1
        self.init_cy = InitState(2 * h, h, n)  # Dec3
        self.init_c = InitState(h, h, n)  # Dec2 and Dec4
        # Dec1..Dec4: LSTMs with Luong attention and input feeding, z appended to every input (the authors'
        # ``Input_Z_FeedRNNDecoder``), each with its own output layer
        self.dec1, self.dec2, self.dec3, self.dec4 = (LuongDecoder(e, h, n, cfg.vocab_size, cfg.dropout, feat_dim=z) for _ in DECODERS)
        for p in self.parameters():
            nn.init.uniform_(p, -cfg.init_scale, cfg.init_scale)
        with torch.no_grad():
            self.embedding.weight[cfg.pad_id].zero_()

    def word_embeddings(self) -> list[nn.Embedding]:
        """The table that initial word vectors go into (one, shared by every encoder and decoder)."""
        return [self.embedding]

    # -- inputs and encoders -------------------------------------------------------------------------

    def split_triple(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The context turns x [B, 2, L] -> c [B, L] (turn t-2) and the query x [B, L'] (turn t-1,
        ``<s>`` ... ``</s>``, trailing all-padding columns dropped)."""
        if x.dim() != 3 or x.size(1) != 2:
            raise MultirefError(
                f"Mirror reads triples: every example's context must have exactly 2 turns (c = turn t-2, x = turn t-1), "
                f"got context ids of shape {tuple(x.shape)}; build its data with multiref.mirror.triples"
            )
        return x[:, 0], self._trim(x[:, 1])

    def _trim(self, ids: Tensor) -> Tensor:
        width = max(int((ids != self.cfg.pad_id).sum(1).max()), 2) if ids.numel() else 2
        return ids[:, :width]

    def _words(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        """Utterance ids [B, L] -> its words without ``<s>``/``</s>``/padding, left-aligned [B, L'], and lengths [B]."""
        cfg = self.cfg
        keep = (ids != cfg.pad_id) & (ids != cfg.bos_id) & (ids != cfg.eos_id)
        order = (~keep).long().argsort(dim=1, stable=True)
        words = ids.gather(1, order).masked_fill(~keep.gather(1, order), cfg.pad_id)
        lengths = keep.sum(1)
        return words[:, : max(int(lengths.max()), 1)], lengths

    def _encode(self, rnn: nn.LSTM, summary: Summary, ids: Tensor) -> Memory:
        words, lengths = self._words(ids)
        lengths = lengths.clamp(min=1)  # an empty utterance is read as one padding token (attended to)
        packed = pack_padded_sequence(self.embedding(words), lengths.cpu(), batch_first=True, enforce_sorted=False)
        outputs, (h, c) = rnn(packed)
        memory, _ = pad_packed_sequence(outputs, batch_first=True, total_length=words.size(1))
        mask = torch.arange(words.size(1), device=ids.device).unsqueeze(0) < lengths.unsqueeze(1)
        return Memory(memory, mask, summary(h, c))

    def encode_context(self, c: Tensor) -> Memory:
        return self._encode(self.ctx_encoder, self.summary_c, c)

    def encode_query(self, x: Tensor) -> Memory:
        return self._encode(self.utt_encoder, self.summary_x, x)

    def encode_response(self, y: Tensor) -> Memory:
        return self._encode(self.utt_encoder, self.summary_y, y)

    # -- latent variable ----------------------------------------------------------------------------------

    def noise(self, mu: Tensor) -> Tensor:
        """eps of the reparameterisation: N(0, I), or U[0, 1) with ``noise="uniform"`` (the authors')."""
        return torch.rand_like(mu) if self.cfg.noise == "uniform" else torch.randn_like(mu)

    def _sample(self, mu: Tensor, logvar: Tensor) -> LatentLogVar:
        return LatentLogVar(mu + torch.exp(0.5 * logvar) * self.noise(mu), mu, logvar)

    def posterior(self, c: Tensor, x: Tensor, y: Tensor) -> LatentLogVar:
        """q(z | c, x, y) from the three summaries [B, H]."""
        return self._sample(*self.posterior_net(torch.cat([c, x, y], dim=-1)))

    def prior(self, c: Tensor) -> LatentLogVar:
        """p(z | c) from the context summary [B, H]."""
        return self._sample(*self.prior_net(c))

    def kl_weight(self, step: int) -> float:
        """beta_t: linear from 0 at step 0 to 1 at ``kl_anneal_steps`` (1 throughout when it is 0)."""
        return min(1.0, step / self.cfg.kl_anneal_steps) if self.cfg.kl_anneal_steps > 0 else 1.0

    # -- decoders -----------------------------------------------------------------------------------------

    @staticmethod
    def _run(decoder: LuongDecoder, emb: Tensor, z: Tensor, start: LuongState, memory: Memory) -> DecoderRun:
        """Teacher forcing of one decoder over emb [B, T, E], attending over ``memory``, z [B, Z] appended
        to every input: logits [B, T, V] with the initial and final states."""
        logits, final = decoder(emb, start, memory.words, memory.mask, feat=z)
        return DecoderRun(logits, start, final)

    def decoder_runs(self, c: Memory, x: Memory, y: Memory, x_ids: Tensor, y_ids: Tensor, z: Tensor) -> dict[str, DecoderRun]:
        """Teacher-forced runs of the four decoders for one z [B, Z]: Dec1 and Dec4 read y_ids[:, :-1],
        Dec2 and Dec3 x_ids[:, :-1] (``<s>`` ... ``</s>`` utterances)."""
        emb_x, emb_y = self.embedding(x_ids[:, :-1]), self.embedding(y_ids[:, :-1])
        runs = {
            "dec1": self._run(self.dec1, emb_y, z, self.init_cx(torch.cat([c.summary, x.summary], -1)), x),  # p(y | c, z, x)
            "dec2": self._run(self.dec2, emb_x, z, self.init_c(c.summary), c),  # p(x | c, z)
            "dec3": self._run(self.dec3, emb_x, z, self.init_cy(torch.cat([c.summary, y.summary], -1)), y),  # p(x | c, z, y)
        }
        dec4_start = runs["dec2"].final if self.cfg.dec4_init == "dec2_final" else self.init_c(c.summary)
        runs["dec4"] = self._run(self.dec4, emb_y, z, dec4_start, c)  # p(y | c, z)
        return runs

    def decoder_logits(self, x: Tensor, y: Tensor, z: Tensor) -> dict[str, Tensor]:
        """The four decoders' teacher-forced logits for a given z (no sampling): inspection and tests."""
        c_ids, x_ids = self.split_triple(x)
        runs = self.decoder_runs(self.encode_context(c_ids), self.encode_query(x_ids), self.encode_response(y), x_ids, y, z)
        return {name: run.logits for name, run in runs.items()}

    # -- training objective ---------------------------------------------------------------------------------

    def forward(self, x: Tensor, x_floor: Tensor, y: Tensor, y_floor: Tensor, step: int = 0) -> dict[str, Tensor]:
        """Eq. 6 on a batch of triples: x [B, 2, L] holds (c, x), y [B, Ty] the responses (floors unused)."""
        c_ids, x_ids = self.split_triple(x)
        c, q, r = self.encode_context(c_ids), self.encode_query(x_ids), self.encode_response(y)
        post = self.posterior(c.summary, q.summary, r.summary)  # z ~ q(z | c, x, y)
        prior = self.prior(c.summary)  # p(z | c)
        runs = self.decoder_runs(c, q, r, x_ids, y, post.z)
        nll_y = token_nll(runs["dec1"].logits, y, self.cfg.pad_id)
        nll1 = nll_y.sum(1)  # -log p(y | c, z, x)
        nll2 = token_nll(runs["dec2"].logits, x_ids, self.cfg.pad_id).sum(1)  # -log p(x | c, z)
        nll3 = token_nll(runs["dec3"].logits, x_ids, self.cfg.pad_id).sum(1)  # -log p(x | c, z, y)
        nll4 = token_nll(runs["dec4"].logits, y, self.cfg.pad_id).sum(1)  # -log p(y | c, z)
        kl = gaussian_kl(post.mu, post.logvar.exp(), prior.mu, prior.logvar.exp())  # KL(q || p) [B]
        reconstruction = 0.5 * (nll1 + nll2 + nll3 + nll4)
        loss = (self.kl_weight(step) * kl + reconstruction).mean()  # -L(c, x, y), Eq. 6, annealed
        return {
            "loss": loss, "nll_sum": nll_y.sum(), "n_tokens": (y[:, 1:] != self.cfg.pad_id).sum(), "token_nll": nll_y,
            "monitor": (kl + reconstruction).mean().detach(),  # the negative ELBO (no annealing)
            "kl": kl.mean(), "nll1": nll1.mean(), "nll2": nll2.mean(), "nll3": nll3.mean(), "nll4": nll4.mean(),
        }

    # -- likelihood with the prior -------------------------------------------------------------------------

    def _dec1_start(self, x: Tensor) -> tuple[Memory, Tensor, LuongState]:
        """Dec1's memory (the query's encoding), z drawn from the prior p(z | c), and Dec1's initial state."""
        c_ids, x_ids = self.split_triple(x)
        c, q = self.encode_context(c_ids), self.encode_query(x_ids)
        z = self.prior(c.summary).z
        return q, z, self.init_cx(torch.cat([c.summary, q.summary], -1))

    @torch.no_grad()
    def prior_nll(self, x: Tensor, x_floor: Tensor, y: Tensor, y_floor: Tensor) -> dict[str, Tensor]:
        """Dec1's token NLL of y with z drawn once from the prior (the test perplexity of a latent model)."""
        q, z, start = self._dec1_start(x)
        nll = token_nll(self._run(self.dec1, self.embedding(y[:, :-1]), z, start, q).logits, y, self.cfg.pad_id)
        return {"nll_sum": nll.sum(), "n_tokens": (y[:, 1:] != self.cfg.pad_id).sum(), "sent_nll": nll.sum(1)}

    @torch.no_grad()
    def log_likelihood(self, x: Tensor, x_floor: Tensor, y: Tensor, y_floor: Tensor) -> Tensor:
        """log p(y | c, x, z) of each response [B] for one z drawn from the prior."""
        return -self.prior_nll(x, x_floor, y, y_floor)["sent_nll"]

    # -- generation -------------------------------------------------------------------------------------

    @torch.no_grad()
    def n_best(self, x: Tensor, x_floor: Tensor, y_floor: Tensor, n: int = 1, max_len: int = 40, beam: int | None = None) -> list[list[Hypothesis]]:
        """Dec1's beam search with one prior z per context: the n best hypotheses per context, best first."""
        q, z, start = self._dec1_start(x)

        def step(tokens: Tensor, state: tuple[LuongState, Tensor, Tensor, Tensor]) -> tuple[Tensor, tuple[LuongState, Tensor, Tensor, Tensor]]:
            dec, z_, words, mask = state
            o, dec = self.dec1.step(self.embedding(tokens), dec, words, mask, feat=z_)
            return self.dec1.generator(o).log_softmax(-1), (dec, z_, words, mask)

        return beam_search(step, (start, z, q.words, q.mask), x.size(0), self.cfg.bos_id, self.cfg.eos_id,
                           beam=max(n, self.cfg.beam if beam is None else beam), max_len=max_len, min_len=self.cfg.min_len,
                           n_best=n, first_finished=self.cfg.beam_first_finished,
                           ban_first=(self.cfg.unk_id,) if self.cfg.ban_unk_first else ())

    @torch.no_grad()
    def generate(self, x: Tensor, x_floor: Tensor, y_floor: Tensor, max_len: int = 40) -> Tensor:
        """The paper's decoding (beam ``cfg.beam``): ids [B, <= max_len], ``</s>`` then padding."""
        best = [hyps[0] for hyps in self.n_best(x, x_floor, y_floor, 1, max_len)]
        return hypotheses_to_ids(best, self.cfg.eos_id, self.cfg.pad_id, x.device)

    @torch.no_grad()
    def greedy(self, x: Tensor, x_floor: Tensor, y_floor: Tensor, max_len: int = 40) -> Tensor:
        """Beam search of width 1 (greedy, with ``min_len``), for the pipeline's greedy decoding interface."""
        best = [hyps[0] for hyps in self.n_best(x, x_floor, y_floor, 1, max_len, beam=1)]
        return hypotheses_to_ids(best, self.cfg.eos_id, self.cfg.pad_id, x.device)
