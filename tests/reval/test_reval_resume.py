"""Reval training survives kills and preemption: an interrupted run (in pre-training, in the supervised phase,
or both) resumed from its checkpoint saves bitwise the model of an uninterrupted run; SIGTERM saves the state
and ends the rule's process with 143; a checkpoint of another configuration or data is ignored with a warning."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import REPO
from test_reval import item, tiny_encoder_dir, write

from multiref import reval as R
from multiref.errors import ConfigError
from multiref.reval import jobs as S

WEIGHT_FILES = ("model.safetensors", R.HEAD_FILE)


@pytest.fixture(autouse=True)
def one_thread(monkeypatch: pytest.MonkeyPatch):
    """One thread here and in the subprocesses (OMP_NUM_THREADS=1 + torch.set_num_threads(1)), so that their
    results can be compared bitwise; no fault injection unless a test asks for it."""
    monkeypatch.delenv("MULTIREF_FAULT", raising=False)
    monkeypatch.delenv("MULTIREF_FAULT_MARKERS", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def frames() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Train (12 responses: 3 batches of 4), dev (4) and pre-training examples (8: 2 batches of 4)."""
    train = pd.DataFrame({
        "context": [["hello there ."], ["how are you ?"], ["hi ."], ["a b c"]] * 3,
        "response": ["hi .", "fine thanks .", "bad", "good", "d e", "f g", "hello", "you ?", "a", "b", "c", "h"],
        "score": [5.0, 4.5, 1.0, 2.0, 3.0, 1.5, 4.0, 2.5, 1.0, 5.0, 3.5, 2.0],
    })
    dev = pd.DataFrame({"context": [["hi ."], ["how are you ?"], ["a b c"], ["hello there ."]],
                        "response": ["good", "fine thanks .", "d e f", "bad"], "score": [4.0, 5.0, 1.0, 2.0]})
    pairs = pd.DataFrame({"context": [["hello there ."], ["how are you ?"], ["hi ."], ["a b c"]],
                          "response": ["hi .", "fine thanks .", "good", "d e f"]})
    return train, dev, R.next_utterance_examples(pairs, seed=0)


def configs(encoder: Path, freeze: bool = False, lr: float = 1e-2) -> tuple[R.RevalConfig, R.PretrainConfig]:
    # dropout on (the torch RNG matters), validation every 2 steps, a plateau that decays the lr, the best model kept
    cfg = R.RevalConfig(encoder=str(encoder), lr=lr, epochs=3, batch_size=4, max_length=64, validate_every=2,
                        plateau_mode="max", plateau_patience=0, plateau_factor=0.5, keep="best", dropout=0.2,
                        freeze_encoder=freeze, device="cpu")
    return cfg, R.PretrainConfig(epochs=2, lr=1e-2, batch_size=4, seed=3)


def train(tmp_path: Path, name: str, encoder: Path, freeze: bool = False, **kw: Any) -> dict[str, Any]:
    cfg, pre = configs(encoder, freeze)
    tr, dev, ex = frames()
    return R.train_reval(tr, dev, cfg, tmp_path / name, pretrain=pre, pretrain_examples=ex, **kw)


def without_seconds(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: without_seconds(v) for k, v in obj.items() if k not in ("seconds", "out_dir")}
    if isinstance(obj, list):
        return [without_seconds(v) for v in obj]
    return obj


def same(a: Any, b: Any) -> bool:
    """Equal, NaN included (the JSON text of both)."""
    return json.dumps(without_seconds(a), sort_keys=True) == json.dumps(without_seconds(b), sort_keys=True)


def same_weights(a: Path, b: Path) -> bool:
    return all((a / f).read_bytes() == (b / f).read_bytes() for f in WEIGHT_FILES)


@pytest.mark.parametrize(
    ("stops", "freeze"),
    [([3], False), ([7], False), ([3, 10], False), ([2, 9], True)],
    ids=["pretrain", "train", "both", "both-frozen-encoder"],
)
def test_an_interrupted_training_resumes_to_the_same_model(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, stops: list[int], freeze: bool
) -> None:
    """4 pre-training steps, then 9 supervised steps (3 epochs of 3); each stop is after that many steps of both
    phases together, mid-epoch (3: pre-training epoch 2; 7, 9, 10: supervised epochs 1 to 3)."""
    encoder = tiny_encoder_dir(tmp_path / "enc")
    plain = train(tmp_path, "plain", encoder, freeze)  # no checkpoint at all
    whole = train(tmp_path, "whole", encoder, freeze, checkpoint=tmp_path / "whole.pt", checkpoint_seconds=1e-9)
    assert same(plain, whole) and same_weights(tmp_path / "plain", tmp_path / "whole")  # saving changes nothing
    assert whole["pretrain"]["steps"] == 4 and whole["steps"] == 9 and whole["history"]
    assert whole["final_lr"] < 1e-2  # the plateau rule acted

    ckpt = tmp_path / "work" / "checkpoint.pt"
    phases = []
    for stop in stops:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="multiref"):
            stopped = train(tmp_path, "resumed", encoder, freeze, checkpoint=ckpt, stop_after=stop)
        assert stopped == {"stopped": "interrupted", "checkpoint": str(ckpt), "total_steps": stop}
        assert ckpt.is_file() and not (tmp_path / "resumed").exists()
        phases.append(torch.load(ckpt, weights_only=False)["phase"])
    assert phases == ["pretrain" if s <= 4 else "train" for s in stops]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="multiref"):
        resumed = train(tmp_path, "resumed", encoder, freeze, checkpoint=ckpt)
    assert f"resuming from the checkpoint {ckpt} (phase {phases[-1]}," in caplog.text
    assert same(resumed, whole)
    assert same_weights(tmp_path / "resumed", tmp_path / "whole")
    assert ckpt.is_file()  # kept: a forced rerun resumes the finished state at once
    again = train(tmp_path, "again", encoder, freeze, checkpoint=ckpt, stop_after=1)
    assert "stopped" not in again and same(again, whole) and same_weights(tmp_path / "again", tmp_path / "whole")


def test_a_checkpoint_of_another_configuration_or_data_is_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    encoder = tiny_encoder_dir(tmp_path / "enc")
    tr, dev, ex = frames()
    cfg, pre = configs(encoder)
    ckpt = tmp_path / "checkpoint.pt"
    assert R.train_reval(tr, dev, cfg, tmp_path / "m", pretrain=pre, pretrain_examples=ex, checkpoint=ckpt,
                         stop_after=6)["stopped"] == "interrupted"
    other, _ = configs(encoder, lr=5e-3)
    fresh = R.train_reval(tr, dev, other, tmp_path / "fresh", pretrain=pre, pretrain_examples=ex)
    with caplog.at_level(logging.INFO, logger="multiref"):
        ignored = R.train_reval(tr, dev, other, tmp_path / "m", pretrain=pre, pretrain_examples=ex, checkpoint=ckpt)
    assert f"ignoring checkpoint {ckpt}: it was made with another configuration, model or input data" in caplog.text
    assert "resuming" not in caplog.text
    assert same(ignored, fresh) and same_weights(tmp_path / "m", tmp_path / "fresh")
    # other data (one score changed), same configuration: ignored as well
    R.train_reval(tr, dev, cfg, tmp_path / "m", pretrain=pre, pretrain_examples=ex, checkpoint=ckpt, stop_after=6)
    caplog.clear()
    changed = tr.assign(score=[1.0, *tr["score"][1:]])
    with caplog.at_level(logging.INFO, logger="multiref"):
        R.train_reval(changed, dev, cfg, tmp_path / "m", pretrain=pre, pretrain_examples=ex, checkpoint=ckpt,
                      stop_after=1)
    assert "ignoring checkpoint" in caplog.text
    # an unreadable file is ignored too; stop_after needs a checkpoint
    ckpt.write_bytes(b"not a checkpoint")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="multiref"):
        R.train_reval(tr, dev, cfg, tmp_path / "m", pretrain=pre, pretrain_examples=ex, checkpoint=ckpt, stop_after=1)
    assert "cannot be read" in caplog.text
    with pytest.raises(ConfigError, match="stop_after needs a checkpoint"):
        R.train_reval(tr, dev, cfg, tmp_path / "m", stop_after=1)


STAGE_SCRIPT = """
import json, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
from multiref.reval.jobs import train_stage
from multiref.workflow import step
a = json.loads(sys.argv[1])
with step(a["log"]):
    train_stage(Path(a["judgements"]), Path(a["pairs"]), a["section"], Path(a["model"]), Path(a["heldout"]),
                Path(a["per_item"]), device="cpu", progress=False, work_dir=Path(a["work"]),
                checkpoint_seconds=a["checkpoint_seconds"])
"""


def stage_inputs(tmp_path: Path, encoder: Path) -> tuple[Path, Path, dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    turns = ["hello there .", "how are you ?", "hi .", "a b c", "d e f"]
    items = [item(i, context=f"{turns[i % 5]}\n{turns[(i + 1) % 5]}", scores=[1 + i % 5, 1 + i % 3] * 2)
             for i in range(25)]
    for i, it in enumerate(items):
        it["response"] = ["good", "bad", "fine thanks .", "hi .", "a b"][i % 5 - (i // 5) % 2]
    pairs = pd.DataFrame({"pair_id": np.arange(6, dtype=np.int64),
                          "context": [["hello there ."], ["how are you ?"], ["hi ."]] * 2,
                          "response": ["hi .", "fine thanks .", "good", "bad", "hello there .", "a"]})
    pq.write_table(pa.Table.from_pandas(pairs), tmp_path / "pairs.parquet")
    section = {"encoder": str(encoder), "judgements": {"score": "appropriateness"},
               "split": {"by": "context", "dev_share": 0.2, "test_share": 0.2, "seed": 0},
               "pretrain": {"epochs": 1, "max_pairs": 6, "seed": 0, "lr": 1e-2, "batch_size": 4},
               "train": {"lr": 1e-2, "epochs": 2, "batch_size": 4, "max_length": 64, "validate_every": 2}}
    return write(tmp_path, items), tmp_path / "pairs.parquet", section


def test_sigterm_saves_the_state_exits_143_and_a_rerun_completes_as_uninterrupted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    encoder = tiny_encoder_dir(tmp_path / "enc")
    judgements, pairs, section = stage_inputs(tmp_path, encoder)

    def paths(name: str) -> dict[str, str]:
        d = tmp_path / name
        return {"model": str(d / "model"), "heldout": str(d / "heldout.json"), "per_item": str(d / "heldout.parquet"),
                "work": str(d / "work"), "log": str(tmp_path / f"{name}.log")}

    def stage(p: dict[str, str]) -> dict[str, Any]:
        return S.train_stage(judgements, pairs, section, Path(p["model"]), Path(p["heldout"]), Path(p["per_item"]),
                             device="cpu", progress=False, work_dir=Path(p["work"]), checkpoint_seconds=1e-9)

    whole = paths("whole")
    stage(whole)

    # a checkpoint after every step; the process waits after the first one until it gets SIGTERM
    run = paths("run")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MULTIREF_FAULT": "wait", "MULTIREF_FAULT_WAIT": "60",
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    args = {"judgements": str(judgements), "pairs": str(pairs), "section": section, "checkpoint_seconds": 1e-9, **run}
    proc = subprocess.Popen([sys.executable, "-c", STAGE_SCRIPT, json.dumps(args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = Path(run["log"])
    deadline = time.monotonic() + 60
    while not (log.is_file() and "MULTIREF_FAULT=wait" in log.read_text()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the subprocess never reached its first checkpoint"
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM == 143, (out, err)
    assert "stopped by SIGTERM" in err and "received SIGTERM" in log.read_text()
    ckpt = Path(run["work"]) / S.CHECKPOINT_FILE
    saved = torch.load(ckpt, weights_only=False)
    assert saved["phase"] == "pretrain" and saved["total_steps"] == 1
    assert not Path(run["model"]).exists() and not Path(run["heldout"]).exists()

    with caplog.at_level(logging.INFO, logger="multiref"):
        stage(run)
    assert f"resuming from the checkpoint {ckpt} (phase pretrain, epoch 1, batch 1, step 1" in caplog.text
    first, second = (json.loads(Path(p["heldout"]).read_text()) for p in (whole, run))
    assert first["training"]["steps"] == 8 and first["pretrain"]["steps"] == 3
    assert same(first, second)
    assert same_weights(Path(whole["model"]), Path(run["model"]))
    assert Path(whole["per_item"]).read_bytes() == Path(run["per_item"]).read_bytes()
