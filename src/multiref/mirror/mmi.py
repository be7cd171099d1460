"""MMI-bidi reranking (Li, Galley, Brockett, Gao & Dolan, NAACL 2016, §4.3), the Mirror paper's "MMI" baseline.

The forward model p(y | c, x) (a :class:`~multiref.models.seq2seq_attn.Seq2SeqAttn` on triples) produces an
N-best list by beam search; each candidate y is then rescored with a separately trained backward model
p(x | y) (the same model class trained on examples whose context is [y] and whose response is x):

    score(y) = log p(y | c, x) + lambda * log p(x | y) + gamma * |y|

and the best-scoring candidate is the response. log p(y | c, x) is the beam's total log-probability
(``</s>`` included when the hypothesis finished), log p(x | y) the backward model's total log-probability
of the query ``<s> x </s>`` after ``<s>``, and |y| the number of tokens of y (without ``</s>``). Ties go
to the candidate ranked higher by the forward model (earlier in the N-best list), so the choice is
deterministic.

Weights. Li et al. tune lambda and gamma on the dev set with MERT for BLEU and publish no values. The
code behind the Mirror paper's baseline outputs (abaheti95/DC-NeuralConversation, ``MMIGlobalScorer`` in
``onmt/translate/Beam.py``) uses another form: forward weight 0, backward weight 1 on
log p(x | y) / (|x| + 2), length weight 0.1 on |y| + 1, then divides the sum by |y| + 1, which ranks the
finished hypotheses by log p(x | y) / ((|x| + 2)(|y| + 1)) alone (the forward model only decides which
hypotheses the beam keeps). Neither gives a value for the formula above, so multiref defaults to
lambda = 0.5 and gamma = 0 (:data:`DEFAULT_LAMBDA`, :data:`DEFAULT_GAMMA`); both are parameters.

The N-best list is that code's (:data:`DEFAULT_N`): its README decodes DC-MMI10 with ``-beam_size 10
-n_best 10``, so the candidates are the hypotheses that finish in a beam of 10. Here they are the forward
model's 10 most probable finished hypotheses from a beam of 10 (``n`` = 10, beam ``max(n, the model's beam)``);
the DC scorer reranks every hypothesis that finished before its search stopped (the top of the beam ends and
at least 10 have finished), which can be a few more.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import torch

from multiref.errors import ConfigError
from multiref.models.beam import Hypothesis
from multiref.models.data import Example, collate

DEFAULT_LAMBDA = 0.5
DEFAULT_GAMMA = 0.0
DEFAULT_N = 10  # DC-NeuralConversation's README: -beam_size 10 -n_best 10


def mmi_scores(nbest: Sequence[Hypothesis], backward_scores: Sequence[float], lam: float = DEFAULT_LAMBDA,
               gamma: float = DEFAULT_GAMMA) -> list[float]:
    """score(y) = log p(y | c, x) + lam * log p(x | y) + gamma * |y| for each candidate of one N-best list."""
    if len(nbest) != len(backward_scores):
        raise ValueError(f"{len(nbest)} candidates but {len(backward_scores)} backward scores")
    for name, value in (("lambda", lam), ("gamma", gamma)):
        if not math.isfinite(value):
            raise ConfigError(f"MMI {name} must be a finite number, got {value}")
    return [h.logprob + lam * b + gamma * len(h.ids) for h, b in zip(nbest, backward_scores, strict=True)]


def rerank(nbest: Sequence[Hypothesis], backward_scores: Sequence[float], lam: float = DEFAULT_LAMBDA,
           gamma: float = DEFAULT_GAMMA) -> Hypothesis:
    """The candidate with the highest MMI-bidi score (on a tie, the one earlier in the N-best list)."""
    if not nbest:
        raise ValueError("MMI reranking needs at least one candidate")
    scores = mmi_scores(nbest, backward_scores, lam, gamma)
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))
    return nbest[best]


def backward_examples(example: Example, candidates: Sequence[Hypothesis], bos_id: int, eos_id: int) -> list[Example]:
    """The backward model's inputs for one triple: context [``<s>`` y ``</s>``] and response x (the
    example's last context turn) for every candidate y; floors are y's (the response floor) and x's."""
    if not example.context:
        raise ValueError("an MMI example needs a query: its context has no turns")
    query = example.context[-1]
    return [Example(((bos_id, *h.ids, eos_id),), (example.response_floor,), query, example.floors[-1]) for h in candidates]


@torch.no_grad()
def backward_log_likelihood(backward: torch.nn.Module, examples: Sequence[Example], nbest: Sequence[Sequence[Hypothesis]],
                            batch_size: int = 100, device: str = "cpu") -> list[list[float]]:
    """log p(x | y) under the backward model for every candidate y of every example's N-best list, in
    batches of ``batch_size`` (example, candidate) pairs; the result is shaped like ``nbest``."""
    if len(examples) != len(nbest):
        raise ValueError(f"{len(examples)} examples but {len(nbest)} N-best lists")
    cfg = backward.cfg
    backward.to(device).eval()
    flat = [e for ex, hyps in zip(examples, nbest, strict=True) for e in backward_examples(ex, hyps, cfg.bos_id, cfg.eos_id)]
    scores: list[float] = []
    for start in range(0, len(flat), batch_size):
        scores += backward.log_likelihood(*collate(flat[start : start + batch_size], cfg.pad_id, device)).tolist()
    out, i = [], 0
    for hyps in nbest:
        out.append(scores[i : i + len(hyps)])
        i += len(hyps)
    return out


@torch.no_grad()
def mmi_decode(forward: torch.nn.Module, backward: torch.nn.Module, examples: Sequence[Example], n: int = DEFAULT_N,
               lam: float = DEFAULT_LAMBDA, gamma: float = DEFAULT_GAMMA, max_len: int = 40, batch_size: int = 10,
               device: str = "cpu") -> list[Hypothesis]:
    """The MMI-bidi response to each example: the forward model's ``n``-best list (``forward.n_best``, beam
    ``max(n, its beam)``) reranked with the backward model; contexts are decoded ``batch_size`` at a time."""
    forward.to(device).eval()
    chosen: list[Hypothesis] = []
    for start in range(0, len(examples), batch_size):
        batch = list(examples[start : start + batch_size])
        x, x_floor, _, y_floor = collate(batch, forward.cfg.pad_id, device)
        nbest = forward.n_best(x, x_floor, y_floor, n, max_len)
        back = backward_log_likelihood(backward, batch, nbest, batch_size=max(batch_size * n, 1), device=device)
        chosen += [rerank(hyps, b, lam, gamma) for hyps, b in zip(nbest, back, strict=True)]
    return chosen


def mmi_decode_run(forward_path: Path, backward_path: Path, test_pairs: Path, vocab_path: Path, decode_path: Path,
                   ppl_path: Path, info_path: Path, forward_info: Path | None = None, n: int = DEFAULT_N,
                   lam: float = DEFAULT_LAMBDA, gamma: float = DEFAULT_GAMMA, max_len: int = 40, batch_size: int = 10,
                   ppl_batch_size: int = 100, seed: int = 42, device: str = "cpu") -> dict[str, Any]:
    """The MMI system on the test triples: responses (:data:`~multiref.eval.decode.DECODE_SCHEMA`), the
    forward model's perplexity (reranking does not change the model), and an ``info.json`` for the tables
    (the forward run's, when ``forward_info`` is given, with the MMI parameters)."""
    from multiref.eval.decode import DECODE_SCHEMA, perplexity, word_detokenizer
    from multiref.io import sha256_file, write_json, write_parquet
    from multiref.models import registry
    from multiref.models.data import load_vocabulary, pair_examples

    vocab = load_vocabulary(vocab_path)
    sha = sha256_file(vocab_path)
    forward, saved_f = registry.load(forward_path, sha, device)
    backward, saved_b = registry.load(backward_path, sha, device)
    for model, path in ((forward, forward_path), (backward, backward_path)):
        if not hasattr(model, "n_best") or not hasattr(model, "log_likelihood"):
            raise ConfigError(f"{path}: MMI needs a model with a beam search and exact log-likelihoods (seq2seq_attn), got {type(model).__name__}")
    by_pair = pair_examples(test_pairs)
    pair_ids = list(by_pair)
    examples = [by_pair[p] for p in pair_ids]
    torch.manual_seed(seed)
    chosen = mmi_decode(forward, backward, examples, n=n, lam=lam, gamma=gamma, max_len=max_len, batch_size=batch_size, device=device)
    detokenize = word_detokenizer(vocab.tokens)
    table = pa.table({"pair_id": pair_ids, "hypothesis": [detokenize(list(h.ids)) for h in chosen],
                      "n_tokens": [len(h.ids) for h in chosen]}, schema=DECODE_SCHEMA)
    params = {"n": n, "lambda": lam, "gamma": gamma, "max_len": max_len, "forward": saved_f["name"], "backward": saved_b["name"]}
    ppl = {**perplexity(forward, examples, ppl_batch_size, seed, device), "model": saved_f["name"], "pairs": len(examples),
           "note": "the forward model's perplexity (MMI reranks its N-best lists)"}
    info = {**(json.loads(Path(forward_info).read_text()) if forward_info is not None else {}), "model": f"{saved_f['name']}+mmi", "mmi": params}
    info["parameters"] = int(info.get("parameters", 0)) + sum(p.numel() for p in backward.parameters())
    write_parquet(table, decode_path, {"model": f"{saved_f['name']}+mmi", "kind": "mmi", "search": "mmi", **params})
    write_json(ppl, ppl_path)
    write_json(info, info_path)
    return {"pairs": len(examples), **params}
