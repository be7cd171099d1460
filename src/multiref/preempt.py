"""Surviving preemption: periodic checkpoints, and a last checkpoint on Slurm's warning signals.

Every long loop (teacher fine-tuning, hypothesis shards, model training, evaluator training) asks a
:class:`Checkpointer` after each unit of work whether a checkpoint is due. One is due every
``every_seconds`` of wall-clock time, and as soon as the process has received SIGTERM (``scancel``,
a preemption, a node shutdown) or SIGUSR1 (what ``sbatch --signal=USR1@<seconds>`` sends before the
time limit). After a save prompted by a signal, :meth:`Checkpointer.saved` raises :class:`Preempted`:
the job ends with status 128 + the signal number and the next attempt (Snakemake's retry, a Slurm
requeue or a plain rerun) resumes from that save. A second signal while a step is still running
ends the process at once; the previous checkpoint is then the one resumed.

Fault injection for the test suite (never set these in production): ``MULTIREF_FAULT=kill`` makes a
process kill itself with SIGKILL right after a checkpoint save, ``MULTIREF_FAULT=wait`` makes it wait
there (up to ``MULTIREF_FAULT_WAIT`` seconds, default 300) until a stop signal arrives. With
``MULTIREF_FAULT_MARKERS=<dir>`` each checkpoint folder (one per job: a run's work folder, a shard's
chunk folder) is faulted once only (a marker file naming it is left in ``<dir>``), so the retry that
resumes the job runs through. ``MULTIREF_FAULT_MATCH=<regex>`` limits the faults to the checkpoint
folders whose path matches.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import ParamSpec, TypeVar

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

_received: list[int] = []


class Preempted(Exception):
    """A stop signal arrived and the state was saved; the job should end and be rerun."""

    def __init__(self, signum: int, where: str) -> None:
        self.signum = signum
        self.exit_status = 128 + signum
        super().__init__(
            f"stopped by {signal.Signals(signum).name}; state saved to {where}; rerunning the job resumes from there"
        )


def _handler(signum: int, frame: FrameType | None) -> None:
    if _received:  # a second signal: stop now, the last checkpoint on disk is resumed
        os._exit(128 + signum)
    _received.append(signum)


def received() -> int | None:
    """The stop signal received so far in this process, if any."""
    return _received[0] if _received else None


def clear() -> None:
    """Forget a received signal (for tests that signal their own process)."""
    _received.clear()


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGUSR1 into a flag that :class:`Checkpointer` reads, for the duration of the block.

    Outside the main thread (where Python cannot install handlers) this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _handler) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


P = ParamSpec("P")
R = TypeVar("R")


def preemptible(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` inside :func:`stop_signals` (for the long loops that ask a :class:`Checkpointer`)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with stop_signals():
            return fn(*args, **kwargs)

    return wrapper


class Checkpointer:
    """When a long loop saves its state: every ``every_seconds`` (None: never on time alone) and on a
    stop signal. Use as ``if ckpt.due(): save(); ckpt.saved(path)``."""

    def __init__(self, every_seconds: float | None = 600.0, clock: Callable[[], float] = time.monotonic) -> None:
        if every_seconds is not None and every_seconds <= 0:
            raise ValueError(f"the checkpoint interval must be positive, got {every_seconds}")
        self.every_seconds = every_seconds
        self.clock = clock
        self.last = clock()

    def due(self) -> bool:
        """A save is due: a stop signal arrived or the interval has passed since the last save."""
        if _received:
            return True
        return self.every_seconds is not None and self.clock() - self.last >= self.every_seconds

    def saved(self, where: Path | str) -> None:
        """Record a save to ``where`` (also the loop's own scheduled saves); raise :class:`Preempted`
        when a stop signal is pending, so that the job ends with its state on disk."""
        self.last = self.clock()
        _fault(Path(where))
        if _received:
            logging.getLogger("multiref").warning("received %s: state saved to %s, stopping", signal.Signals(_received[0]).name, where)
            raise Preempted(_received[0], str(where))


def _fault(where: Path) -> None:
    """Test-only fault injection after a save (see the module docstring)."""
    mode = os.environ.get("MULTIREF_FAULT")
    if not mode:
        return
    folder = where.resolve().parent
    if not re.search(os.environ.get("MULTIREF_FAULT_MATCH", ""), str(folder)):
        return
    markers = os.environ.get("MULTIREF_FAULT_MARKERS")
    if markers:
        marker = Path(markers) / hashlib.sha256(str(folder).encode()).hexdigest()[:16]
        if marker.exists():
            return
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"{folder}\n")
    log = logging.getLogger("multiref")
    if mode == "kill":
        log.warning("MULTIREF_FAULT=kill: killing this process (SIGKILL) after saving %s", where)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    elif mode == "wait":
        limit = float(os.environ.get("MULTIREF_FAULT_WAIT", "300"))
        log.warning("MULTIREF_FAULT=wait: waiting up to %.0f s for a stop signal after saving %s", limit, where)
        end = time.monotonic() + limit
        while not _received and time.monotonic() < end:
            time.sleep(0.1)
    else:
        raise ValueError(f"MULTIREF_FAULT must be 'kill' or 'wait', got {mode!r}")
