"""Bad input of the workflow as a whole (the Snakemake DAG and its config, the thin scripts of
workflow/scripts, the atomic writers of multiref.io): an unknown model or data name and a wrong config
type stop the dry run before any job, a GPU requested but absent stops a script with one error line, and an
unwritable output directory (a file where a folder should be) stops the atomic writers, the stage writers
and the writers of whole folders.

Part of the bad-input sweep (shared inputs in tests/bad_input_helpers.py): each case asserts the error
type (or exit status), that the message names the culprit, and that no output is left behind."""

from __future__ import annotations

import logging
import re
import runpy
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pytest
import torch
import yaml
from bad_input_helpers import NO_GPU, build_data, files_under
from conftest import REPO, run_snakemake

from multiref.data.preprocess import PreprocessConfig, preprocess
from multiref.data.settings import write_setting
from multiref.errors import OutputError
from multiref.io import write_json, write_parquet, write_text


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Corpus archive, preprocessed data (vocabulary, pairs) and small word vectors, built once per module."""
    return build_data(tmp_path_factory)


# ---------------------------------------------------------------------------------------------------------------
# Unknown model or data name


def _dry_run(tmp_path: Path, overlay: dict[str, Any], *targets: str) -> str:
    root = tmp_path / "root"
    path = tmp_path / "overlay.yaml"
    path.write_text(yaml.safe_dump(overlay | {"root": str(root)}))
    tail = ["--", *[str(root / t) for t in targets]] if targets else []
    proc = run_snakemake("-n", "--configfile", "config/demo.yaml", str(path), *tail, check=False)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert not root.exists(), "a refused configuration must not create its root"
    return proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("overlay", "targets", "message"),
    [
        ({}, ["runs/transformer/gt/model.pt"], "unknown model 'transformer'; configured models: hred, "),
        ({}, ["runs/hred/hyp7/model.pt"], "data/settings/hyp7.parquet: data setting 'hyp7' has no epoch budget"),
        ({}, ["runs/hred/hyp100/model.pt"], ("data/settings/hyp100.parquet: 'hyp100' needs 100 hypotheses per pair but "
                                            "teacher.sampling.n is 20")),
        ({"runs": {"extra": ["transformer/gt"]}}, [], "runs: unknown model 'transformer'"),
        ({"settings": {"names": ["gt", "gold"]}}, [], "'gold' does not match"),
        ({"models": {"gpt": {"kind": "transformer"}}}, [], "'transformer' is not one of"),
    ],
    ids=["target-model", "target-setting", "target-setting-k", "runs-extra", "settings-names", "model-kind"],
)
def test_unknown_model_or_data_name_stops_the_dry_run(tmp_path: Path, overlay: dict, targets: list[str], message: str) -> None:
    assert message in _dry_run(tmp_path, overlay, *targets)


# ---------------------------------------------------------------------------------------------------------------
# Wrong config type


@pytest.mark.parametrize(
    ("overlay", "messages"),
    [
        ({"train": {"batch_size": "big"}}, ["'big' is not of type 'integer'", "['train']['batch_size']"]),
        ({"models": {"hred": {"kind": "hred", "hidden": "wide"}}}, ["'wide' is not of type 'integer'", "['hred']['hidden']"]),
        ({"teacher": {"device": 0}}, ["0 is not of type 'string'", "['teacher']['device']"]),
    ],
    ids=["train.batch_size", "models.hred.hidden", "teacher.device"],
)
def test_wrong_config_type_stops_the_dry_run(tmp_path: Path, overlay: dict, messages: list[str]) -> None:
    output = _dry_run(tmp_path, overlay)
    for message in messages:
        assert message in output


# ---------------------------------------------------------------------------------------------------------------
# GPU requested but absent


class _Names(dict):
    """What Snakemake hands a script (``snakemake.input`` etc.): attribute access and ``keys()``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc


@pytest.fixture
def run_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """Run a thin script of workflow/scripts as Snakemake would, with a stand-in ``snakemake`` object;
    returns its exit status, console error output and log."""
    monkeypatch.syspath_prepend(str(REPO / "workflow" / "scripts"))
    root_handlers, root_level = logging.root.handlers[:], logging.root.level
    torch.set_num_threads(1)

    def run(name: str, **parts: dict[str, Any]) -> tuple[int, str, str]:
        log = tmp_path / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        smk = SimpleNamespace(log=[str(log)], threads=1, **{k: _Names(v) for k, v in parts.items()})
        try:
            with pytest.raises(SystemExit) as info:
                runpy.run_path(str(REPO / "workflow" / "scripts" / f"{name}.py"), init_globals={"snakemake": smk})
        finally:
            logging.root.handlers[:] = root_handlers
            logging.root.setLevel(root_level)
        return info.value.code, capsys.readouterr().err, log.read_text()

    return run


def _out(tmp_path: Path, *names: str) -> dict[str, str]:
    return {name: str(tmp_path / "out" / name) for name in names}


DECODE_PARAMS = {"seed": 1, "batch_size": 2, "max_len": 5}


SCRIPTS = {
    "decode": ("train.device", lambda t: {
        "input": {"model": str(t / "model.pt"), "test": str(t / "test.parquet"), "vocab": str(t / "vocab.parquet")},
        "output": _out(t, "decode", "ppl"), "params": {"decode": DECODE_PARAMS, "device": "cuda"}}),
    "teacher_decode": ("teacher.device", lambda t: {
        "input": {"model": str(t / "teacher"), "test": str(t / "test.parquet")},
        "output": _out(t, "decode", "ppl"), "params": {"decode": DECODE_PARAMS, "device": "cuda"}}),
    "hypotheses_shard": ("teacher.device", lambda t: {
        "input": {"model": str(t / "teacher"), "train": str(t / "train.parquet")}, "wildcards": {"shard": "0"},
        "output": _out(t, "shard"), "params": {"shards": 1, "sampling": {"n": 2}, "work": str(t / "work"), "device": "cuda"}}),
    "reval_train": ("reval.device", lambda t: {
        "input": {"judgements": str(t / "judgements.json")}, "output": _out(t, "model", "heldout", "per_item"),
        "params": {"reval": {"device": "cuda"}, "work": str(t / "work"), "checkpoint_minutes": 10}}),
    "reval_score": ("reval.device", lambda t: {
        "input": {"model": str(t / "reval"), "decode": str(t / "decode.parquet"), "test": str(t / "test.parquet")},
        "output": _out(t, "scores", "summary"), "params": {"batch_size": 4, "device": "cuda", "by_component": False}}),
}


@NO_GPU
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_gpu_requested_but_absent_in_a_script(run_script, tmp_path: Path, script: str) -> None:
    setting, parts = SCRIPTS[script]
    status, console, log = run_script(script, **parts(tmp_path))
    line = f"multiref error: {setting}: 'cuda' requested but no CUDA GPU is available (set {setting} to 'auto' or 'cpu')"
    assert status == 1
    assert line in console.splitlines() and line in log
    assert "Traceback" not in console
    assert files_under(tmp_path / "out") == [] and files_under(tmp_path / "work") == []


# ---------------------------------------------------------------------------------------------------------------
# Unwritable output directory (a path whose folder is a regular file: root ignores permissions)


@pytest.mark.parametrize(
    "write",
    [
        lambda p: write_json({"a": 1}, p),
        lambda p: write_text("x", p),
        lambda p: write_parquet(pa.table({"a": [1]}), p),
    ],
    ids=["json", "text", "parquet"],
)
def test_unwritable_output_directory_in_the_atomic_writers(tmp_path: Path, write: Any) -> None:
    blocker = tmp_path / "results"
    blocker.write_text("a file where a folder should be")
    for target in (blocker / "out.x", blocker / "sub" / "out.x"):
        with pytest.raises(OutputError, match=re.escape(f"cannot write {target}: {blocker} is a file, not a folder")):
            write(target)
    folder = tmp_path / "taken"
    (folder / "out.x").mkdir(parents=True)  # the output's own name is a folder: the final rename fails
    with pytest.raises(OutputError, match=re.escape(f"cannot write {folder / 'out.x'}: Is a directory")):
        write(folder / "out.x")
    assert files_under(tmp_path) == ["results"] and blocker.read_text() == "a file where a folder should be"


def test_unwritable_output_directory_in_stage_writers(data: dict[str, Path], tmp_path: Path) -> None:
    blocker = tmp_path / "results"
    blocker.write_text("")
    with pytest.raises(OutputError, match=re.escape(f"cannot write {blocker}/data/settings/gt.parquet: {blocker} is a file")):
        write_setting(data["train"], "gt", 5, 2, blocker / "data" / "settings" / "gt.parquet")
    out = tmp_path / "data"
    with pytest.raises(OutputError, match=re.escape(f"cannot write {blocker}/sessions.parquet: {blocker} is a file")):
        preprocess(data["corpus"], blocker / "sessions.parquet", out / "vocab.parquet",
                   {s: out / f"{s}.parquet" for s in ("train", "dev", "test")}, out / "preprocess.json",
                   PreprocessConfig(duplicate_threshold=1.0), progress=False)
    assert files_under(tmp_path) == ["results"]


def test_folder_outputs_blocked_by_a_file_are_named(tmp_path: Path) -> None:
    """The writers of whole folders (the corpus extraction, saved models) name the output a file blocks."""
    from multiref.io import make_dirs

    blocker = tmp_path / "results"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError, match=rf"cannot write {re.escape(str(blocker / 'reval' / 'model'))}: {re.escape(str(blocker))} is a file, not a folder"):
        make_dirs(blocker / "reval", blocker / "reval" / "model")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]
