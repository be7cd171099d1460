"""The Slurm profile on a real (single-node, local) Slurm: GPU requests, logs, and a cancelled training
job that the retry resumes from its checkpoint to the same weights as an uninterrupted run."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from conftest import REPO, SNAKEMAKE
from slurm_cluster import ETC, SlurmUnavailable, cluster

from multiref.models import registry

RUN = "runs/hred/gt"


def snakemake_on_slurm(root: Path, logs: Path, env: dict[str, str], target: str) -> subprocess.Popen:
    """The profile as a user runs it, plus what a one-node test cluster needs: fast status checks and
    memory requests that fit this machine (the demo keeps the paper's 32 GB for the GPU rules)."""
    cmd = [
        *SNAKEMAKE, "--profile", "slurm", "--configfile", "config/demo.yaml", "--config", f"root={root}",
        "--set-resources", "train_model:mem_mb=2000", "decode:mem_mb=2000",
        "--slurm-logdir", str(logs), "--slurm-keep-successful-logs",
        "--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1",
        "--max-status-checks-per-second", "5", "--latency-wait", "5", "--", str(root / target),
    ]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def stop(proc: subprocess.Popen) -> str:
    """Stop a Snakemake still running (it ignores SIGTERM while jobs run: SIGINT, then SIGKILL)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    out, _ = proc.communicate()
    return out or ""


def run_cancel_and_resume(source_root: Path, tmp_path: Path) -> None:
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="the Slurm executor plugin is not installed (pip install -e '.[slurm]')")
    root = tmp_path / "results-demo"
    shutil.copytree(source_root / "data", root / "data")  # the data stages, as the demo built them
    markers, logs = tmp_path / "markers", tmp_path / "slurm-logs"
    env = {**os.environ, "MULTIREF_FAULT": "wait", "MULTIREF_FAULT_MARKERS": str(markers), "MULTIREF_FAULT_WAIT": "180"}
    try:
        with cluster(tmp_path / "slurm") as slurm:
            proc = snakemake_on_slurm(root, logs, env, f"{RUN}/test/decode.parquet")
            try:
                # the training job saves its first checkpoint, then (fault injection) waits there: cancel it
                deadline = time.monotonic() + 240
                while not (markers.exists() and any(markers.iterdir())):
                    assert proc.poll() is None, stop(proc)
                    assert time.monotonic() < deadline, f"no checkpoint within 240 s\n{slurm.jobs()}\n{slurm.logs()}"
                    time.sleep(0.5)
                running = [j for j in slurm.jobs() if j["state"] == "RUNNING" and "train_model" in j["comment"]]
                assert len(running) == 1, slurm.jobs()
                request = slurm.run("scontrol", "show", "job", running[0]["id"])
                assert "TresPerJob=gres:gpu:1" in request, request  # the rule's gpu=1 became a Slurm GPU request
                slurm.run("scancel", running[0]["id"])
                proc.wait(timeout=480)
            finally:
                output = stop(proc)
            jobs = slurm.jobs()
    except SlurmUnavailable as exc:
        pytest.skip(f"no local Slurm: {exc}")
    assert proc.returncode == 0, f"{output[-6000:]}\n{jobs}"
    train_jobs = [j for j in jobs if "train_model" in j["comment"]]
    assert [j["state"] for j in train_jobs] == ["CANCELLED", "COMPLETED"], jobs
    assert {j["state"] for j in jobs} <= {"CANCELLED", "COMPLETED"} and len(jobs) == 3, jobs  # train x2, decode
    first_attempt = (logs / "rule_train_model" / "hred_gt" / f"{train_jobs[0]['id']}.log").read_text()
    assert "multiref: stopped by SIGTERM; state saved to" in first_attempt, first_attempt[-3000:]  # and exit 143
    assert "non-zero exit status 143" in first_attempt, first_attempt[-3000:]
    train_log = (root / "logs" / "train_hred_gt.log").read_text()
    assert "resuming from the checkpoint" in train_log, train_log
    for rule in ("train_model", "decode"):  # Slurm logs are kept, one folder per rule
        assert list((logs / f"rule_{rule}").rglob("*.log")), sorted(p.relative_to(logs) for p in logs.rglob("*"))
    uninterrupted, _ = registry.load(source_root / RUN / "model.pt")
    resumed, _ = registry.load(root / RUN / "model.pt")
    assert all(torch.equal(a, b) for a, b in zip(uninterrupted.state_dict().values(), resumed.state_dict().values(), strict=True))
    decoded = [pq.read_table(r / RUN / "test" / "decode.parquet") for r in (source_root, root)]
    assert decoded[0].equals(decoded[1])  # the same test responses
    # torn down: no daemon left, /etc/slurm as before
    assert all(not (ETC / n).is_symlink() or Path(os.readlink(ETC / n)).parent != tmp_path / "slurm" for n in ("slurm.conf", "gres.conf"))
    assert all(p.poll() is not None for p in slurm.processes)
    leftover = subprocess.run(["pgrep", "-a", "slurmctld|slurmd|slurmstepd|munged"], capture_output=True, text=True, check=False).stdout
    assert not leftover.strip(), leftover


@pytest.mark.slow
def test_slurm_profile_runs_a_demo_slice_and_a_cancelled_training_job_resumes(demo_root: Path, tmp_path: Path) -> None:
    run_cancel_and_resume(demo_root, tmp_path)


@pytest.mark.slow
def test_the_cluster_is_torn_down_also_when_a_test_fails(tmp_path: Path) -> None:
    class Boom(Exception):
        pass

    def etc() -> list[tuple[str, bool, str | None]]:
        return [(n, (ETC / n).is_symlink(), os.readlink(ETC / n) if (ETC / n).is_symlink() else None) for n in ("slurm.conf", "gres.conf")]

    before = etc()
    daemons = []
    try:
        with pytest.raises(Boom), cluster(tmp_path / "slurm") as slurm:
            daemons = slurm.processes
            assert (ETC / "slurm.conf").is_symlink()
            raise Boom
    except SlurmUnavailable as exc:
        pytest.skip(f"no local Slurm: {exc}")
    assert len(daemons) == 3 and all(p.poll() is not None for p in daemons)
    assert etc() == before
