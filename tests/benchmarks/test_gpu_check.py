"""benchmarks/gpu_check.sh --cpu runs every step of the GPU check at small sizes and writes the whole table."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROWS = [
    "machine",
    "sampler vs generate, N = 20",
    "sampler vs generate, N = 100",
    "training hred fp32",
    "training vhred_lgm20 fp32",
    "training hred bf16",
    "training vhred_lgm20 bf16",
    "HRED: the training step's loss",
    "HRED: loss after the step's Adam update",
    "projection: teacher sampling",
    "projection: 1-GT epoch hred fp32",
    "projection: 1-GT epoch vhred_lgm20 fp32",
    "projection: 1-GT epoch hred bf16",
    "projection: 1-GT epoch vhred_lgm20 bf16",
]


@pytest.mark.slow  # about a minute on 2 cores
def test_cpu_mode_writes_every_row(tmp_path: Path) -> None:
    out = tmp_path / "check.md"
    env = os.environ | {"PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--cpu", "--out", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400, check=False)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert text == proc.stdout
    cells = {line.split(" | ")[0].removeprefix("| "): line for line in text.splitlines()[2:]}
    assert list(cells) == ROWS
    assert not any(bad in text for bad in ("failed", "time limit", "rate measured")), text
    assert "cpu" in cells["HRED: the training step's loss"] and "\\|Δ\\| 0.00e+00" in cells["HRED: the training step's loss"]


def test_unknown_argument_is_refused() -> None:
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--fast"], capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "unknown argument --fast" in proc.stderr


def test_gpu_mode_without_a_gpu_stops_after_the_environment_step(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the check would run")
    env = os.environ | {"PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--out", str(tmp_path / "x.md")],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1 and "no CUDA GPU" in proc.stderr
    assert not (tmp_path / "x.md").exists()
