"""Corpus acquisition: download (or copy) the DailyDialog archive, verify it, extract the four files."""

from __future__ import annotations

import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any

from multiref.data.dailydialog import CORPUS_FILES
from multiref.errors import ChecksumError, CorpusError, DownloadError
from multiref.io import atomic_path, make_dirs, sha256_file, write_json

USER_AGENT = "multiref/0.1 (research pipeline; data downloads)"


CORPUS_REMEDY = (
    "Download it by other means and set 'corpus.archive' to the local file, in config/config.yaml or on the "
    "command line: snakemake --config 'corpus={\"archive\": \"/path/to/ijcnlp_dailydialog.zip\"}' ..."
)


def download(url: str, dest: Path, timeout: float = 120.0, what: str = "the corpus", remedy: str = CORPUS_REMEDY) -> None:
    """Download ``url`` to ``dest`` atomically; on failure say what failed and how to use a local copy instead."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with (
            atomic_path(dest) as tmp,
            urllib.request.urlopen(request, timeout=timeout) as response,
            open(tmp, "wb") as out,
        ):
            shutil.copyfileobj(response, out, length=1 << 20)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DownloadError(f"could not download {what} from {url} ({reason}). {remedy}") from exc


def locate_members(archive: zipfile.ZipFile, label: str) -> dict[str, str]:
    """Map each corpus file key to its member name: the four files in the shallowest folder holding them."""
    by_folder: dict[PurePosixPath, dict[str, str]] = {}
    wanted = {name: key for key, name in CORPUS_FILES.items()}
    for name in archive.namelist():
        member = PurePosixPath(name)
        if member.name in wanted and not member.name.startswith("._"):
            by_folder.setdefault(member.parent, {})[wanted[member.name]] = name
    complete = [folder for folder, found in by_folder.items() if len(found) == len(CORPUS_FILES)]
    if not complete:
        best = max(by_folder.values(), key=len, default={})
        missing = sorted(CORPUS_FILES[k] for k in CORPUS_FILES if k not in best)
        raise CorpusError(f"{label}: the archive lacks {', '.join(missing)} (no folder holds all four corpus files)")
    folder = min(complete, key=lambda f: len(f.parts))
    return by_folder[folder]


def extract_corpus(archive_path: Path, out_dir: Path, name: str | None = None) -> dict[str, dict[str, Any]]:
    """Check the zip and extract the four corpus files into ``out_dir`` (each written atomically).

    Raises :class:`CorpusError` for a file that is not a zip, is truncated, or fails its CRC check;
    errors call the archive ``name`` (its origin) when given. Returns, per file, its member name,
    size and sha256.
    """
    label = name or str(archive_path)
    try:
        archive = zipfile.ZipFile(archive_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise CorpusError(f"{label}: not a readable zip archive ({exc}); the file may be truncated") from exc
    with archive:
        members = locate_members(archive, label)
        files: dict[str, dict[str, Any]] = {}
        for key, member in members.items():
            target = out_dir / CORPUS_FILES[key]
            try:
                with atomic_path(target) as tmp, archive.open(member) as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            except (zipfile.BadZipFile, EOFError, OSError, zipfile.LargeZipFile, zlib.error) as exc:
                raise CorpusError(f"{label}: member {member} is corrupt or truncated ({exc})") from exc
            files[CORPUS_FILES[key]] = {
                "member": member,
                "bytes": target.stat().st_size,
                "sha256": sha256_file(target),
            }
    return files


def acquire_corpus(
    out_dir: Path,
    manifest_path: Path,
    url: str | None = None,
    archive: Path | None = None,
    sha256: str | None = None,
    timeout: float = 120.0,
) -> dict[str, Any]:
    """Fetch the archive (``archive`` if given, else ``url``), verify, extract, and write a manifest.

    The observed sha256 is always recorded; when ``sha256`` is given, a mismatch raises
    :class:`ChecksumError` before anything is extracted. Nothing is left in ``out_dir`` on error.
    """
    out_dir = make_dirs(out_dir)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".acquire.") as scratch:
        local = Path(scratch) / "archive.zip"
        if archive is not None:
            archive = Path(archive)
            if not archive.is_file():
                raise CorpusError(f"corpus.archive: no such file {archive}")
            shutil.copyfile(archive, local)
            source = {"kind": "local", "path": str(archive)}
        elif url:
            download(url, local, timeout=timeout)
            source = {"kind": "download", "url": url}
        else:
            raise CorpusError("neither corpus.archive nor corpus.url is set")
        observed = sha256_file(local)
        where = source.get("path") or source.get("url")
        if sha256 and observed.lower() != sha256.lower():
            raise ChecksumError(
                f"sha256 mismatch for {where}: expected {sha256.lower()}, got {observed} "
                "(set corpus.sha256 to null to accept any archive; the observed value is always recorded)"
            )
        try:
            files = extract_corpus(local, out_dir, name=where)
        except Exception:
            for name in CORPUS_FILES.values():
                (out_dir / name).unlink(missing_ok=True)
            raise
        manifest = {
            "source": source,
            "sha256": observed,
            "sha256_expected": sha256.lower() if sha256 else None,
            "bytes": local.stat().st_size,
            "files": files,
        }
    write_json(manifest, manifest_path)
    return manifest
