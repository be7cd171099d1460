"""The Mirror paper's pairwise protocol with a learned judge: outcomes, shares, intervals, alignment, LaTeX."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from multiref import paper
from multiref.errors import ConfigError, MultirefError
from multiref.mirror.pairwise import Comparison, judge, pairwise_latex, pairwise_shares, pairwise_table
from multiref.tables.results import bootstrap_indices

BOOT = {"samples": 500, "seed": 0, "level": 0.95}

# 10 dialogues: Mirror wins 6 (diff > 0.5), loses 3 (diff < -0.5), ties 1 (diff exactly 0.5)
A10 = np.array([4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 2.0, 2.0, 2.0, 3.5])
B10 = np.array([3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0])


def _comparison(system: str = "Mirror", baseline: str = "HRED", ref: str | None = "HRED") -> Comparison:
    ids = np.arange(100, 110)
    return Comparison(system=system, baseline=baseline, a=A10, b=B10, pair_ids_a=ids, pair_ids_b=ids, paper=ref)


def test_judge_with_a_margin_counts_the_exact_margin_as_a_tie() -> None:
    a = np.array([3.5, 2.5, 3.0, 4.0, 1.0, 3.25])
    b = np.array([3.0, 3.0, 3.0, 3.0, 3.0, 3.0])
    out = judge(a, b, 0.5)
    assert out.dtype == np.int8
    assert out.tolist() == [0, 0, 0, 1, -1, 0]


def test_judge_with_margin_zero_ties_only_equal_scores() -> None:
    a = np.array([3.0, 3.0001, 2.9999, 5.0])
    b = np.array([3.0, 3.0, 3.0, 1.0])
    assert judge(a, b, 0.0).tolist() == [0, 1, -1, 1]


@pytest.mark.parametrize("margin", [-0.1, float("nan"), float("inf")])
def test_a_negative_or_non_finite_margin_raises(margin: float) -> None:
    with pytest.raises(ConfigError, match="margin"):
        judge(A10, B10, margin)
    with pytest.raises(ConfigError, match="margin"):
        pairwise_table([_comparison()], margin, BOOT)


def test_judge_rejects_shape_mismatch_and_nan() -> None:
    with pytest.raises(MultirefError, match="shapes"):
        judge(np.ones(3), np.ones(4), 0.1)
    with pytest.raises(MultirefError, match="NaN"):
        judge(np.array([1.0, np.nan]), np.ones(2), 0.1)


def test_shares_of_a_known_example() -> None:
    idx = bootstrap_indices(10, 1000, seed=1)
    s = pairwise_shares(A10, B10, 0.5, idx, 0.95)
    assert (s["wins"], s["losses"], s["ties"]) == pytest.approx((0.6, 0.3, 0.1))
    assert s["wins"] + s["losses"] + s["ties"] == pytest.approx(1.0)
    assert s["n"] == 10
    for x in ("wins", "losses", "ties"):
        assert 0.0 <= s[f"{x}_ci_lo"] <= s[x] <= s[f"{x}_ci_hi"] <= 1.0
        assert s[f"{x}_ci_lo"] < s[f"{x}_ci_hi"]


def test_intervals_are_deterministic_for_a_seed() -> None:
    first = pairwise_shares(A10, B10, 0.5, bootstrap_indices(10, 300, seed=7), 0.9)
    again = pairwise_shares(A10, B10, 0.5, bootstrap_indices(10, 300, seed=7), 0.9)
    assert first == again
    t1, t2 = pairwise_table([_comparison()], 0.5, BOOT), pairwise_table([_comparison()], 0.5, BOOT)
    pd.testing.assert_frame_equal(t1, t2)


def test_all_ties_give_a_degenerate_interval() -> None:
    scores = np.linspace(1, 5, 20)
    s = pairwise_shares(scores, scores + 0.1, 0.25, bootstrap_indices(20, 200, seed=0), 0.95)
    assert (s["ties"], s["ties_ci_lo"], s["ties_ci_hi"]) == (1.0, 1.0, 1.0)
    assert (s["wins"], s["wins_ci_lo"], s["wins_ci_hi"]) == (0.0, 0.0, 0.0)


def test_shares_check_the_resamples() -> None:
    with pytest.raises(MultirefError, match="resample"):
        pairwise_shares(A10, B10, 0.5, bootstrap_indices(9, 10, seed=0), 0.95)


def test_table_columns_and_reference() -> None:
    frame = pairwise_table([_comparison(), _comparison("Mirror (5 hyp)", "my_baseline", None)], 0.5, BOOT)
    assert list(frame.columns) == [
        "system", "baseline", "judge_wins", "judge_losses", "judge_ties",
        "judge_wins_ci_lo", "judge_wins_ci_hi", "judge_losses_ci_lo", "judge_losses_ci_hi", "judge_ties_ci_lo", "judge_ties_ci_hi",
        "margin", "test_dialogues", "paper_human_wins", "paper_human_losses", "paper_human_ties"]
    first, second = frame.iloc[0], frame.iloc[1]
    assert (first["judge_wins"], first["judge_losses"], first["judge_ties"]) == pytest.approx((0.6, 0.3, 0.1))
    assert first["margin"] == 0.5 and first["test_dialogues"] == 10
    assert [first[f"paper_human_{x}"] for x in ("wins", "losses", "ties")] == [0.49, 0.32, 0.19]
    assert [first[f"paper_human_{x}"] for x in ("wins", "losses", "ties")] == [paper.MIRROR_HUMAN["HRED"][x] for x in ("wins", "losses", "ties")]
    assert all(second[f"paper_human_{x}"] is None for x in ("wins", "losses", "ties"))
    # same scores, same resamples: same intervals on every row
    for x in ("wins", "losses", "ties"):
        assert first[f"judge_{x}_ci_lo"] == second[f"judge_{x}_ci_lo"]


def test_mirror_human_reference_is_the_papers_table() -> None:
    assert set(paper.MIRROR_HUMAN) == {"Seq2SeqAttn", "HRED", "VHRED", "MMI", "DC", "DC-MMI"}
    assert paper.MIRROR_HUMAN["Seq2SeqAttn"] == {"wins": 0.50, "losses": 0.26, "ties": 0.24}
    assert all(sum(v.values()) == pytest.approx(1.0) for v in paper.MIRROR_HUMAN.values())


def test_unknown_paper_label_raises() -> None:
    with pytest.raises(ConfigError, match="Nope"):
        pairwise_table([_comparison(ref="Nope")], 0.5, BOOT)


def test_misaligned_ids_raise_naming_both_systems() -> None:
    c = Comparison(system="Mirror (5 hyp)", baseline="VHRED", a=A10, b=B10, pair_ids_a=np.arange(10), pair_ids_b=np.arange(1, 11))
    with pytest.raises(MultirefError, match=r"Mirror \(5 hyp\) vs\. VHRED"):
        pairwise_table([c], 0.5, BOOT)
    with pytest.raises(MultirefError, match="Mirror.*VHRED"):
        Comparison(system="Mirror", baseline="VHRED", a=A10, b=B10[:9], pair_ids_a=np.arange(10), pair_ids_b=np.arange(10))
    dup = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 8])
    with pytest.raises(MultirefError, match="more than once"):
        pairwise_table([Comparison("Mirror", "VHRED", A10, B10, dup, dup)], 0.5, BOOT)


def test_ids_in_different_orders_are_aligned() -> None:
    rng = np.random.default_rng(0)
    ids = np.arange(10)
    perm_a, perm_b = rng.permutation(10), rng.permutation(10)
    shuffled = Comparison("Mirror", "HRED", A10[perm_a], B10[perm_b], ids[perm_a], ids[perm_b], "HRED")
    ordered = pairwise_table([_comparison()], 0.5, BOOT)
    pd.testing.assert_frame_equal(pairwise_table([shuffled], 0.5, BOOT), ordered)
    # string ids too
    names = np.array([f"d{i:02d}" for i in range(10)])
    as_text = Comparison("Mirror", "HRED", A10[::-1], B10, names[::-1], names, "HRED")
    pd.testing.assert_frame_equal(pairwise_table([as_text], 0.5, BOOT), ordered)


def test_bad_bootstrap_settings_raise() -> None:
    with pytest.raises(ConfigError, match="seed"):
        pairwise_table([_comparison()], 0.5, {"samples": 10, "level": 0.95})
    with pytest.raises(ConfigError, match="level"):
        pairwise_table([_comparison()], 0.5, {"samples": 10, "seed": 0, "level": 1.5})


def test_latex_escapes_labels_and_marks_missing_reference() -> None:
    frame = pairwise_table([_comparison("Mirror_5%", "HRED", "HRED"), _comparison("Mirror", "my_base & co", None)], 0.5, BOOT)
    tex = pairwise_latex(frame, caption="Reval judge, margin 0.5 (100% of dialogues)", label="tab:pairwise")
    assert r"Mirror\_5\% vs.\ HRED" in tex
    assert r"Mirror vs.\ my\_base \& co" in tex
    assert r"Method pair & Wins & Losses & Ties & paper (human) W/L/T \\" in tex
    assert r"0.49 / 0.32 / 0.19 \\" in tex
    lines = tex.splitlines()
    no_ref = next(line for line in lines if "my\\_base" in line)
    assert no_ref.endswith(r"& -- \\")
    r = frame.iloc[0]
    assert f"0.60 {{\\scriptsize [{r['judge_wins_ci_lo']:.2f}, {r['judge_wins_ci_hi']:.2f}]}}" in tex
    assert r"\caption{Reval judge, margin 0.5 (100\% of dialogues)}" in tex and r"\label{tab:pairwise}" in tex
    assert r"\toprule" in tex and r"\bottomrule" in tex
    with pytest.raises(MultirefError, match="columns"):
        pairwise_latex(frame.drop(columns=["judge_ties"]), "c", "l")
