"""Corpus acquisition: local copy, download (from a loopback server), checksums, bad archives."""

import hashlib
import json
import zipfile
from pathlib import Path

import pytest
from conftest import dialogue, write_corpus

from multiref.data.acquire import acquire_corpus
from multiref.data.dailydialog import CORPUS_FILES
from multiref.errors import ChecksumError, CorpusError, DownloadError


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    folder = write_corpus(tmp_path / "src" / "ijcnlp_dailydialog", [dialogue(["Hi .", "Hello ."])])
    path = tmp_path / "ijcnlp_dailydialog.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in CORPUS_FILES.values():
            zf.write(folder / name, f"ijcnlp_dailydialog/{name}")
        zf.writestr("ijcnlp_dailydialog/readme.txt", "readme")
    return path


def out_files(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir()) if out.exists() else []


def test_local_archive_is_extracted_and_recorded(archive: Path, tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    manifest = acquire_corpus(out, out / "manifest.json", archive=archive)
    assert sorted(CORPUS_FILES.values()) + ["manifest.json"] == out_files(out)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert manifest["sha256"] == digest
    assert json.loads((out / "manifest.json").read_text())["source"] == {"kind": "local", "path": str(archive)}
    assert manifest["files"]["dialogues_text.txt"]["member"] == "ijcnlp_dailydialog/dialogues_text.txt"


def test_matching_sha256_passes(archive: Path, tmp_path: Path) -> None:
    digest = hashlib.sha256(archive.read_bytes()).hexdigest().upper()
    manifest = acquire_corpus(tmp_path / "c", tmp_path / "c" / "m.json", archive=archive, sha256=digest)
    assert manifest["sha256_expected"] == digest.lower()


def test_sha256_mismatch_is_an_error_and_leaves_nothing(archive: Path, tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    with pytest.raises(ChecksumError, match=r"sha256 mismatch for .*ijcnlp_dailydialog.zip: expected 0{64}, got [0-9a-f]{64}"):
        acquire_corpus(out, out / "manifest.json", archive=archive, sha256="0" * 64)
    assert out_files(out) == []


def test_truncated_archive(archive: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.zip"
    broken.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    out = tmp_path / "corpus"
    with pytest.raises(CorpusError, match=r"broken.zip: not a readable zip archive"):
        acquire_corpus(out, out / "manifest.json", archive=broken)
    assert out_files(out) == []


def test_corrupt_member_fails_crc(archive: Path, tmp_path: Path) -> None:
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("ijcnlp_dailydialog/dialogues_topic.txt")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start] ^= 0xFF  # flip the first byte of the member's data
    corrupt = tmp_path / "corrupt.zip"
    corrupt.write_bytes(bytes(data))
    out = tmp_path / "corpus"
    with pytest.raises(CorpusError, match=r"corrupt.zip: member ijcnlp_dailydialog/dialogues_topic.txt is corrupt"):
        acquire_corpus(out, out / "manifest.json", archive=corrupt)
    assert out_files(out) == []


def test_archive_missing_a_file(archive: Path, tmp_path: Path) -> None:
    partial = tmp_path / "partial.zip"
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(partial, "w") as dst:
        for item in src.infolist():
            if not item.filename.endswith("dialogues_act.txt"):
                dst.writestr(item, src.read(item))
    out = tmp_path / "corpus"
    with pytest.raises(CorpusError, match=r"partial.zip: the archive lacks dialogues_act.txt"):
        acquire_corpus(out, out / "manifest.json", archive=partial)
    assert out_files(out) == []


def test_missing_local_archive(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"corpus.archive: no such file .*nope.zip"):
        acquire_corpus(tmp_path / "c", tmp_path / "c" / "m.json", archive=tmp_path / "nope.zip")


def test_download_from_a_loopback_server(serve, archive: Path, tmp_path: Path) -> None:
    server = serve(archive.parent)
    out = tmp_path / "corpus"
    manifest = acquire_corpus(out, out / "manifest.json", url=f"{server}/{archive.name}")
    assert manifest["source"]["kind"] == "download"
    assert manifest["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert (out / "dialogues_text.txt").read_text().startswith("Hi . __eou__")


def test_failed_download_says_how_to_use_a_local_copy(serve, tmp_path: Path) -> None:
    server = serve(tmp_path)
    out = tmp_path / "corpus"
    with pytest.raises(DownloadError, match=r"could not download the corpus from .*missing.zip.*set 'corpus.archive'"):
        acquire_corpus(out, out / "manifest.json", url=f"{server}/missing.zip")
    assert out_files(out) == []
