"""Helpers shared by the thin scripts in ``workflow/scripts/`` (logging to the rule's log, errors)."""

from __future__ import annotations

import contextlib
import errno
import logging
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

from multiref.errors import ConfigError, MultirefError
from multiref.preempt import Preempted


@contextlib.contextmanager
def step(log_path: str, name: str = "multiref") -> Iterator[logging.Logger]:
    """Send stderr and logging to ``log_path`` for the block.

    A :class:`MultirefError` (bad input) is written to the log *and* to the console as one clear line,
    and ends the process with status 1, so Snakemake marks the job failed and removes its outputs.
    :class:`Preempted` (a stop signal after which the state was saved) ends it with status 128 + the
    signal number; the next attempt resumes. Any other exception is a bug or an environment fault: its
    traceback goes to the log, and the same ``multiref error:`` line (the exception, the file it names if
    any, where the traceback is) to the log and the console; a full disk is said so.
    """
    original = sys.stderr
    with open(log_path, "w", buffering=1, encoding="utf-8") as log:
        sys.stderr = log
        logging.basicConfig(
            stream=log, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True
        )
        logger = logging.getLogger(name)
        logger.info("multiref library: %s", Path(__file__).resolve().parent)
        try:
            yield logger
        except MultirefError as exc:
            message = f"multiref error: {exc}"
            print(message, file=log)
            print(message, file=original)
            raise SystemExit(1) from exc
        except Preempted as exc:
            message = f"multiref: {exc}"
            print(message, file=log)
            print(message, file=original)
            raise SystemExit(exc.exit_status) from exc
        except Exception as exc:
            traceback.print_exc(file=log)
            message = f"multiref error: {describe(exc)} (traceback in {log_path})"
            print(message, file=log)
            print(message, file=original)
            raise SystemExit(1) from exc
        finally:
            sys.stderr = original


def describe(exc: BaseException) -> str:
    """One line for an unexpected exception: its type and message, the file an OS error names, and a plain
    statement when the disk is full (torch and pyarrow report that as their own errors)."""
    text = f"{type(exc).__name__}: {exc}"
    filename = getattr(exc, "filename", None)
    if filename and str(filename) not in text:
        text += f" ({filename})"
    chain: BaseException | None = exc
    while chain is not None:
        if getattr(chain, "errno", None) == errno.ENOSPC or "No space left on device" in str(chain):
            return f"no space left on the device ({text})"
        chain = chain.__cause__ or chain.__context__
    return text


class RootClaimed(ConfigError):
    """An output root holds (or is being filled with) another configuration's outputs."""


def claim_root(stamp: Path, run_name: str) -> None:
    """Mark the folder of ``stamp`` as holding the outputs of the configuration ``run_name``, or raise
    :class:`RootClaimed` when another configuration holds it.

    The stamp is created with its content in one step (a hard link of a finished temporary file, which fails
    if the stamp exists), so of several runs that start together on a new root exactly one claims it; the
    others then read its name. This works across checkouts and processes on one file system (Snakemake's own
    lock covers one working directory only).
    """
    import os
    import tempfile

    from multiref.io import honour_umask

    stamp.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{stamp.name}.", dir=stamp.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(run_name + "\n")
        honour_umask(Path(tmp))
        try:
            os.link(tmp, stamp)
            return
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)
    held = stamp.read_text(encoding="utf-8").strip()
    if held != run_name:
        raise RootClaimed(
            f"{stamp.parent}/ holds outputs of configuration '{held}', not '{run_name}'. Set 'root' to another "
            "folder (or remove the old outputs) so runs never mix."
        )
