"""Bad input of the data stages (multiref.data): a corpus archive with a bad checksum, truncated or with a
corrupt member (acquire), a malformed dialogue line (preprocess), a corrupt pairs file (the data setting),
and the tolerated out-of-vocabulary-only response (its ids are <unk>).

Part of the bad-input sweep (shared inputs in tests/bad_input_helpers.py): each case asserts the error
type, that the message names the culprit (file, line or value), and that no output is left behind."""

from __future__ import annotations

import hashlib
import re
import zipfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from bad_input_helpers import DIALOGUES, OOV_RESPONSE, _copy, _truncate, build_data, files_under, write_corpus_files

from multiref.data.acquire import acquire_corpus
from multiref.data.dailydialog import CORPUS_FILES
from multiref.data.preprocess import PreprocessConfig, preprocess
from multiref.data.settings import write_setting
from multiref.errors import ChecksumError, CorpusError, MultirefError
from multiref.models.data import load_vocabulary


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Corpus archive, preprocessed data (vocabulary, pairs) and small word vectors, built once per module."""
    return build_data(tmp_path_factory)


# ---------------------------------------------------------------------------------------------------------------
# Bad checksum of the corpus archive


def test_bad_checksum_of_the_corpus_archive(data: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    observed = hashlib.sha256(data["archive"].read_bytes()).hexdigest()
    with pytest.raises(ChecksumError) as info:
        acquire_corpus(out, out / "manifest.json", archive=data["archive"], sha256="0" * 64)
    message = str(info.value)
    assert f"sha256 mismatch for {data['archive']}" in message
    assert f"expected {'0' * 64}, got {observed}" in message
    assert files_under(out) == []


# ---------------------------------------------------------------------------------------------------------------
# Truncated archive


def _truncated(archive: Path, target: Path) -> Path:
    target.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    return target


def _corrupt_member(archive: Path, target: Path) -> Path:
    blob = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("ijcnlp_dailydialog/dialogues_act.txt")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    blob[start] ^= 0xFF  # the member's first data byte: its CRC no longer matches
    target.write_bytes(bytes(blob))
    return target


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_truncated, r"{path}: not a readable zip archive .*the file may be truncated"),
        (_corrupt_member, r"{path}: member ijcnlp_dailydialog/dialogues_act.txt is corrupt or truncated"),
    ],
    ids=["truncated", "corrupt-member"],
)
def test_truncated_or_corrupt_archive(data: dict[str, Path], tmp_path: Path, damage: Any, message: str) -> None:
    broken = damage(data["archive"], tmp_path / "broken.zip")
    out = tmp_path / "corpus"
    with pytest.raises(CorpusError, match=message.format(path=re.escape(str(broken)))):
        acquire_corpus(out, out / "manifest.json", archive=broken)
    assert files_under(out) == []


# ---------------------------------------------------------------------------------------------------------------
# Malformed dialogue line


def _no_eou(folder: Path) -> None:
    path = folder / CORPUS_FILES["text"]
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace("__eou__", "")
    path.write_text("\n".join(lines) + "\n")


def _not_utf8(folder: Path) -> None:
    path = folder / CORPUS_FILES["text"]
    lines = path.read_bytes().split(b"\n")
    lines[3] = b"caf\xe9 __eou__ ok __eou__"
    path.write_bytes(b"\n".join(lines))


def _unknown_act(folder: Path) -> None:
    path = folder / CORPUS_FILES["act"]
    lines = path.read_text().splitlines()
    lines[4] = "1 9 1"
    path.write_text("\n".join(lines) + "\n")


def _short_topic_file(folder: Path) -> None:
    path = folder / CORPUS_FILES["topic"]
    path.write_text("1\n" * (len(DIALOGUES) - 1))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_no_eou, r"dialogues_text.txt, line 3: malformed dialogue, no '__eou__' marker"),
        (_not_utf8, r"dialogues_text.txt, line 4: not valid UTF-8 \(byte 3: b'\\xe9'\)"),
        (_unknown_act, r"dialogues_act.txt, line 5: unknown act label '9'"),
        (_short_topic_file, r"disagree on the number of dialogues \(dialogues_text.txt: 10, .*dialogues_topic.txt: 9\)"),
    ],
    ids=["no-eou", "not-utf8", "unknown-label", "line-counts"],
)
def test_malformed_dialogue_line(tmp_path: Path, damage: Any, message: str) -> None:
    folder = write_corpus_files(tmp_path / "corpus", DIALOGUES)
    damage(folder)
    out = tmp_path / "data"
    with pytest.raises(CorpusError, match=message):
        preprocess(folder, out / "sessions.parquet", out / "vocab.parquet",
                   {s: out / "pairs" / f"{s}.parquet" for s in ("train", "dev", "test")}, out / "preprocess.json",
                   PreprocessConfig(duplicate_threshold=1.0), progress=False)
    assert files_under(out) == []


# ---------------------------------------------------------------------------------------------------------------
# Corrupt Parquet file: the pairs read by the data setting


def test_corrupt_pairs_file_stops_the_data_setting(data: dict[str, Path], tmp_path: Path) -> None:
    pairs = _copy(data["train"], tmp_path / "pairs" / "train.parquet")
    _truncate(pairs)
    out = tmp_path / "settings" / "gt.parquet"
    with pytest.raises(MultirefError, match=rf"{re.escape(str(pairs))}: cannot read this Parquet file .*delete it and rerun"):
        write_setting(pairs, "gt", 5, 2, out)
    assert files_under(tmp_path / "settings") == []


# ---------------------------------------------------------------------------------------------------------------
# Out-of-vocabulary-only response (tolerated: <unk> ids)


def test_oov_only_response_becomes_unk_ids_and_keeps_its_words(data: dict[str, Path]) -> None:
    vocab = load_vocabulary(data["vocab"])
    rows = pq.read_table(data["test"]).to_pylist()
    row = next(r for r in rows if r["response"] == OOV_RESPONSE)
    unk, dot = vocab.id("<unk>"), vocab.id(".")
    assert row["response_ids"] == [vocab.id("<s>"), unk, unk, dot, vocab.id("</s>")]
