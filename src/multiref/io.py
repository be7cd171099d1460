"""Atomic writing of stage outputs, so that a failed or killed step never leaves a partial file."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
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


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    An output that cannot be placed (a file where its folder should be, no permission, a folder with the
    output's name) raises :class:`OutputError` naming ``path``; the temporary file never outlives the block.
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
        yield tmp
        try:
            os.replace(tmp, target)
        except OSError as exc:
            raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
    finally:
        if tmp.exists():
            tmp.unlink()


def _unreadable(path: str | os.PathLike[str], exc: Exception) -> MultirefError:
    if isinstance(exc, FileNotFoundError):
        return MultirefError(f"{path}: no such Parquet file")
    return MultirefError(
        f"{path}: cannot read this Parquet file ({exc}); if it is truncated or corrupt, delete it and rerun the "
        "step that writes it"
    )


def read_table(path: str | os.PathLike[str], columns: list[str] | None = None, memory_map: bool = False) -> pa.Table:
    """``pyarrow.parquet.read_table``, with a missing, truncated or corrupt file (or a missing column)
    reported as a :class:`MultirefError` that names the file."""
    try:
        return pq.read_table(path, columns=columns, memory_map=memory_map)
    except (pa.ArrowException, OSError) as exc:
        raise _unreadable(path, exc) from exc


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


def write_json(obj: Any, path: str | os.PathLike[str]) -> None:
    """Write ``obj`` as indented, key-sorted JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_text(text: str, path: str | os.PathLike[str]) -> None:
    """Write ``text`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
