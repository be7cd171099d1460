"""Small corpus, tiny teacher configuration, and a runner for kill/resume tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

from multiref.data.preprocess import PreprocessConfig, preprocess
from multiref.data.synthetic import write_archive

TINY_TEACHER = {
    "init": "scratch",
    "model": "gpt2-medium",
    "device": "cpu",
    "scratch": {"vocab_size": 400, "n_layer": 1, "n_embd": 32, "n_head": 2, "n_positions": 256},
    "train": {"epochs": 2, "batch_size": 8, "lr": 1e-3, "weight_decay": 0.01, "warmup_steps": 0,
              "max_grad_norm": 1.0, "seed": 1, "checkpoint_every": 5, "log_every": 5, "eval_batch_size": 16},
}


def make_data(root: Path, n_dialogues: int = 120) -> dict[str, Path]:
    write_archive(root / "s.zip", root / "dist.parquet", n_dialogues, seed=5)
    with zipfile.ZipFile(root / "s.zip") as zf:
        zf.extractall(root)
    paths = {
        "sessions": root / "sessions.parquet",
        "vocab": root / "vocab.parquet",
        "train": root / "train.parquet",
        "dev": root / "dev.parquet",
        "test": root / "test.parquet",
        "distribution": root / "dist.parquet",
    }
    preprocess(
        root / "ijcnlp_dailydialog", paths["sessions"], paths["vocab"],
        {s: paths[s] for s in ("train", "dev", "test")}, root / "pre.json",
        PreprocessConfig(duplicate_threshold=1.0), progress=False,
    )
    return paths


def run_and_kill(code: str, ready: Path | Callable[[], bool], timeout: float = 120.0) -> bool:
    """Run ``code`` in a Python subprocess and SIGKILL it as soon as ``ready`` (a path that must
    exist, or a condition) holds. Returns True if it was killed, False if it finished first."""
    watch = ready if callable(ready) else ready.exists
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                assert proc.returncode == 0, proc.stderr.read().decode() if proc.stderr else ""
                return False
            if watch():
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.02)
        raise AssertionError(f"the kill condition did not hold within {timeout} s")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
