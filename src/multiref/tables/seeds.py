"""Runs trained with several seeds (``train.seeds``, ``claims.seeds``): one table row from them, and the
hierarchical bootstrap that puts seed variance and test-context sampling into one interval.

A row's run of (model, setting) trained with S seeds has S run folders (``<setting>``, ``<setting>_seed1``, ...).
Its value is the mean over seeds of each seed's value; its per-context scores form an [S, n] array over the same
n test contexts. One bootstrap resample draws S seeds with replacement (independently for each row: different
rows are different trainings) and the n contexts with replacement (one draw shared by every row of the table, so
differences between rows stay paired on contexts), and takes the mean over the drawn seeds of each seed's mean
over the drawn contexts. With one seed this is exactly the context bootstrap of a single run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from multiref.errors import MultirefError


def combine_seeds(runs: Sequence[dict[str, Any]], where: str) -> dict[str, Any]:
    """One row from the runs of its seeds (as :func:`multiref.tables.results.read_run` returns them): numeric
    values averaged over seeds, per-context scores stacked to [S, n] (a single seed's run is returned as is)."""
    if not runs:
        raise MultirefError(f"{where}: no run to read")
    if len(runs) == 1:
        return {**runs[0], "seeds": 1}
    ids = runs[0]["pair_ids"]
    for k, run in enumerate(runs[1:], start=1):
        if not np.array_equal(run["pair_ids"], ids):
            raise MultirefError(f"{where}: seed {k} was scored on other test contexts than seed 0")
    values: dict[str, Any] = {}
    for key, first in runs[0]["values"].items():
        column = [run["values"].get(key) for run in runs]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in column)
        values[key] = float(np.mean(column)) if numeric else first
    scores = {m: np.stack([run["scores"][m] for run in runs]) for m in runs[0]["scores"] if all(m in r["scores"] for r in runs)}
    return {"values": values, "scores": scores, "pair_ids": ids, "seeds": len(runs),
            "values_by_seed": [run["values"] for run in runs]}


def seed_resamples(n_seeds: int, samples: int, rng: np.random.Generator) -> np.ndarray | None:
    """[samples, n_seeds] seed indices drawn with replacement, or None for a single seed (nothing to draw)."""
    return None if n_seeds == 1 else rng.integers(0, n_seeds, size=(samples, n_seeds))


def resampled_means(scores: np.ndarray, contexts: np.ndarray, seeds: np.ndarray | None) -> np.ndarray:
    """The row mean under each resample: ``scores`` [n] or [S, n], ``contexts`` [B, n] context indices, ``seeds``
    [B, S] seed indices (None for one seed) -> [B]."""
    if scores.ndim == 1:
        return scores[contexts].mean(axis=1)
    per_seed = np.stack([row[contexts].mean(axis=1) for row in scores])  # [S, B]
    if seeds is None:
        return per_seed.mean(axis=0)
    return np.take_along_axis(per_seed.T, seeds, axis=1).mean(axis=1)


def percentile(means: np.ndarray, level: float) -> tuple[float, float]:
    """The two-sided percentile interval at ``level`` of resampled means."""
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return float(lo), float(hi)


def seed_spread(values: Sequence[float | None]) -> float | None:
    """Sample standard deviation over seeds of a run-level value (None with fewer than 2 finite values)."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return float(np.std(finite, ddof=1)) if len(finite) > 1 else None
