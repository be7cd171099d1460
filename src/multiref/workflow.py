"""Helpers shared by the thin scripts in ``workflow/scripts/`` (logging to the rule's log, errors)."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

from multiref.errors import MultirefError
from multiref.preempt import Preempted


@contextlib.contextmanager
def step(log_path: str, name: str = "multiref") -> Iterator[logging.Logger]:
    """Send stderr and logging to ``log_path`` for the block.

    A :class:`MultirefError` (bad input) is written to the log *and* to the console as one clear line,
    and ends the process with status 1, so Snakemake marks the job failed and removes its outputs.
    :class:`Preempted` (a stop signal after which the state was saved) ends it with status 128 + the
    signal number; the next attempt resumes.
    """
    original = sys.stderr
    with open(log_path, "w", buffering=1, encoding="utf-8") as log:
        sys.stderr = log
        logging.basicConfig(
            stream=log, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True
        )
        try:
            yield logging.getLogger(name)
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
        finally:
            sys.stderr = original
