"""The claims' statistics on constructed tables: the hierarchical bootstrap, the verdict rules of every direction
(holds / fails / inconclusive, equivalence, limited gain, not consistently better), lower-is-better metrics and
the claim-level aggregation."""

import numpy as np
import pytest

from multiref.claims import (
    ContextScores,
    RunScores,
    aggregate,
    compare,
    hierarchical_interval,
    interval_level,
    seed_interval,
    verdict,
)
from multiref.tables.results import bootstrap_indices, paired_difference_interval

N = 400


def table(shift: float, seeds: int = 3, seed_sd: float = 0.0, noise: float = 1.0, rng_seed: int = 0) -> np.ndarray:
    """[seeds, N] per-context scores: a shared context effect, a per-seed offset, a small per-(seed, context) noise,
    plus ``shift``; the same context effect for every call (the two sides of a comparison are paired)."""
    contexts = np.random.default_rng(99).normal(0, noise, N)
    rng = np.random.default_rng(rng_seed)
    offsets = rng.normal(0, seed_sd, (seeds, 1)) if seed_sd else np.zeros((seeds, 1))
    return contexts + offsets + rng.normal(0, 0.05, (seeds, N)) + shift


def runs(scores: np.ndarray, metric: str = "bleu2") -> list[RunScores]:
    ids = np.arange(scores.shape[1])
    return [RunScores(contexts={metric: ContextScores(ids, row)}) for row in scores]


def check(direction: str, better: np.ndarray, worse: np.ndarray, margin: float | None = None, lower: bool = False) -> str:
    est = compare(runs(better), runs(worse), "bleu2", 1000, 0, interval_level(direction, 0.95))
    return verdict(direction, est.lo, est.hi, lower, margin)


def test_zero_seed_variance_reduces_to_the_tables_paired_context_bootstrap() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(1, 1, N), rng.normal(0.8, 1, N)
    est = hierarchical_interval(np.stack([a] * 3), np.stack([b] * 2), 1000, 7, 0.95, key="x")
    lo, hi = paired_difference_interval(a, b, bootstrap_indices(N, 1000, 7), 0.95)
    assert est.lo == pytest.approx(lo, rel=1e-9) and est.hi == pytest.approx(hi, rel=1e-9)
    assert est.estimate == pytest.approx(a.mean() - b.mean())
    assert (est.seeds_better, est.seeds_worse, est.contexts) == (3, 2, N)


def test_seed_variance_widens_the_interval_and_the_estimate_is_the_mean_over_seeds_and_contexts() -> None:
    worse = table(0.0)
    narrow = hierarchical_interval(table(0.3, seed_sd=0.0, rng_seed=1), worse, 1000, 0, 0.95)
    better = table(0.3, seed_sd=1.0, rng_seed=1)
    wide = hierarchical_interval(better, worse, 1000, 0, 0.95)
    assert (wide.hi - wide.lo) > 3 * (narrow.hi - narrow.lo)
    assert wide.estimate == pytest.approx(better.mean() - worse.mean())


def test_the_bootstrap_is_reproducible_and_its_seed_draws_depend_on_the_comparison_not_the_call_order() -> None:
    b, w = table(0.2, seed_sd=0.5, rng_seed=3), table(0.0, seed_sd=0.5, rng_seed=4)
    first = hierarchical_interval(b, w, 500, 0, 0.95, key="hred/hyp5|hred/gt")
    hierarchical_interval(w, b, 500, 0, 0.95, key="other")
    again = hierarchical_interval(b, w, 500, 0, 0.95, key="hred/hyp5|hred/gt")
    assert (first.lo, first.hi) == (again.lo, again.hi)


def test_sides_scored_on_different_numbers_of_contexts_are_refused() -> None:
    with pytest.raises(ValueError, match="different numbers of contexts"):
        hierarchical_interval(np.zeros((2, 5)), np.zeros((2, 6)), 10, 0, 0.95)


@pytest.mark.parametrize(("shift", "expected"), [(0.5, "holds"), (-0.5, "fails"), (0.0, "inconclusive")])
def test_greater(shift: float, expected: str) -> None:
    assert check("greater", table(shift, rng_seed=1), table(0.0, rng_seed=2)) == expected


@pytest.mark.parametrize(("shift", "expected"), [(-0.5, "holds"), (0.5, "fails"), (0.0, "inconclusive")])
def test_greater_on_a_lower_is_better_metric(shift: float, expected: str) -> None:
    """ppl and KL: the better run has the lower mean, so a negative difference supports the claim."""
    assert check("greater", table(shift, rng_seed=1), table(0.0, rng_seed=2), lower=True) == expected


@pytest.mark.parametrize(("shift", "margin", "expected"), [(0.0, 0.3, "holds"), (1.0, 0.3, "fails"), (-1.0, 0.3, "fails"),
                                                           (0.3, 0.3, "inconclusive")])
def test_equivalent(shift: float, margin: float, expected: str) -> None:
    assert check("equivalent", table(shift, rng_seed=1), table(0.0, rng_seed=2), margin) == expected


def test_equivalence_reads_the_two_one_sided_tests_interval() -> None:
    """TOST at alpha = 1 - level reads the 1 - 2 alpha interval: a difference whose 95% interval reaches past the
    margin but whose 90% interval does not is equivalent."""
    assert interval_level("equivalent", 0.95) == pytest.approx(0.90)
    assert interval_level("limited", 0.95) == pytest.approx(0.90)
    assert interval_level("greater", 0.95) == interval_level("not_consistently_greater", 0.95) == 0.95
    assert verdict("equivalent", -0.05, 0.29, margin=0.3) == "holds"  # the 90% interval
    assert verdict("equivalent", -0.08, 0.31, margin=0.3) == "inconclusive"  # a wider (95%) one of the same data


@pytest.mark.parametrize(("shift", "expected"), [(0.0, "holds"), (-1.0, "holds"), (1.0, "fails"), (0.3, "inconclusive")])
def test_limited_gain(shift: float, expected: str) -> None:
    """'The gain is limited': the better run's gain stays below the margin; a loss is a limited gain too."""
    assert check("limited", table(shift, rng_seed=1), table(0.0, rng_seed=2), 0.3) == expected


def test_limited_gain_on_a_lower_is_better_metric() -> None:
    assert verdict("limited", -0.5, -0.4, lower_is_better=True, margin=0.3) == "fails"  # ppl 0.4-0.5 lower: a gain > 0.3
    assert verdict("limited", -0.2, 0.1, lower_is_better=True, margin=0.3) == "holds"


@pytest.mark.parametrize(("shift", "expected"), [(-0.5, "holds"), (0.5, "fails"), (0.0, "inconclusive")])
def test_not_consistently_greater_per_metric(shift: float, expected: str) -> None:
    """A row holds when it shows the (larger) better-named run significantly worse."""
    assert check("not_consistently_greater", table(shift, rng_seed=1), table(0.0, rng_seed=2)) == expected


def test_not_consistently_greater_aggregates_with_any_and_the_others_with_all() -> None:
    assert aggregate("not_consistently_greater", ["fails", "holds", "inconclusive"]) == "holds"
    assert aggregate("not_consistently_greater", ["fails", "fails"]) == "fails"
    assert aggregate("not_consistently_greater", ["fails", "inconclusive"]) == "inconclusive"
    for direction in ("greater", "equivalent", "limited"):
        assert aggregate(direction, ["holds", "holds"]) == "holds"
        assert aggregate(direction, ["holds", "fails", "inconclusive"]) == "fails"
        assert aggregate(direction, ["holds", "inconclusive"]) == "inconclusive"
        assert aggregate(direction, []) == "inconclusive"
    with pytest.raises(ValueError, match="unknown verdict"):
        aggregate("greater", ["maybe"])


def test_no_interval_is_inconclusive_and_margins_are_required() -> None:
    for direction in ("greater", "not_consistently_greater"):
        assert verdict(direction, None, None) == "inconclusive"
    with pytest.raises(ValueError, match="needs a margin"):
        verdict("equivalent", -1.0, 1.0)
    with pytest.raises(ValueError, match="unknown direction"):
        verdict("smaller", -1.0, 1.0)


def test_run_level_metrics_get_a_seed_only_bootstrap_and_no_interval_with_one_seed() -> None:
    one = seed_interval([20.0], [29.0], 1000, 0, 0.95)
    assert one.estimate == -9.0 and one.lo is None and one.hi is None and one.contexts is None
    assert verdict("greater", one.lo, one.hi, lower_is_better=True) == "inconclusive"
    three = seed_interval([20.0, 21.0, 22.0], [29.0, 30.0, 28.5], 1000, 0, 0.95)
    assert three.lo is not None and three.hi is not None and three.lo <= three.estimate <= three.hi < 0
    assert verdict("greater", three.lo, three.hi, lower_is_better=True) == "holds"
    # one side with a single seed: its variance is unknown, so no interval either
    assert seed_interval([20.0, 21.0, 22.0], [29.0], 1000, 0, 0.95).lo is None


def test_compare_bootstraps_run_level_values_over_seeds() -> None:
    better = [RunScores(values={"ppl": v}) for v in (20.0, 21.0, 22.0)]
    worse = [RunScores(values={"ppl": v}) for v in (29.0, 30.0, 31.0)]
    est = compare(better, worse, "ppl", 1000, 0, 0.95)
    assert est.contexts is None and est.estimate == pytest.approx(-9.0)
    assert est.lo is not None and est.lo >= -11.0 and est.hi is not None and est.hi <= -7.0
