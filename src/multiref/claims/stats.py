"""Intervals and verdicts of the claims: a hierarchical percentile bootstrap (training seeds, then test contexts),
the verdict of one (comparison, metric), and a claim's overall verdict.

Hierarchical bootstrap of mean(better) - mean(worse), for a metric with one score per test context. Each side is
an array [seeds, contexts] (the same contexts, in the same order, on both sides). One resample draws, for each
side on its own, its seeds with replacement, and one set of context indices with replacement that both sides
share (the contexts are paired). Its value is the difference of the two sides' means over the drawn seeds and
contexts. The context indices are :func:`multiref.tables.results.bootstrap_indices` (``samples``, ``seed``): the
tables' resamples, so with one seed per side the interval is the tables' paired context bootstrap. The seed
draws come from a generator seeded by ``seed`` and the comparison's key, so each comparison's are reproducible
and independent of the claims' order.

A run-level metric (ppl, D1, D2, KL: one value per run) has only the seed level: each side's seeds are resampled
and the value is the difference of the means. It needs at least 2 seeds on each side; with fewer there is no
interval and the verdict is ``inconclusive``.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from multiref.tables.results import bootstrap_indices

HOLDS, FAILS, INCONCLUSIVE = "holds", "fails", "inconclusive"
VERDICTS = (HOLDS, FAILS, INCONCLUSIVE)


@dataclass(frozen=True)
class Estimate:
    """mean(better) - mean(worse) and its percentile interval at ``level`` (lo, hi None: no interval)."""

    estimate: float
    lo: float | None
    hi: float | None
    level: float
    seeds_better: int
    seeds_worse: int
    contexts: int | None  # None: a run-level metric


def interval_level(direction: str, level: float) -> float:
    """The coverage of the interval a verdict reads: ``level`` for ``greater`` and ``not_consistently_greater``
    (two-sided); 1 - 2 alpha with alpha = 1 - level for ``equivalent`` and ``limited``, whose one-sided tests at
    alpha each read one end of that interval (two one-sided tests, TOST)."""
    return 1 - 2 * (1 - level) if direction in ("equivalent", "limited") else level


def _seed_weights(n_seeds: int, samples: int, rng: np.random.Generator) -> np.ndarray:
    """[samples, n_seeds]: the share of each seed in each resample (counts / n_seeds)."""
    draws = rng.integers(0, n_seeds, size=(samples, n_seeds))
    counts = np.zeros((samples, n_seeds))
    np.add.at(counts, (np.repeat(np.arange(samples), n_seeds), draws.ravel()), 1)
    return counts / n_seeds


@functools.lru_cache(maxsize=4)
def _context_weights(n: int, samples: int, seed: int) -> np.ndarray:
    """[samples, n]: the share of each context in each resample of :func:`bootstrap_indices` (cached: every
    comparison of a claims table shares them; read-only)."""
    idx = bootstrap_indices(n, samples, seed)
    weights = np.stack([np.bincount(row, minlength=n) for row in idx]).astype(np.float64) / n
    weights.flags.writeable = False
    return weights


def _generator(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng([seed & 0xFFFFFFFF, zlib.crc32(key.encode("utf-8"))])


def _percentiles(values: np.ndarray, level: float) -> tuple[float, float]:
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def hierarchical_interval(better: np.ndarray, worse: np.ndarray, samples: int, seed: int, level: float, key: str = "") -> Estimate:
    """mean(better) - mean(worse) with its interval, for per-context scores [seeds, contexts] on each side."""
    better, worse = np.atleast_2d(np.asarray(better, dtype=np.float64)), np.atleast_2d(np.asarray(worse, dtype=np.float64))
    if better.shape[1] != worse.shape[1]:
        raise ValueError(f"the two sides were scored on different numbers of contexts: {better.shape[1]} and {worse.shape[1]}")
    n = better.shape[1]
    contexts = _context_weights(n, samples, seed)
    rng = _generator(seed, key)
    w_better, w_worse = _seed_weights(better.shape[0], samples, rng), _seed_weights(worse.shape[0], samples, rng)
    # resample b: sum_s w[b, s] * sum_c v[b, c] * x[s, c], for each side
    means = (w_better * (contexts @ better.T)).sum(axis=1) - (w_worse * (contexts @ worse.T)).sum(axis=1)
    lo, hi = _percentiles(means, level)
    return Estimate(float(better.mean() - worse.mean()), lo, hi, level, better.shape[0], worse.shape[0], n)


def seed_interval(better: Sequence[float], worse: Sequence[float], samples: int, seed: int, level: float, key: str = "") -> Estimate:
    """mean(better) - mean(worse) for one value per seed on each side, with a seed-only bootstrap interval;
    no interval (lo, hi None) unless each side has at least 2 seeds."""
    b, w = np.asarray(better, dtype=np.float64), np.asarray(worse, dtype=np.float64)
    if b.size < 1 or w.size < 1:
        raise ValueError("a run-level comparison needs a value on each side")
    est = float(b.mean() - w.mean())
    if b.size < 2 or w.size < 2:
        return Estimate(est, None, None, level, b.size, w.size, None)
    rng = _generator(seed, key)
    means = _seed_weights(b.size, samples, rng) @ b - _seed_weights(w.size, samples, rng) @ w
    lo, hi = _percentiles(means, level)
    return Estimate(est, lo, hi, level, b.size, w.size, None)


def verdict(direction: str, lo: float | None, hi: float | None, lower_is_better: bool = False, margin: float | None = None) -> str:
    """The verdict of one (comparison, metric) from the interval [lo, hi] of mean(better) - mean(worse).

    The interval is first turned into a gain of the better run (negated where lower is better). Then:
    ``greater``: holds if gain > 0 over the whole interval, fails if gain < 0 over it;
    ``equivalent`` (margin m): holds if the interval lies inside (-m, m), fails if it lies beyond m or below -m;
    ``limited`` (margin m): holds if the interval lies below m, fails if it lies above m;
    ``not_consistently_greater``: holds if the gain is < 0 over the interval (this metric shows the better run
    worse), fails if it is > 0 over it. Anything else, or no interval, is ``inconclusive``."""
    if lo is None or hi is None:
        return INCONCLUSIVE
    if lower_is_better:
        lo, hi = -hi, -lo
    if direction in ("equivalent", "limited"):
        if margin is None or margin <= 0:
            raise ValueError(f"direction {direction!r} needs a margin > 0, got {margin!r}")
        if direction == "equivalent":
            inside, outside = -margin < lo and hi < margin, lo > margin or hi < -margin
        else:
            inside, outside = hi < margin, lo > margin
        return HOLDS if inside else FAILS if outside else INCONCLUSIVE
    if direction in ("greater", "not_consistently_greater"):
        better, worse = lo > 0, hi < 0
        if direction == "not_consistently_greater":
            better, worse = worse, better
        return HOLDS if better else FAILS if worse else INCONCLUSIVE
    raise ValueError(f"unknown direction {direction!r}")


def aggregate(direction: str, verdicts: Sequence[str]) -> str:
    """A claim's verdict from those of its (comparison, metric) rows that have an interval.

    ``not_consistently_greater``: holds if any row holds (some metric shows the better run significantly worse),
    fails if every row fails (significantly better everywhere); every other direction: holds if every row holds,
    fails if any row fails. Otherwise, or with no row, ``inconclusive``."""
    unknown = sorted(set(verdicts) - set(VERDICTS))
    if unknown:
        raise ValueError(f"unknown verdict(s) {unknown}")
    if not verdicts:
        return INCONCLUSIVE
    if direction == "not_consistently_greater":
        return HOLDS if HOLDS in verdicts else FAILS if all(v == FAILS for v in verdicts) else INCONCLUSIVE
    return FAILS if FAILS in verdicts else HOLDS if all(v == HOLDS for v in verdicts) else INCONCLUSIVE
