"""Atomic writing of stage outputs, so that a failed or killed step never leaves a partial file."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from multiref.errors import MultirefError, OutputError


def _output_error(target: Path, exc: OSError) -> OutputError:
    blocker = next((p for p in [target, *target.parents] if p.exists()), None)
    if blocker is not None and blocker != target and not blocker.is_dir():
        reason = f"{blocker} is a file, not a folder"
    else:
        reason = f"{exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else "")
    return OutputError(f"cannot write {target}: {reason}")


def make_dirs(folder: str | os.PathLike[str], output: str | os.PathLike[str] | None = None) -> Path:
    """``mkdir -p`` for an output's folder; failure (a file in the way, no permission) is an :class:`OutputError`
    naming ``output`` (default: the folder)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _output_error(Path(output) if output is not None else folder, exc) from exc
    return folder


def current_umask() -> int:
    """The process's file-creation mask, read without changing it where Linux shows it (``/proc``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, hence the /proc path first)
    os.umask(mask)
    return mask


def honour_umask(path: Path, directory: bool = False) -> None:
    """Give ``path`` the mode a plain ``open()`` / ``mkdir()`` would (``tempfile`` makes 0600 files and 0700
    folders): 0644 / 0755 under umask 022, so colleagues can read the results."""
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


def _no_space(target: Path, exc: OSError) -> OutputError:
    return OutputError(f"cannot write {target}: no space left on the device of {target.parent} ({exc.strerror or exc})")


def _move_into_place(tmp: Path, target: Path) -> None:
    """Rename a finished temporary file or folder to its target, or an :class:`OutputError` naming the target."""
    try:
        os.replace(tmp, target)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc


@contextlib.contextmanager
def _full_disk_named(target: Path) -> Iterator[None]:
    """A full disk while the block writes ``target`` becomes an :class:`OutputError` naming ``target``."""
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise _no_space(target, exc) from exc
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    An output that cannot be placed (a file where its folder should be, no permission, a folder with the
    output's name, no space left) raises :class:`OutputError` naming ``path``; the temporary file never outlives
    the block. The output gets the mode the umask gives new files.
    """
    target = Path(path)
    make_dirs(target.parent, target)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise _output_error(target, exc) from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        honour_umask(tmp)
        with _full_disk_named(target):
            yield tmp
        _move_into_place(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """As :func:`atomic_path` for a folder output (a saved model): yield an empty temporary folder next to
    ``path``; when the block succeeds it replaces ``path`` (an older folder there is removed)."""
    target = Path(path)
    make_dirs(target.parent, target)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    except OSError as exc:
        raise _output_error(target, exc) from exc
    old: Path | None = None
    try:
        honour_umask(tmp, directory=True)
        with _full_disk_named(target):
            yield tmp
        if target.exists():
            old = target.parent / f".{target.name}.old-{os.getpid()}-{time.time_ns()}"
            os.replace(target, old)
        _move_into_place(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.exists():
            shutil.rmtree(old, ignore_errors=True)


def _unreadable(path: str | os.PathLike[str], exc: Exception, columns: list[str] | None = None) -> MultirefError:
    if isinstance(exc, FileNotFoundError):
        return MultirefError(f"{path}: no such Parquet file")
    if columns and isinstance(exc, (pa.ArrowInvalid, KeyError)) and ("FieldRef" in str(exc) or "No match" in str(exc)):
        try:
            have = pq.read_schema(path).names
        except (pa.ArrowException, OSError):
            have = []
        missing = [c for c in columns if c not in have]
        if have and missing:
            return MultirefError(f"{path}: lacks the column(s) {missing} (it has {have}); rerun the step that writes it")
    return MultirefError(
        f"{path}: cannot read this Parquet file ({exc}); if it is truncated or corrupt, delete it and rerun the "
        "step that writes it"
    )


def read_table(path: str | os.PathLike[str], columns: list[str] | None = None, memory_map: bool = False) -> pa.Table:
    """``pyarrow.parquet.read_table``, with a missing, truncated or corrupt file (or a missing column)
    reported as a :class:`MultirefError` that names the file."""
    try:
        return pq.read_table(path, columns=columns, memory_map=memory_map)
    except (pa.ArrowException, OSError, KeyError) as exc:
        raise _unreadable(path, exc, columns) from exc


def write_parquet(table: pa.Table, path: str | os.PathLike[str], metadata: dict[str, Any] | None = None) -> None:
    """Write ``table`` atomically; ``metadata`` is stored as JSON under the schema key ``multiref``."""
    if metadata:
        merged = dict(table.schema.metadata or {})
        merged[b"multiref"] = json.dumps(metadata, sort_keys=True).encode()
        table = table.replace_schema_metadata(merged)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def read_parquet_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``multiref`` metadata stored by :func:`write_parquet` (empty if none)."""
    try:
        meta = pq.read_schema(path).metadata or {}
    except (pa.ArrowException, OSError) as exc:
        raise _unreadable(path, exc) from exc
    raw = meta.get(b"multiref")
    return json.loads(raw) if raw else {}


def read_json(path: str | os.PathLike[str], numbers: Sequence[str] = (), what: str = "") -> dict[str, Any]:
    """A JSON object written by a stage, with each field in ``numbers`` checked to be a finite or infinite
    number (not missing, not a string); any fault is a :class:`MultirefError` naming the file and the field."""
    path = Path(path)
    hint = f" ({what})" if what else ""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise MultirefError(f"{path}: missing{hint}") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MultirefError(f"{path}: not a readable JSON file ({exc}); delete it and rerun the step that writes it") from exc
    if not isinstance(obj, dict):
        raise MultirefError(f"{path}: expected a JSON object, found a {type(obj).__name__}")
    for field in numbers:
        if field not in obj:
            raise MultirefError(f"{path}: field '{field}' is missing; rerun the step that writes it")
        value = obj[field]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise MultirefError(f"{path}: field '{field}' is {value!r}, not a number; rerun the step that writes it")
    return obj


def write_json(obj: Any, path: str | os.PathLike[str]) -> None:
    """Write ``obj`` as indented, key-sorted JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_text(text: str, path: str | os.PathLike[str]) -> None:
    """Write ``text`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def content_digest(inputs: Mapping[str, str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None]) -> dict[str, Any]:
    """What a resumable job's inputs hold, for its checkpoint's fingerprint: per name, the sha256 of a file,
    of a folder (its files' relative paths and bytes, in sorted order), or a list of those; a name that is
    not a local path (a hub model name) stands for itself; None stays None. Sizes and times are not used:
    an input changed in place, even to the same size, gives another digest."""
    def one(item: str | os.PathLike[str]) -> str:
        path = Path(item)
        if path.is_file():
            return sha256_file(path)
        if path.is_dir():
            digest = hashlib.sha256()
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                digest.update(str(file.relative_to(path)).encode() + b"\0" + sha256_file(file).encode() + b"\n")
            return "dir:" + digest.hexdigest()
        return f"name:{item}"

    out: dict[str, Any] = {}
    for name, item in inputs.items():
        if item is None or isinstance(item, (str, os.PathLike)):
            out[name] = None if item is None else one(item)
        else:
            out[name] = [one(i) for i in item]
    return out


def move_aside(path: Path, why: str) -> Path:
    """Rename an unusable file (a truncated checkpoint) to ``<name>.corrupt-<time>`` next to it, with a warning
    naming both, so that the job starts afresh instead of failing on it at every retry."""
    import logging

    aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    os.replace(path, aside)
    logging.getLogger("multiref").warning("%s cannot be read (%s): moved aside to %s; starting afresh", path, why, aside)
    return aside


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
