"""A throw-away single-node Slurm cluster on 127.0.0.1 with fake GPUs, for the profile's tests.

Installs Debian's Slurm and munge packages when they are missing (root and apt needed), writes a
``slurm.conf`` and ``gres.conf`` in a temporary folder and links them from ``/etc/slurm`` (the
executor plugin strips ``SLURM_CONF`` from its jobs' environment, so the default path must work),
starts munged, slurmctld and slurmd in the foreground as our own children, and on exit cancels the
jobs, stops the daemons by PID (SIGTERM, then SIGKILL) and removes the links. A machine with a Slurm
of its own (a configuration in ``/etc/slurm`` or a Slurm daemon running) is left alone: the test is
skipped there.
Facts behind each setting: ``../shared/docs/slurm-local.md``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
ETC = Path("/etc/slurm")
LINKED = ("slurm.conf", "gres.conf")


class SlurmUnavailable(RuntimeError):
    """No Slurm could be installed or started here (not root, no apt, no network for apt)."""


def install() -> None:
    """Install the packages with apt-get when a daemon is missing (about 10 s with package lists)."""
    if all(shutil.which(b) for b in ("slurmctld", "slurmd", "sbatch", "munged")):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SlurmUnavailable("Slurm is not installed and this is not a root Debian machine with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    if subprocess.run(cmd, env=env, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SlurmUnavailable(f"apt-get install {' '.join(PACKAGES)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _node_line() -> str:
    """This machine's CPUs and memory (``slurmd -C``), with memory kept below the physical amount."""
    fields = dict(item.split("=", 1) for item in subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout.split() if "=" in item)
    memory = int(int(fields["RealMemory"]) * 0.8)
    cpu = " ".join(f"{k}={fields[k]}" for k in ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore") if k in fields)
    return f"NodeName=localhost NodeAddr=127.0.0.1 {cpu} RealMemory={memory} Gres=gpu:h100:2 State=UNKNOWN"


@dataclass
class Cluster:
    folder: Path
    processes: list[subprocess.Popen] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def run(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(list(args), capture_output=True, text=True, timeout=30, check=False)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {proc.stderr}")
        return proc.stdout

    def jobs(self) -> list[dict[str, str]]:
        """Every job the controller still knows (also finished ones, kept for MinJobAge)."""
        out = self.run("squeue", "--all", "-h", "-t", "all", "-o", "%i|%j|%T|%b|%k")
        keys = ("id", "name", "state", "gres", "comment")
        return [dict(zip(keys, line.split("|", 4), strict=True)) for line in out.splitlines() if line.strip()]

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(self.folder.glob("*.log")))


def _write_config(folder: Path) -> None:
    state, spool = folder / "state", folder / "spool"
    state.mkdir()
    spool.mkdir()
    ctld_port, slurmd_port = _free_port(), _free_port()
    (folder / "slurm.conf").write_text(
        "\n".join(
            [
                "ClusterName=multiref-test",
                "SlurmctldHost=localhost(127.0.0.1)",
                f"SlurmctldPort={ctld_port}",
                f"SlurmdPort={slurmd_port}",
                "SlurmUser=root",
                "SlurmdUser=root",
                "AuthType=auth/munge",
                "CredType=cred/munge",
                f"AuthInfo=socket={folder / 'munge.socket'}",
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_Core_Memory",
                "AccountingStorageType=accounting_storage/none",
                "JobAcctGatherType=jobacct_gather/none",
                "MinJobAge=600",
                "KillWait=30",
                "ReturnToService=2",
                "GresTypes=gpu",
                f"StateSaveLocation={state}",
                f"SlurmdSpoolDir={spool}",
                f"SlurmctldPidFile={folder / 'slurmctld.pid'}",
                f"SlurmdPidFile={folder / 'slurmd.pid'}",
                f"SlurmctldLogFile={folder / 'slurmctld.log'}",
                f"SlurmdLogFile={folder / 'slurmd.log'}",
                _node_line(),
                "PartitionName=gpu Nodes=localhost Default=YES MaxTime=INFINITE State=UP",
                "",
            ]
        )
    )
    (folder / "gres.conf").write_text("AutoDetect=off\nNodeName=localhost Name=gpu Type=h100 File=/dev/null,/dev/zero\n")


def _refuse_a_real_slurm() -> None:
    """Never touch a machine's own Slurm; links left by a test that was killed are removed."""
    for name in LINKED:
        target = ETC / name
        if target.is_symlink() and not target.exists():
            target.unlink()  # a dangling link into the folder of an earlier, killed test run
        elif target.exists() or target.is_symlink():
            raise SlurmUnavailable(f"{target} exists: this machine has a Slurm configuration of its own, which the test leaves alone")
    running = subprocess.run(["pgrep", "-x", "slurmctld|slurmd|slurmdbd"], capture_output=True, text=True, check=False).stdout.split()
    if running:
        raise SlurmUnavailable(f"Slurm daemons are already running here (pids {', '.join(running)}); the test leaves them alone")


def _stop(processes: list[subprocess.Popen]) -> None:
    for proc in reversed(processes):
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for proc in reversed(processes):
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def cluster(folder: Path) -> Iterator[Cluster]:
    """Start the cluster in ``folder``; everything is stopped and restored on exit, also after a failure."""
    install()
    folder.mkdir(parents=True, exist_ok=True)
    _write_config(folder)
    _refuse_a_real_slurm()
    ETC.mkdir(parents=True, exist_ok=True)
    state = Cluster(folder)
    try:
        for name in LINKED:
            (ETC / name).symlink_to(folder / name)
        log = open(folder / "daemons.log", "w")  # noqa: SIM115 (closed in finally)
        starts = [
            ["munged", "-F", "--force", f"--socket={folder / 'munge.socket'}", f"--pid-file={folder / 'munged.pid'}",
             f"--log-file={folder / 'munged.log'}", f"--seed-file={folder / 'munge.seed'}"],
            ["slurmctld", "-D", "-i"],
            ["slurmd", "-D", "-N", "localhost"],
        ]
        for cmd in starts:
            state.processes.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
            time.sleep(0.5)
        deadline = time.monotonic() + 60
        while True:
            dead = [p.args[0] for p in state.processes if p.poll() is not None]
            if dead:
                raise SlurmUnavailable(f"{dead} stopped at start:\n{(folder / 'daemons.log').read_text()}\n{state.logs()}")
            sinfo = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, check=False)
            if sinfo.returncode == 0 and sinfo.stdout.strip() in ("idle", "mixed", "allocated"):
                break
            if sinfo.stdout.strip().startswith("drain"):
                subprocess.run(["scontrol", "update", "NodeName=localhost", "State=RESUME"], capture_output=True, check=False)
            if time.monotonic() > deadline:
                raise SlurmUnavailable(f"the node did not become idle (sinfo: {sinfo.stdout} {sinfo.stderr}):\n{state.logs()}")
            time.sleep(0.5)
        yield state
    finally:
        with contextlib.suppress(Exception):
            subprocess.run(["scancel", "--full", "--user", "root"], capture_output=True, timeout=10, check=False)
        _stop(state.processes)
        for name in LINKED:
            target = ETC / name
            if target.is_symlink() and Path(os.readlink(target)) == folder / name:
                target.unlink()
        with contextlib.suppress(NameError):
            log.close()
