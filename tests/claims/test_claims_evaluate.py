"""The claims' evidence from run folders laid out as the pipeline's (seed folders from ``run_dirs``): the frame's
rows and verdicts, the claim-level summary, claims.md, the demo's KL, and the errors on inconsistent runs."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from multiref.claims import (
    ContextScores,
    RunRef,
    claims_markdown,
    evaluate,
    parse_claims,
    read_run_scores,
    run_dirs,
    summarise,
    synthetic_kl,
)
from multiref.errors import MultirefError

N = 300
CONTEXT = np.random.default_rng(5).uniform(0, 1, N)  # shared per-context difficulty: the runs' scores are paired


def write_run(run: Path, quality: float, ppl: float, seed: int, n: int = N, reval: bool = True) -> None:
    """A run folder's ``test/`` files (the formats of docs/data.md), its scores rising with ``quality``."""
    (run / "test").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    base = CONTEXT[:n] + quality + rng.normal(0, 0.02, n)
    per = {"pair_id": np.arange(n), "bleu2": 0.05 * base, "average": 0.5 + 0.1 * base, "extrema": 0.3 + 0.1 * base, "greedy": 0.4 + 0.1 * base}
    pq.write_table(pa.table(per), run / "test" / "per_pair.parquet")
    (run / "test" / "perplexity.json").write_text(json.dumps({"ppl_authors": ppl, "ppl_token": ppl}))
    (run / "test" / "metrics.json").write_text(json.dumps({
        "bleu2": float(per["bleu2"].mean()), "average": float(per["average"].mean()), "extrema": float(per["extrema"].mean()),
        "greedy": float(per["greedy"].mean()), "distinct1": 100, "distinct2": 300, "pairs": n}))
    if reval:
        pq.write_table(pa.table({"pair_id": np.arange(n), "reval": 1 + 2 * base}), run / "test" / "reval.parquet")
        (run / "test" / "reval.json").write_text(json.dumps({"reval": float((1 + 2 * base).mean())}))


def fake_root(root: Path, quality: dict[str, float], ppl: dict[str, float], seeds: int) -> None:
    for i, (name, q) in enumerate(quality.items()):
        model, data = name.split("/")
        for k, d in enumerate(run_dirs(root, model, data, seeds)):
            write_run(d, q, ppl[name] + k, seed=100 * i + k)


CLAIMS = {
    "seeds": 3, "samples": 500,
    "list": [
        {"id": "multiref_hred", "paper": "zhao2021", "section": "§1", "sentence": "More is better.", "direction": "greater",
         "metrics": ["ppl", "bleu2", "reval"], "comparisons": [{"better": "hred/hyp5", "worse": "hred/gt"}]},
        {"id": "same", "paper": "zhao2021", "section": "§8.1", "sentence": "Either will do.", "direction": "equivalent",
         "metrics": ["bleu2", "avg"], "comparisons": [{"better": "hred/hyp5", "worse": "hred/gt+hyp5"}], "margin": {"bleu2": 0.5, "avg": 1.0}},
        {"id": "larger", "paper": "zhao2021", "section": "§6.1", "sentence": "Bigger is not always better.",
         "direction": "not_consistently_greater", "metrics": ["bleu2", "ppl"], "comparisons": [{"better": "hred_l/gt", "worse": "hred/gt"}]},
    ],
}
QUALITY = {"hred/gt": 0.0, "hred/hyp5": 0.5, "hred/gt+hyp5": 0.502, "hred_l/gt": -0.3}
PPL = {"hred/gt": 40.0, "hred/hyp5": 20.0, "hred/gt+hyp5": 20.0, "hred_l/gt": 45.0}


@pytest.fixture
def frame(tmp_path: Path) -> pd.DataFrame:
    fake_root(tmp_path, QUALITY, PPL, seeds=3)
    claims = parse_claims(CLAIMS)
    return evaluate(claims, lambda ref: run_dirs(tmp_path, ref.model, ref.data, claims.seeds))


def test_one_row_per_claim_comparison_and_metric_with_estimates_on_the_printed_scale(frame: pd.DataFrame) -> None:
    assert list(zip(frame["claim"], frame["metric"], strict=True)) == [
        ("multiref_hred", "ppl"), ("multiref_hred", "bleu2"), ("multiref_hred", "reval"), ("same", "bleu2"), ("same", "avg"),
        ("larger", "bleu2"), ("larger", "ppl")]
    row = frame.set_index(["claim", "metric"])
    assert row.loc[("multiref_hred", "bleu2"), "estimate"] == pytest.approx(100 * 0.05 * 0.5, abs=0.01)  # BLEU-2 x100
    assert row.loc[("multiref_hred", "ppl"), "estimate"] == pytest.approx(-20.0)
    assert row.loc[("multiref_hred", "reval"), "estimate"] == pytest.approx(1.0, abs=0.01)  # Reval on 1-5, unscaled
    assert (frame["seeds_better"] == 3).all() and (frame["seeds_worse"] == 3).all()
    assert row.loc[("multiref_hred", "bleu2"), "contexts"] == N and pd.isna(row.loc[("multiref_hred", "ppl"), "contexts"])
    assert row.loc[("multiref_hred", "bleu2"), "bootstrap"] == "seeds+contexts" and row.loc[("multiref_hred", "ppl"), "bootstrap"] == "seeds"
    assert row.loc[("same", "bleu2"), "interval_level"] == pytest.approx(0.90) and row.loc[("same", "bleu2"), "margin"] == 0.5
    assert row.loc[("multiref_hred", "reval"), "sentence"] == "More is better."
    assert set(frame["better"]) == {"hred/hyp5", "hred_l/gt"}


def test_verdicts_per_row_and_per_claim(frame: pd.DataFrame) -> None:
    assert frame.groupby("claim", sort=False)["verdict"].apply(list).to_dict() == {
        "multiref_hred": ["holds", "holds", "holds"], "same": ["holds", "holds"], "larger": ["holds", "holds"]}
    summary = summarise(frame).set_index("claim")
    assert summary["verdict"].to_dict() == {"multiref_hred": "holds", "same": "holds", "larger": "holds"}
    assert summary.loc["multiref_hred", ["rows", "holds", "fails", "inconclusive", "untested"]].tolist() == [3, 3, 0, 0, 0]


def test_claims_markdown_gives_the_verdict_first_then_the_evidence(frame: pd.DataFrame) -> None:
    text = claims_markdown(frame)
    lines = text.splitlines()
    head = next(i for i, line in enumerate(lines) if "`multiref_hred`" in line)
    assert lines[head].startswith("- **holds** `multiref_hred` (greater; 3 hold, 0 fail, 0 inconclusive)")
    assert 'Zhao, Lala & Kawahara (2021), §1: "More is better."' in lines[head]
    assert lines[head + 1].startswith("  - hred/hyp5 - hred/gt, ppl (lower is better): -20.00 [")
    assert "95% interval; 3 vs 3 seed(s)) -> holds" in lines[head + 1]
    assert f"3 vs 3 seed(s), {N} contexts) -> holds" in lines[head + 2]
    assert "90% interval (TOST), margin 0.5" in text


def test_a_single_seed_leaves_run_level_metrics_inconclusive_and_out_of_the_claims_verdict(tmp_path: Path) -> None:
    fake_root(tmp_path, QUALITY, PPL, seeds=1)
    claims = parse_claims({**CLAIMS, "seeds": 1})
    frame = evaluate(claims, {ref: run_dirs(tmp_path, ref.model, ref.data, 1) for ref in claims.runs()})
    ppl = frame[(frame["claim"] == "multiref_hred") & (frame["metric"] == "ppl")].iloc[0]
    assert ppl["verdict"] == "inconclusive" and not ppl["tested"] and pd.isna(ppl["lo"]) and ppl["bootstrap"] == "none"
    assert "no interval (1 vs 1 seed(s): ppl is one value per run" in ppl["evidence"]
    summary = summarise(frame).set_index("claim")
    assert summary.loc["multiref_hred", "verdict"] == "holds" and summary.loc["multiref_hred", "untested"] == 1
    assert "1 without interval" in claims_markdown(frame)


def test_a_claim_against_the_data_fails_and_one_within_noise_is_inconclusive(tmp_path: Path) -> None:
    fake_root(tmp_path, {"hred/gt": 0.0, "hred/hyp5": -0.5, "hred/gt+hyp5": 0.0, "hred_l/gt": 0.0},
              {"hred/gt": 40.0, "hred/hyp5": 41.0, "hred/gt+hyp5": 40.0, "hred_l/gt": 40.0}, seeds=3)
    claims = parse_claims(CLAIMS)
    frame = evaluate(claims, lambda ref: run_dirs(tmp_path, ref.model, ref.data, 3))
    summary = summarise(frame).set_index("claim")["verdict"].to_dict()
    assert summary["multiref_hred"] == "fails"  # hyp5 worse on BLEU-2 and Reval
    assert summary["same"] == "fails"  # 0.5 quality apart: far beyond the margins
    assert summary["larger"] == "inconclusive"  # same quality, seed offsets of ppl only


def test_synthetic_kl_per_context_is_bootstrapped_with_the_contexts(tmp_path: Path) -> None:
    fit = tmp_path / "synthetic_fit.parquet"
    runs = {"hred/gt": 30.0, "hred/hyp5": 9.0}
    rows = [(name, pid, kl + 0.1 * pid) for name, kl in runs.items() for pid in range(20)]
    pq.write_table(pa.table({"run": [r[0] for r in rows], "pair_id": [r[1] for r in rows], "kl": [r[2] for r in rows],
                             "support": [1] * 40, "valid_mass": [0.5] * 40, "entropy": [1.0] * 40}), fit)
    kl = synthetic_kl(fit)
    assert sorted(kl) == ["hred/gt", "hred/hyp5"] and kl["hred/gt"].scores[3] == pytest.approx(30.3)
    for name in runs:
        write_run(tmp_path / name, QUALITY[name], PPL[name], seed=1)
    claims = parse_claims({"list": [{**CLAIMS["list"][0], "metrics": ["kl"]}]})
    frame = evaluate(claims, {ref: [tmp_path / ref.name] for ref in claims.runs()},
                     load=lambda d: read_run_scores(d, extra={"kl": kl[f"{d.parent.name}/{d.name}"]}))
    row = frame.iloc[0]
    assert row["estimate"] == pytest.approx(-21.0) and row["contexts"] == 20 and row["verdict"] == "holds"
    assert "KL (nats) (lower is better)" in row["evidence"]


def test_runs_scored_on_other_contexts_or_without_a_metric_are_refused(tmp_path: Path) -> None:
    write_run(tmp_path / "a", 0.5, 20.0, seed=1)
    write_run(tmp_path / "b", 0.0, 40.0, seed=2, n=N - 1, reval=False)
    claims = parse_claims({"list": [CLAIMS["list"][0]]})
    folders = {RunRef("hred", "hyp5"): [tmp_path / "a"], RunRef("hred", "gt"): [tmp_path / "b"]}
    with pytest.raises(MultirefError, match="bleu2: .*b was scored on other test contexts than .*a"):
        evaluate(claims, folders)
    only_reval = parse_claims({"list": [{**CLAIMS["list"][0], "metrics": ["reval"]}]})
    with pytest.raises(MultirefError, match=r"b: no reval for this run"):
        evaluate(only_reval, folders)
    with pytest.raises(MultirefError, match="hred/gt: no run folder given"):
        evaluate(claims, {**folders, RunRef("hred", "gt"): []})
    assert read_run_scores(tmp_path / "a", extra={"kl": 3.5}).values["kl"] == 3.5
    assert isinstance(read_run_scores(tmp_path / "a").contexts["bleu2"], ContextScores)
