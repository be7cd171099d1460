"""Nothing stale, nothing silent: resume by content, degenerate data refused, one configuration per root,
outputs readable by colleagues, every error naming its culprit, and the workflow running its own library."""

from __future__ import annotations

import errno
import logging
import multiprocessing
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from conftest import REPO, SNAKEMAKE, dialogue, run_snakemake, write_corpus
from teacher_helpers import make_data

from multiref.data.preprocess import PreprocessConfig, preprocess
from multiref.data.settings import write_setting
from multiref.errors import ConfigError, CorpusError, MultirefError, OutputError
from multiref.io import atomic_dir, atomic_path, content_digest, current_umask, write_json, write_parquet
from multiref.models.run import train_run
from multiref.teacher.hypotheses import HYPOTHESIS_SCHEMA, gather
from multiref.workflow import RootClaimed, claim_root, step

SPLITS = ("train", "dev", "test")
SPEC = {"kind": "hred", "embedding_dim": 8, "floor_dim": 3, "hidden": 12, "dropout": 0.0}
TRAIN = {"device": "cpu", "batch_size": 16, "eval_batch_size": 32, "lr": 1e-3, "max_grad_norm": 1.0, "decay": 0.75,
         "patience": 3, "validate_every": 10, "min_lr": 1e-7, "seed": 3, "keep": "last", "log_every": 5,
         "epochs": 1, "example_budget": False}


# ---------------------------------------------------------------------------------------------------------------
# 1. Resume by content


def write_hypotheses(train: Path, folder: Path, n: int, texts: dict[tuple[int, int], str] | None = None) -> Path:
    """One shard of ``n`` hypotheses per training pair and its gather manifest."""
    pair_ids = pq.read_table(train, columns=["pair_id"]).column("pair_id").to_pylist()
    texts = texts or {}
    rows = [(p, i, texts.get((p, i), f"good morning number {i} .")) for p in pair_ids for i in range(n)]
    table = pa.table({"pair_id": [r[0] for r in rows], "hyp_index": [r[1] for r in rows], "text": [r[2] for r in rows],
                      "n_tokens": [4] * len(rows), "logprob": [-1.0] * len(rows), "finished": [True] * len(rows)},
                     schema=HYPOTHESIS_SCHEMA)
    write_parquet(table, folder / "shard0000.parquet")
    gather([folder / "shard0000.parquet"], train, n, folder / "manifest.json")
    return folder / "manifest.json"


@pytest.fixture(scope="module")
def hyp_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("reliability")
    data = make_data(root, n_dialogues=24)
    manifest = write_hypotheses(data["train"], root / "hyps", 5)
    write_setting(data["train"], "hyp5", 5, 2, root / "hyp5.parquet")
    return data | {"root": root, "manifest": manifest, "setting": root / "hyp5.parquet"}


def train_hyp(data: dict[str, Path], out: Path, work: Path) -> dict:
    return train_run("tiny", SPEC, TRAIN, data["setting"], data["train"], data["dev"], data["vocab"], data["manifest"],
                     out / "model.pt", out / "log.csv", out / "info.json", work, progress=False)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=False)["state_dict"]


def test_a_changed_hypothesis_of_the_same_size_retrains_and_unchanged_inputs_resume(
    hyp_data: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The stale-resume case: a finished checkpoint in work/ must not be returned for other data."""
    work = tmp_path / "work"
    train_hyp(hyp_data, tmp_path / "first", work)
    first = weights(tmp_path / "first" / "model.pt")
    with caplog.at_level(logging.INFO, logger="multiref"):  # unchanged inputs: resumed, bitwise the same
        train_hyp(hyp_data, tmp_path / "again", work)
    assert "resuming from the checkpoint" in caplog.text
    again = weights(tmp_path / "again" / "model.pt")
    assert all(torch.equal(first[k], again[k]) for k in first)
    # one hypothesis text changed in place, same number of characters (and of bytes): the shard differs only there
    shard = hyp_data["manifest"].parent / "shard0000.parquet"
    table = pq.read_table(shard)
    texts = table.column("text").to_pylist()
    before = texts[0]
    texts[0] = before.replace("good", "fine")
    assert len(texts[0]) == len(before) and texts[0] != before
    changed = dict(hyp_data)
    changed["manifest"] = write_hypotheses(hyp_data["train"], tmp_path / "hyps", 5, {(table.column("pair_id")[0].as_py(), 0): texts[0]})
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="multiref"):
        train_hyp(changed, tmp_path / "changed", work)
    assert "ignoring checkpoint" in caplog.text and "resuming from the checkpoint" not in caplog.text
    retrained = weights(tmp_path / "changed" / "model.pt")
    assert any(not torch.equal(first[k], retrained[k]) for k in first)


def test_content_digest_sees_same_size_changes_in_files_and_folders(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.bin").write_bytes(b"abcd")
    (tmp_path / "f.txt").write_text("abcd")
    before = content_digest({"file": tmp_path / "f.txt", "folder": tmp_path / "d", "hub": "gpt2-medium", "none": None,
                             "list": [tmp_path / "f.txt"]})
    assert before["hub"] == "name:gpt2-medium" and before["none"] is None and before["list"] == [before["file"]]
    (tmp_path / "f.txt").write_text("abce")
    (tmp_path / "d" / "a.bin").write_bytes(b"abce")
    after = content_digest({"file": tmp_path / "f.txt", "folder": tmp_path / "d"})
    assert after["file"] != before["file"] and after["folder"] != before["folder"]


def test_a_truncated_checkpoint_is_moved_aside_and_the_run_starts_afresh(
    hyp_data: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "checkpoint.pt").write_bytes(b"PK\x03\x04 truncated")
    with caplog.at_level(logging.WARNING, logger="multiref"):
        info = train_hyp(hyp_data, tmp_path / "run", work)
    assert info["steps"] > 0
    aside = [p for p in work.iterdir() if p.name.startswith("checkpoint.pt.corrupt-")]
    assert len(aside) == 1 and f"{work / 'checkpoint.pt'} cannot be read" in caplog.text and str(aside[0]) in caplog.text


# ---------------------------------------------------------------------------------------------------------------
# 2. Degenerate data


def test_a_corpus_whose_training_text_has_no_word_is_refused(tmp_path: Path) -> None:
    """Utterances that normalise to nothing (only characters the authors' cleaning removes) leave a vocabulary of
    the special tokens alone."""
    folder = write_corpus(tmp_path / "corpus", [dialogue(["-- ; --", ": ; :"]) for _ in range(20)])
    out = tmp_path / "data"
    with pytest.raises(CorpusError, match=r"the train split's 32 utterances hold no word: the vocabulary would be its 9 special tokens"):
        preprocess(folder, out / "s.parquet", out / "v.parquet", {s: out / f"{s}.parquet" for s in SPLITS}, out / "m.json",
                   PreprocessConfig(duplicate_threshold=1.0), progress=False)
    assert not out.exists()


def test_a_setting_without_examples_is_refused(hyp_data: dict[str, Path], tmp_path: Path) -> None:
    empty = tmp_path / "gt.parquet"
    write_parquet(pq.read_table(hyp_data["setting"]).slice(0, 0), empty, {"setting": "gt", "k": 0, "epochs": 1, "paper_max_steps": 1})
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=rf"{empty}: the data setting has 0 training examples"):
        train_run("tiny", SPEC, TRAIN, empty, hyp_data["train"], hyp_data["dev"], hyp_data["vocab"], None,
                  out / "model.pt", out / "log.csv", out / "info.json", out / "work", progress=False)
    assert not (out / "model.pt").exists() and not (out / "info.json").exists()


def test_a_schedule_without_a_step_is_refused(hyp_data: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(MultirefError, match=r"the schedule allows no optimiser step: lr 1e-07, min_lr 1e-07"):
        train_run("tiny", SPEC, {**TRAIN, "lr": 1e-7}, hyp_data["setting"], hyp_data["train"], hyp_data["dev"], hyp_data["vocab"],
                  hyp_data["manifest"], out / "model.pt", out / "log.csv", out / "info.json", out / "work", progress=False)
    assert not (out / "model.pt").exists()


# ---------------------------------------------------------------------------------------------------------------
# 3. One configuration per root


def test_of_two_configurations_claiming_a_new_root_together_one_is_refused(tmp_path: Path) -> None:
    for attempt in range(20):
        stamp = tmp_path / f"root{attempt}" / ".multiref-run"
        barrier = threading.Barrier(2)
        outcome: dict[str, str] = {}

        def claim(name: str, stamp: Path = stamp, barrier: threading.Barrier = barrier, outcome: dict = outcome) -> None:
            barrier.wait()
            try:
                claim_root(stamp, name)
                outcome[name] = "claimed"
            except RootClaimed as exc:
                outcome[name] = str(exc)

        threads = [threading.Thread(target=claim, args=(n,)) for n in ("paper", "demo")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(v == "claimed" for v in outcome.values()) == [False, True], outcome
        winner = next(n for n, v in outcome.items() if v == "claimed")
        loser = next(n for n in outcome if n != winner)
        assert stamp.read_text() == winner + "\n"
        assert f"holds outputs of configuration '{winner}', not '{loser}'" in outcome[loser]
    claim_root(stamp, winner)  # the same configuration again: fine


def _claim_in_process(stamp: str, name: str, barrier: multiprocessing.synchronize.Barrier, queue: multiprocessing.Queue) -> None:  # type: ignore[name-defined]
    barrier.wait()
    try:
        claim_root(Path(stamp), name)
        queue.put((name, "claimed"))
    except RootClaimed:
        queue.put((name, "refused"))


def test_two_processes_claiming_one_root_one_is_refused(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    stamp = str(tmp_path / "root" / ".multiref-run")
    procs = [ctx.Process(target=_claim_in_process, args=(stamp, n, barrier, queue)) for n in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    results = dict(queue.get(timeout=5) for _ in procs)
    assert sorted(results.values()) == ["claimed", "refused"]


# ---------------------------------------------------------------------------------------------------------------
# 4. Outputs honour the umask


@pytest.mark.parametrize(("umask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750), (0o077, 0o600, 0o700)])
def test_outputs_get_the_mode_of_the_umask(tmp_path: Path, umask: int, file_mode: int, dir_mode: int) -> None:
    old = os.umask(umask)
    try:
        assert current_umask() == umask
        write_json({"a": 1}, tmp_path / "out.json")
        with atomic_dir(tmp_path / "model") as folder:
            (folder / "weights.bin").write_bytes(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "out.json").stat().st_mode & 0o777 == file_mode
    assert (tmp_path / "model").stat().st_mode & 0o777 == dir_mode


# ---------------------------------------------------------------------------------------------------------------
# 5. Every error names its culprit


def test_a_full_disk_names_the_output(tmp_path: Path) -> None:
    target = tmp_path / "table.csv"
    with (
        pytest.raises(OutputError, match=rf"cannot write {target}: no space left on the device"),
        atomic_path(target) as tmp,
    ):
        tmp.write_text("partial")
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
    assert list(tmp_path.iterdir()) == []


def test_an_unexpected_failure_puts_its_traceback_and_one_line_in_the_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "rule.log"
    with pytest.raises(SystemExit) as stop, step(str(log)):
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed (No space left on device)")
    assert stop.value.code == 1
    text = log.read_text()
    line = "multiref error: no space left on the device (RuntimeError: PytorchStreamWriter failed writing file data/0"
    assert "Traceback (most recent call last)" in text and line in text and f"(traceback in {log})" in text
    assert line in capsys.readouterr().err
    assert "multiref library: " + str(REPO / "src" / "multiref") in text


def run_dir(tmp_path: Path, metrics: dict) -> Path:
    test = tmp_path / "run" / "test"
    test.mkdir(parents=True)
    write_json({"ppl_authors": 10.0, "ppl_token": 9.0}, test / "perplexity.json")
    write_json(metrics, test / "metrics.json")
    pq.write_table(pa.table({"pair_id": [1], "bleu2": [0.1], "extrema": [0.2], "average": [0.3], "greedy": [0.4]}), test / "per_pair.parquet")
    return test


GOOD = {"bleu2": 0.1, "extrema": 0.2, "average": 0.3, "greedy": 0.4, "distinct1": 3, "distinct2": 4, "pairs": 1}


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ({k: v for k, v in GOOD.items() if k != "greedy"}, r"metrics.json: field 'greedy' is missing"),
        ({**GOOD, "bleu2": "0.1"}, r"metrics.json: field 'bleu2' is '0.1', not a number"),
        ([1, 2], r"metrics.json: expected a JSON object, found a list"),
    ],
    ids=["missing-field", "string", "not-an-object"],
)
def test_a_bad_stage_file_names_the_file_and_the_field(tmp_path: Path, metrics: object, message: str) -> None:
    from multiref.tables.results import read_test

    test = run_dir(tmp_path, metrics)  # type: ignore[arg-type]
    with pytest.raises(MultirefError, match=message):
        read_test(test)


def test_a_per_pair_file_without_a_column_is_named(tmp_path: Path) -> None:
    from multiref.tables.results import read_test

    test = run_dir(tmp_path, GOOD)
    pq.write_table(pa.table({"pair_id": [1], "bleu2": [0.1]}), test / "per_pair.parquet")
    with pytest.raises(MultirefError, match=r"per_pair.parquet: lacks the column\(s\) \['extrema', 'average', 'greedy'\]"):
        read_test(test)


@pytest.fixture(scope="module")
def tiny_evaluator(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from reval.test_reval import tiny_encoder_dir  # the tiny encoder of the Reval tests (tests/ is on sys.path)

    from multiref.reval import RevalConfig, build_reval, save_reval

    folder = tmp_path_factory.mktemp("evaluator")
    encoder = tiny_encoder_dir(folder / "encoder")
    model, tokenizer = build_reval(RevalConfig(encoder=str(encoder), device="cpu"))
    return save_reval(model, tokenizer, folder / "model")


@pytest.mark.parametrize("name", ["reval_head.safetensors", "model.safetensors"])
def test_a_truncated_evaluator_file_is_named(tiny_evaluator: Path, tmp_path: Path, name: str) -> None:
    from multiref.reval import load_reval

    damaged = tmp_path / "model"
    shutil.copytree(tiny_evaluator, damaged)
    data = (damaged / name).read_bytes()
    (damaged / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(MultirefError, match=rf"{damaged}.*cannot load the evaluator's .*\(truncated or corrupt\?"):
        load_reval(damaged, device="cpu")


# ---------------------------------------------------------------------------------------------------------------
# 6. The workflow runs its own library


def test_job_scripts_import_the_library_of_the_workflow_being_run(tmp_path: Path) -> None:
    """A second checkout run with this checkout's virtual environment (whose editable install points here) must
    run its own src/: Snakemake copies the main process's sys.path behind the install's, so the scripts used to
    find this checkout's multiref first."""
    other = tmp_path / "other"
    other.mkdir()  # a checkout: the workflow, the library, the configuration
    for part in ("workflow", "src", "config", "profiles", "envs"):
        (shutil.copytree if (REPO / part).is_dir() else shutil.copyfile)(REPO / part, other / part)
    root = tmp_path / "r"
    proc = subprocess.run([*SNAKEMAKE, "--cores", "1", "--configfile", "config/demo.yaml", "--config", f"root={root}", "--",
                           str(root / "data/synthetic/distribution.parquet")], cwd=other, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert f"multiref library: {other / 'src' / 'multiref'}" in (root / "logs" / "synthetic_corpus.log").read_text()


# ---------------------------------------------------------------------------------------------------------------
# Configuration constraints between keys: before any job


def base_config() -> dict:
    import yaml
    from snakemake.utils import validate

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    return config


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["data"]["split"].update(train_end=0.9, dev_end=0.8), r"data.split: train_end \(0.9\) < dev_end \(0.8\) < 1"),
        (lambda c: c["data"]["split"].update(dev_end=1.0), r"data.split: train_end \(0.8\) < dev_end \(1.0\) < 1"),
        (lambda c: c["teacher"].update(init="scratch") or c["teacher"]["scratch"].update(n_embd=30, n_head=4),
         r"teacher.scratch: n_embd \(30\) must be a multiple of n_head \(4\)"),
        (lambda c: c["teacher"].update(init="scratch") or c["teacher"]["scratch"].update(n_positions=64) or c["teacher"]["sampling"].update(max_new_tokens=63),
         r"teacher.sampling.max_new_tokens \(63\) leaves 1 of teacher.scratch.n_positions \(64\)"),
        (lambda c: c["teacher"].update(model="./no/such/gpt2"), r"teacher.model: ./no/such/gpt2 is not a folder"),
        (lambda c: c["train"].update(min_lr=0.01), r"train: lr \(0.001\) must exceed min_lr \(0.01\)"),
        (lambda c: c["mirror"]["train"].update(lr=1e-8), r"mirror.train: lr \(1e-08\) must exceed min_lr"),
        (lambda c: c["reval"]["train"].update(min_lr=1.0), r"reval.train: lr \(3e-06\) must exceed min_lr \(1.0\)"),
        (lambda c: c["reval"]["split"].update(dev_share=0.5, test_share=0.5), r"reval.split: dev_share \(0.5\) \+ test_share \(0.5\) must be below 1"),
        (lambda c: c["reval"]["judgements"].update(source="synthetic"), r"reval.judgements.source 'synthetic' .* needs corpus.source synthetic"),
        (lambda c: c["reval"]["judgements"].update(source="local"), r"reval.judgements.source is 'local' but reval.judgements.path is empty"),
        (lambda c: c["reval"]["judgements"].update(source="local", path="/no/such.json"), r"reval.judgements.path: /no/such.json is not a file"),
        (lambda c: c["corpus"].update(archive="/no/such.zip"), r"corpus.archive: /no/such.zip is not a file"),
        (lambda c: c["eval"].update(word_vectors="/no/vectors.bin"), r"eval.word_vectors: /no/vectors.bin is not a file"),
        (lambda c: c["models"]["mirror"].update(hidden=999), r"models.mirror: hidden must be even"),
        (lambda c: c["models"]["seq2seq_attn"].update(bidirectional_encoder=True, hidden=7), r"models.seq2seq_attn: a bidirectional encoder needs an even hidden size"),
        (lambda c: c["models"]["vhred_gmm5"].update(components=1), r"models.vhred_gmm5: a mixture prior needs at least 2 components, got 1"),
        (lambda c: c["models"]["vhred_mbow"].update(bow=False), r"models.vhred_mbow: VHRED-MBoW needs its bag-of-words network"),
        (lambda c: c["tables"]["synthetic"].update(equal_steps=[{"model": "hred", "data": "gt", "like": "hyp7"}]),
         r"tables.synthetic.equal_steps: data setting 'hyp7' is not in settings.names"),
        (lambda c: c["tables"]["synthetic"].update(equal_steps=[{"model": "gru", "data": "gt", "like": "hyp5"}]),
         r"tables.synthetic.equal_steps: unknown model 'gru'"),
        (lambda c: c["models"]["vhred_mbow"].update(references=0), r"models.vhred_mbow: references must be at least 1"),
    ],
    ids=lambda v: "" if callable(v) else v.split(":")[0].replace("\\", ""),
)
def test_cross_key_constraints_are_named(change, message: str) -> None:
    from multiref.config import check, check_models, problems

    config = base_config()
    assert problems(config, models=True) == []
    change(config)
    with pytest.raises(ConfigError, match=message):
        check(config) if problems(config) else check_models(config)


def test_a_cross_key_error_stops_the_dry_run_before_any_job(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"root: {tmp_path / 'r'}\ndata:\n  split: {{train_end: 0.9, dev_end: 0.8}}\nreval:\n  split: {{dev_share: 0.6, test_share: 0.6}}\n")
    proc = run_snakemake("-n", "--configfile", str(bad), check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "data.split: train_end (0.9)" in text and "reval.split: dev_share (0.6)" in text
    assert not (tmp_path / "r").exists()


def test_a_model_that_cannot_be_built_stops_the_run_before_any_job(tmp_path: Path) -> None:
    """Model entries are built (on the meta device) when the run starts, before its first job."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"root: {tmp_path / 'r'}\nmodels:\n  mirror: {{hidden: 999}}\n")
    proc = run_snakemake("--cores", "1", "--configfile", "config/demo.yaml", str(bad), "--", str(tmp_path / "r" / "table8.csv"), check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "configuration: models.mirror: hidden must be even" in text
    assert not (tmp_path / "r" / "data").exists()
