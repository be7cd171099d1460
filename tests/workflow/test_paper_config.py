"""The paper's configuration end to end on the real corpus: config/config.yaml with the paper-smoke override
(`.test/config-paper/config.yaml`), which may change only sizes, the corpus subset, devices, where outputs go
and the hub resources (replaced by local stand-ins). Needs ../shared (skipped with a message elsewhere)."""

from __future__ import annotations

import fnmatch
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import REPO

PAPER = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
OVERRIDE_PATH = REPO / ".test" / "config-paper" / "config.yaml"
OVERRIDE = yaml.safe_load(OVERRIDE_PATH.read_text())

# What the override may set, as dotted key patterns (``*`` matches one key). Sizes: dimensions, layers,
# vocabulary, epoch / step budgets, batch sizes, shards, validation interval, lengths; the corpus subset;
# devices; where outputs go; the hub resources' local stand-ins; resource requests. A model may only be
# one of the paper's, resized.
SIZES = ["embedding_dim", "floor_dim", "hidden", "layers", "sent_hidden", "sent_layers", "dial_hidden", "dial_layers",
         "dec_hidden", "dec_layers", "latent_dim", "mechanism_dim"]
ALLOWED = [
    "run_name", "root",
    "corpus.archive",  # the local DailyDialog archive of ../shared
    "data.vocab_size", "data.subset.*",
    "teacher.model",  # stand-in of gpt2-medium
    "teacher.device",
    "teacher.train.epochs", "teacher.train.batch_size", "teacher.train.eval_batch_size",
    "teacher.train.checkpoint_every", "teacher.train.log_every",
    "teacher.sampling.batch_contexts", "teacher.sampling.chunk_pairs", "teacher.sampling.max_new_tokens",
    "teacher.shards",
    *[f"models.{name}.{size}" for name in PAPER["models"] for size in SIZES],
    "train.device", "train.epochs", "train.batch_size", "train.eval_batch_size", "train.validate_every",
    "train.log_every",
    "train.word_vectors",  # stand-in of glove-twitter-200
    "eval.word_vectors",  # stand-in of word2vec-google-news-300
    "decode.batch_size",
    "reval.encoder",  # stand-in of roberta-large
    "reval.device", "reval.score_batch_size",
    "reval.judgements.source", "reval.judgements.path",  # the human judgements of ../shared
    "reval.pretrain.epochs", "reval.pretrain.max_pairs", "reval.pretrain.batch_size",
    "reval.train.epochs", "reval.train.batch_size", "reval.train.eval_batch_size", "reval.train.validate_every",
    "reval.train.max_length",
    "mirror.train.batch_size", "mirror.train.epochs", "mirror.train.validate_every", "mirror.mmi.batch_size",
    "resources.*",
]


def leaf_keys(tree: Any, prefix: str = "") -> list[str]:
    """Dotted paths of the leaves of a YAML mapping (a list is a leaf: Snakemake replaces lists whole)."""
    if not isinstance(tree, dict) or not tree:
        return [prefix]
    return [key for name, value in tree.items() for key in leaf_keys(value, f"{prefix}.{name}" if prefix else str(name))]


def forbidden_keys(override: dict[str, Any]) -> list[str]:
    """The keys of ``override`` that are not in :data:`ALLOWED`."""
    return [key for key in leaf_keys(override) if not any(fnmatch.fnmatchcase(key, pattern) for pattern in ALLOWED)]


def test_the_override_touches_only_allowed_keys() -> None:
    assert forbidden_keys(OVERRIDE) == []


@pytest.mark.parametrize(
    "bad",
    [
        {"teacher": {"sampling": {"n": 20}}},
        {"settings": {"names": ["gt", "hyp5"]}},
        {"tables": {"table2": []}},
        {"tables": {"table5": {"data": "hyp5"}}},
        {"models": {"hred": {"kind": "vhred"}}},
        {"models": {"hred": {"dropout": 0.0}}},
        {"models": {"transformer": {"hidden": 4}}},
        {"mirror": {"systems": []}},
        {"mirror": {"mmi": {"n": 5}}},
        {"train": {"lr": 0.01}},
        {"train": {"keep": "last"}},
        {"teacher": {"init": "scratch"}},
        {"data": {"history_len": 2}},
    ],
    ids=lambda bad: ".".join(leaf_keys(bad)),
)
def test_the_allowed_key_check_refuses_other_keys(bad: dict[str, Any]) -> None:
    assert forbidden_keys(bad) == leaf_keys(bad)
    assert forbidden_keys({**OVERRIDE, **bad}) != []


def test_every_model_of_the_paper_is_resized_to_the_stand_in_vectors() -> None:
    """The override keeps every model of the paper (no new ones) and matches the 50-d stand-in vectors."""
    assert set(OVERRIDE["models"]) == set(PAPER["models"])
    assert {spec["embedding_dim"] for spec in OVERRIDE["models"].values()} == {50}


# ---------------------------------------------------------------------------------------------------------------
# The build (fixture `paper_smoke` of conftest.py: `rule all`, then `--report`)


def finite(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The rows of ``frame`` with a missing or infinite value in ``columns``."""
    values = frame[columns].apply(pd.to_numeric, errors="coerce")
    return frame[~values.map(math.isfinite).all(axis=1)]


def show(capsys: pytest.CaptureFixture[str], name: str, frame: pd.DataFrame, columns: list[str]) -> None:
    """List a table's rows in the test log (also when the test passes)."""
    with capsys.disabled():
        print(f"\n[paper smoke] {name}:\n{frame[columns].to_string(index=False)}")


MEASURED = ["ppl", "bleu2", "ext", "avg", "grd", "reval", "d1", "d2", "param", "trn_time"]


@pytest.mark.shared
@pytest.mark.slow
@pytest.mark.parametrize("name", ["table1", "table2"])
def test_every_row_of_tables_1_and_2_is_filled(paper_smoke: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    frame = pd.read_csv(paper_smoke / f"{name}.csv")
    assert frame["run"].tolist() == [f"{r['model']}/{r['data']}" for r in PAPER["tables"][name]]
    assert finite(frame, MEASURED).empty, finite(frame, ["run", *MEASURED])
    assert frame["reval"].between(1, 5).all() and frame["ppl"].gt(1).all()
    show(capsys, name, frame, ["run", *MEASURED])


@pytest.mark.shared
@pytest.mark.slow
def test_tables_4_5_and_8(paper_smoke: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t4 = pd.read_csv(paper_smoke / "table4.csv")
    ks = PAPER["tables"]["table4"]["hypotheses"]
    assert list(zip(t4["use_gt"], t4["n_hyp"], strict=True)) == [(g, k) for k in ks for g in (False, True)]
    columns = ["ppl", "bleu2", "ext", "avg", "grd", "reval"]
    assert finite(t4, columns).empty, t4
    show(capsys, "table4", t4, ["use_gt", "n_hyp", *columns])
    t5 = pd.read_csv(paper_smoke / "table5.csv")
    assert t5["k"].tolist() == list(range(PAPER["models"][PAPER["tables"]["table5"]["model"]]["components"]))
    assert finite(t5, ["pi", "ppl", "reval"]).empty, t5
    show(capsys, "table5", t5, ["k", "pi", "ppl", "reval"])
    t8 = pd.read_csv(paper_smoke / "table8.csv").set_index("item")
    subset = OVERRIDE["data"]["subset"]
    assert t8["scope"].eq("subset").all() and [t8.loc["sessions", s] for s in ("train", "dev", "test")] == [subset[s] for s in ("train", "dev", "test")]
    assert t8.loc["sessions", "paper_train"] == 9237 and "diff_train" not in t8.columns  # full-corpus reference only
    assert "subset of the sessions" in (paper_smoke / "table8.tex").read_text()
    show(capsys, "table8", t8.reset_index(), ["item", "scope", "train", "dev", "test", "paper_train", "paper_dev", "paper_test"])


@pytest.mark.shared
@pytest.mark.slow
def test_the_mirror_table_and_the_human_evaluation_sheet(paper_smoke: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frame = pd.read_csv(paper_smoke / "table_mirror.csv")
    systems = PAPER["mirror"]["systems"]
    assert frame["model"].tolist() == [s["label"] for s in systems]
    assert frame["run"].tolist() == [f"{s['model']}/{s['data']}" for s in systems]
    columns = ["param", "ppl", "bleu2", "ext", "avg", "grd", "reval", "d1", "d2"]
    assert finite(frame, columns).empty, frame
    show(capsys, "table_mirror", frame, ["model", "run", *columns])
    pairwise = pd.read_csv(paper_smoke / "table_mirror_pairwise.csv")
    shares = ["judge_wins", "judge_losses", "judge_ties"]
    mirrors = [s["label"] for s in systems if s["role"] == "mirror"]
    baselines = [s["label"] for s in systems if s["role"] == "baseline"]
    measured = pairwise[pairwise["note"].isna()]  # then the paper's reference-only rows (DC, DC-MMI)
    assert list(zip(measured["system"], measured["baseline"], strict=True)) == [(m, b) for m in mirrors for b in baselines]
    pairwise = measured
    assert finite(pairwise, shares).empty and (pairwise[shares].sum(axis=1) - 1).abs().max() < 1e-9
    show(capsys, "table_mirror_pairwise", pairwise, ["system", "baseline", *shares])
    sheet = pd.read_csv(paper_smoke / "mirror" / "human_eval" / "sheet.csv")
    assert len(sheet) == len(mirrors) * len(baselines) * len(pd.read_parquet(paper_smoke / "mirror" / "data" / "test.parquet"))
    mmi = json.loads((paper_smoke / "mirror" / "runs" / "seq2seq_attn+mmi" / "gt" / "info.json").read_text())
    assert mmi["mmi"]["n"] == PAPER["mirror"]["mmi"]["n"] and mmi["init_embeddings"]


@pytest.mark.shared
@pytest.mark.slow
def test_the_claims_with_one_seed(paper_smoke: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every configured claim has a row per (comparison, metric) with a verdict; with one seed, per-context metrics
    get an interval (contexts resampled) and run-level ones (ppl) none."""
    frame = pd.read_csv(paper_smoke / "claims.csv")
    claims = PAPER["claims"]["list"]
    assert frame["claim"].drop_duplicates().tolist() == [c["id"] for c in claims]
    assert len(frame) == sum(len(c["comparisons"]) * len(c["metrics"]) for c in claims)
    assert set(frame["verdict"]) <= {"holds", "fails", "inconclusive"} and frame["seeds_better"].eq(1).all()
    assert frame.loc[frame["metric"] != "ppl", "tested"].all() and not frame.loc[frame["metric"] == "ppl", "tested"].any()
    show(capsys, "claims", frame, ["claim", "better", "worse", "metric", "estimate", "lo", "hi", "verdict"])
    assert "**" in (paper_smoke / "claims.md").read_text() and (paper_smoke / "report" / "claims.html").is_file()


@pytest.mark.shared
@pytest.mark.slow
def test_every_stage_ran_at_the_papers_settings(paper_smoke: Path) -> None:
    """100 hypotheses per context in every shard, the nine settings, every configured model trained from the
    stand-in word vectors, the evaluator on the human judgements, and the report."""
    manifest = json.loads((paper_smoke / "teacher" / "hypotheses" / "manifest.json").read_text())
    assert manifest["hypotheses_per_pair"] == 100 and manifest["pairs"] > 0
    for shard in sorted((paper_smoke / "teacher" / "hypotheses").glob("shard*.parquet")):
        counts = pq.read_table(shard, columns=["pair_id"]).column("pair_id").value_counts()
        assert {c["counts"] for c in counts.to_pylist()} == {100}, shard
    assert sorted(p.stem for p in (paper_smoke / "data" / "settings").glob("*.parquet")) == sorted(PAPER["settings"]["names"])
    runs = {(r["model"], r["data"]) for t in ("table1", "table2") for r in PAPER["tables"][t] if r["model"] != "teacher"}
    assert {"hred_xl", "vhred_lgm100", "vhred_mbow", "hred_tokkd"} <= {m for m, _ in runs}
    for model, data in sorted(runs):
        info = json.loads((paper_smoke / "runs" / model / data / "info.json").read_text())
        assert info["steps"] > 0, (model, data)
        if model != "hred_tokkd":  # tok-KD starts from the teacher's embeddings (the authors' PCA)
            assert info["init_embeddings"], (model, data)
    vectors = json.loads((paper_smoke / "data" / "word_vectors" / "init.json").read_text())
    assert vectors["with_vector"] > 0
    heldout = json.loads((paper_smoke / "reval" / "heldout.json").read_text())
    assert heldout["heldout"]["n"] > 0 and math.isfinite(heldout["heldout"]["pearson"])
    assert heldout["judgements"] and (paper_smoke / "reval" / "model").is_dir()
    assert (paper_smoke / "report.zip").stat().st_size > 0


def test_the_paper_smoke_plans_every_stage(tmp_path: Path) -> None:
    """The override on top of config/config.yaml validates and plans `rule all` (fast; the build is below). Its
    local stand-ins must exist first: the configuration check refuses paths that do not."""
    import subprocess
    import sys

    from conftest import run_snakemake

    subprocess.run([sys.executable, str(OVERRIDE_PATH.parent / "standins.py")], check=True, cwd=REPO, capture_output=True)
    text = run_snakemake("-n", "--configfile", str(OVERRIDE_PATH), "--config", f"root={tmp_path / 'r'}").stdout
    for rule in ("teacher", "hypotheses_shard", "train_model", "train_triples", "train_backward", "decode_mmi",
                 "reval_train", "table1", "table2", "table4", "table5", "table8", "table_mirror", "human_eval_sheet", "claims"):
        assert f"rule {rule}:" in text, rule
    assert text.count("rule hypotheses_shard:") == OVERRIDE["teacher"]["shards"]
