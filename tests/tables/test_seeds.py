"""Rows of several training seeds: combining the seeds' runs and the hierarchical bootstrap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from multiref.errors import MultirefError
from multiref.tables import seeds
from multiref.tables.results import _add_bootstrap, bootstrap_indices, percentile_interval


def _run(scores: np.ndarray, ppl: float, ids: np.ndarray | None = None) -> dict:
    ids = np.arange(len(scores)) if ids is None else ids
    return {"values": {"ppl": ppl, "bleu2": float(scores.mean()), "word_vectors": "glove"}, "scores": {"bleu2": scores},
            "pair_ids": ids}


def test_one_seed_is_the_run_itself() -> None:
    run = _run(np.array([1.0, 2.0, 3.0]), 10.0)
    combined = seeds.combine_seeds([run], "t")
    assert combined["seeds"] == 1 and combined["scores"]["bleu2"].ndim == 1


def test_seeds_average_values_and_stack_scores() -> None:
    combined = seeds.combine_seeds([_run(np.array([1.0, 3.0]), 10.0), _run(np.array([3.0, 5.0]), 20.0)], "t")
    assert combined["values"]["ppl"] == 15.0 and combined["values"]["word_vectors"] == "glove"
    assert combined["scores"]["bleu2"].shape == (2, 2) and combined["seeds"] == 2


def test_seeds_on_other_contexts_are_refused() -> None:
    with pytest.raises(MultirefError, match="t: seed 1 was scored on other test contexts"):
        seeds.combine_seeds([_run(np.array([1.0, 3.0]), 1.0), _run(np.array([1.0, 3.0]), 1.0, np.array([0, 7]))], "t")


def test_one_seed_reduces_to_the_context_bootstrap() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(size=50)
    idx = bootstrap_indices(50, 300, 1)
    assert seeds.percentile(seeds.resampled_means(scores, idx, None), 0.95) == percentile_interval(scores, idx, 0.95)
    # identical seeds: resampling seeds changes nothing
    stacked = np.stack([scores, scores, scores])
    draw = seeds.seed_resamples(3, 300, np.random.default_rng(2))
    assert np.allclose(seeds.resampled_means(stacked, idx, draw), scores[idx].mean(axis=1))


def test_seed_variance_widens_the_interval() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=200)
    idx = bootstrap_indices(200, 1000, 1)
    draw = seeds.seed_resamples(3, 1000, np.random.default_rng(2))
    calm = np.stack([base, base + 0.01, base - 0.01])
    noisy = np.stack([base, base + 1.0, base - 1.0])
    lo_c, hi_c = seeds.percentile(seeds.resampled_means(calm, idx, draw), 0.95)
    lo_n, hi_n = seeds.percentile(seeds.resampled_means(noisy, idx, draw), 0.95)
    assert hi_n - lo_n > 2 * (hi_c - lo_c)


def test_table_rows_with_seeds_get_hierarchical_intervals() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=100)
    one = _run(a, 1.0)
    three = seeds.combine_seeds([_run(a + d, 1.0) for d in (0.0, 1.0, 2.0)], "t")
    frame = pd.DataFrame({"run": ["a", "b"]})
    _add_bootstrap(frame, [one, three], {"samples": 500, "seed": 0, "level": 0.95})
    assert frame["seeds"].tolist() == [1, 3]
    # the three seeds' mean is a + 1: the difference to row a lies around 1, its interval wider than the context-only one
    lo, hi = frame.loc[1, "bleu2_vs_base_ci_lo"], frame.loc[1, "bleu2_vs_base_ci_hi"]
    assert lo < 1.0 < hi and hi - lo > 0.5
    assert frame.loc[0, "bleu2_vs_base_ci_lo"] == frame.loc[0, "bleu2_vs_base_ci_hi"] == 0.0
