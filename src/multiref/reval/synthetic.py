"""Synthetic human judgements for the demo: responses to the synthetic corpus's contexts scored by a fixed rule
from the known next-utterance distribution, with seeded annotator noise (docs/reval.md), in the format of
:mod:`multiref.reval.judgements`."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from multiref.errors import ConfigError
from multiref.io import atomic_path
from multiref.reval.judgements import load_judgements

SYNTHETIC_KINDS = ("ground-truth", "valid", "random", "truncated", "shuffled")
# base quality of a response the true distribution gives no mass to, by how it was made (see synthetic_judgements)
ZERO_MASS_BASE = {"ground-truth": 2.0, "valid": 2.0, "random": 2.0, "truncated": 1.5, "shuffled": 1.0}


# --------------------------------------------------------------------------------------------------------------
# Synthetic judgements (demo)


def base_score(prob: float, support: int, kind: str) -> float:
    """The noise-free quality (1..5) of a response with true probability ``prob`` among ``support`` possible
    next utterances of its context.

    Valid responses (prob > 0) score 3.5 + 1.5 * min(1, prob * support): 5 for one at least as likely as the
    uniform share, down towards 3.5 for a rare one. A response with no mass scores by how it was made
    (:data:`ZERO_MASS_BASE`): 2 for a fluent utterance of another context ("random"), 1.5 for a truncated true
    response, 1 for a word-shuffled one.
    """
    if prob > 0:
        return 3.5 + 1.5 * min(1.0, prob * support)
    return ZERO_MASS_BASE[kind]


def _truncate(words: list[str]) -> list[str]:
    return words[: max(1, len(words) // 2)]


def _shuffle(words: list[str], rng: np.random.Generator) -> list[str]:
    if len(set(words)) < 2:
        return list(reversed(words))
    for _ in range(20):
        out = [words[i] for i in rng.permutation(len(words))]
        if out != words:
            return out
    return list(reversed(words))


def synthetic_judgements(
    pairs: pd.DataFrame,
    distributions: Mapping[str, Mapping[str, float]],
    n_contexts: int = 60,
    valid: int = 2,
    annotators: int = 4,
    noise: float = 0.6,
    bias: float = 0.5,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Judgements in the DSTC10 format for the synthetic corpus, scored from the known distribution.

    ``pairs``: (context, response) pairs (``context`` a list of normalised turns, ``response`` normalised text,
    as ``data/pairs/*.parquet``); ``distributions``: previous utterance -> {response: probability}, normalised
    (:func:`multiref.teacher.synthetic_distance.true_distributions`). Contexts whose last turn has a distribution with at least
    two responses are eligible; ``n_contexts`` of them are drawn with ``numpy.random.default_rng(seed)``. Each
    gets up to ``3 + valid`` responses (the model field says which kind):

    - ``ground-truth``: the pair's response; ``valid``: up to ``valid`` other responses of the distribution,
      drawn in proportion to their probability; ``random``: the response of another drawn pair;
      ``truncated``: the first half of the true response's words; ``shuffled``: its words in a random order.

    Each item's quality is :func:`base_score` of its true probability; annotator ``a`` (of ``annotators``) has a
    bias b_a ~ U(-bias, bias), drawn once, and scores clip(round(quality + b_a + e), 1, 5) with e ~ N(0, noise^2)
    per item. Extra fields ``true_prob`` and ``true_score`` keep the truth for checks.
    """
    if n_contexts < 1 or annotators < 1 or valid < 0 or noise < 0 or bias < 0:
        raise ConfigError("synthetic judgements: n_contexts and annotators must be >= 1; valid, noise, bias >= 0")
    for col in ("context", "response"):
        if col not in pairs.columns:
            raise ConfigError(f"synthetic judgements: the pairs lack the column '{col}'")
    contexts = [list(c) for c in pairs["context"]]
    responses = [str(r) for r in pairs["response"]]
    eligible = [i for i, c in enumerate(contexts)
                if c and len(distributions.get(c[-1], {})) >= 2]
    if not eligible:
        raise ConfigError("synthetic judgements: no pair's last context turn has a known distribution with at least "
                          "two responses (is the distribution the one of this corpus?)")
    rng = np.random.default_rng(seed)
    chosen = sorted(int(i) for i in rng.choice(eligible, size=min(n_contexts, len(eligible)), replace=False))
    biases = rng.uniform(-bias, bias, size=annotators)
    items: list[dict[str, Any]] = []
    for n, i in enumerate(chosen):
        turns, truth = contexts[i], responses[i]
        dist = distributions[turns[-1]]
        words = truth.split()
        candidates: list[tuple[str, str]] = [("ground-truth", truth)]
        others = [(y, q) for y, q in dist.items() if y != truth and q > 0]
        if others and valid:
            probs = np.array([q for _, q in others])
            take = rng.choice(len(others), size=min(valid, len(others)), replace=False, p=probs / probs.sum())
            candidates += [("valid", others[int(k)][0]) for k in sorted(take)]
        for _ in range(20):
            j = int(rng.integers(len(responses)))
            if contexts[j] != turns and responses[j] != truth:
                candidates.append(("random", responses[j]))
                break
        candidates.append(("truncated", " ".join(_truncate(words))))
        candidates.append(("shuffled", " ".join(_shuffle(words, rng))))
        for kind, response in candidates:
            prob = float(dist.get(response, 0.0))
            quality = base_score(prob, len(dist), kind)
            noisy = quality + biases + rng.normal(0.0, noise, size=annotators) if noise else quality + biases
            scores = [int(min(5, max(1, math.floor(x + 0.5)))) for x in noisy]
            items.append({
                "dialogue_id": f"synthetic_{n:05d}",
                "model": kind,
                "context": "\n".join(turns),
                "response": response,
                "reference": [truth],
                "annotations": {"appropriateness": scores},
                "true_prob": prob,
                "true_score": quality,
            })
    return items


def write_synthetic_judgements(
    pair_files: Sequence[Path], distribution_path: Path, out_json: Path, **kwargs: Any
) -> dict[str, Any]:
    """:func:`synthetic_judgements` of the pairs in ``pair_files`` (e.g. dev and test) -> ``out_json``."""
    import pyarrow.parquet as pq

    from multiref.teacher.synthetic_distance import true_distributions

    frames = [pq.read_table(f, columns=["context", "response"]).to_pandas() for f in pair_files]
    pairs = pd.concat(frames, ignore_index=True)
    items = synthetic_judgements(pairs, true_distributions(distribution_path), **kwargs)
    with atomic_path(out_json) as tmp:
        tmp.write_text(json.dumps(items, indent=1) + "\n", encoding="utf-8")
        df = load_judgements(tmp)
    kinds = pd.Series([it["model"] for it in items]).value_counts().to_dict()
    quality = np.array([it["true_score"] for it in items])
    mean_scores = df["score"].to_numpy()
    return {"kind": "synthetic", "items": len(df), "contexts": int(df["context"].map(tuple).nunique()),
            "by_kind": {str(k): int(v) for k, v in kinds.items()},
            "annotator_mean_vs_true_pearson": float(np.corrcoef(quality, mean_scores)[0, 1])
            if np.ptp(quality) > 0 and np.ptp(mean_scores) > 0 else None,
            "pair_files": [str(f) for f in pair_files], "distribution": str(distribution_path), **kwargs}


