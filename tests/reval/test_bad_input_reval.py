"""Bad input of the Reval evaluator's human judgements (multiref.reval.judgements): a bad checksum, and
unreadable annotations (a directory, not UTF-8, not JSON, JSON of another shape, a corrupt zip member, an
empty list, a malformed item) when acquiring them or loading them for training.

Part of the bad-input sweep (shared checks in tests/bad_input_helpers.py): each case asserts the error
type, that the message names the file (and item, field), and that no output is left behind."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest
from bad_input_helpers import files_under

from multiref.errors import ChecksumError, ConfigError
from multiref.reval.judgements import acquire_judgements, load_judgements

# ---------------------------------------------------------------------------------------------------------------
# Bad checksum


def test_bad_checksum_of_the_reval_judgements(tmp_path: Path) -> None:
    src = tmp_path / "judgements.json"
    src.write_text(json.dumps([_judged_item()]), encoding="utf-8")
    out = tmp_path / "reval" / "judgements.json"
    with pytest.raises(ChecksumError, match=rf"{re.escape(str(src))}: sha256 [0-9a-f]{{64}} differs from reval.judgements.sha256 0{{64}}"):
        acquire_judgements("local", out, path=str(src), sha256="0" * 64)
    assert files_under(out.parent) == []


# ---------------------------------------------------------------------------------------------------------------
# Unreadable annotations


def _judged_item() -> dict[str, Any]:
    return {"dialogue_id": "d1", "model": "ground-truth", "context": "hello .\nhi .", "response": "how are you ?",
            "reference": ["how are you ?"], "annotations": {"appropriateness": [4, 5]}}


def _bad_zip(path: Path) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("ACL2020_data/dd_annotations.json", json.dumps({"d": {}}) * 50)
    blob = bytearray(path.read_bytes())
    blob[blob.index(b'{"d"') + 1] ^= 0xFF  # the member's data no longer matches its CRC
    path.write_bytes(bytes(blob))


UNREADABLE = {
    "directory": (lambda p: p.mkdir(), r"{path}: is a directory, not a judgements file"),
    "invalid-bytes": (lambda p: p.write_bytes(b"[{\"model\": \"\xff\xfe\"}]"), r"{path}: not UTF-8 text \(byte 12: b'\\xff'\)"),
    "invalid-json": (lambda p: p.write_text('[{"dialogue_id": "d1",'), r"{path}: not valid JSON"),
    "wrong-json-type": (lambda p: p.write_text("42"), r"{path}: expected a JSON list of items or an object of AMT results"),
    "corrupt-zip": (_bad_zip, r"{path}!dd_annotations.json: cannot read the judgements \(Bad CRC-32"),
    "empty-list": (lambda p: p.write_text("[]"), r"{path}: the list of items is empty"),
    "bad-item": (lambda p: p.write_text('[{"dialogue_id": "d1"}]'), r"{path}: item 0, field '\w+': missing"),
}


@pytest.mark.parametrize("kind", sorted(UNREADABLE))
def test_unreadable_annotations(tmp_path: Path, kind: str) -> None:
    make, message = UNREADABLE[kind]
    src = tmp_path / "annotations" / "dd_annotations.json"
    src.parent.mkdir()
    make(src)
    out = tmp_path / "reval" / "judgements.json"
    with pytest.raises(ConfigError, match=message.format(path=re.escape(str(src)))):
        acquire_judgements("local", out, path=str(src))
    assert files_under(tmp_path / "reval") == []


@pytest.mark.parametrize("kind", ["directory", "invalid-json", "invalid-bytes"])
def test_unreadable_judgements_for_training(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "judgements.json"
    UNREADABLE[kind][0](path)
    message = {"directory": rf"{re.escape(str(path))}: judgements file not found", "invalid-json": rf"{re.escape(str(path))}: not valid JSON",
               "invalid-bytes": rf"{re.escape(str(path))}: not a UTF-8 text file"}[kind]
    with pytest.raises(ConfigError, match=message):
        load_judgements(path)
