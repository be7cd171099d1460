"""Bad input of the teacher's hypotheses (multiref.teacher.hypotheses): an empty hypothesis is tolerated (kept
in its shard and counted in the manifest), a corrupt hypothesis shard is named and deleted by the gather step.

Part of the bad-input sweep (shared inputs in tests/bad_input_helpers.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from bad_input_helpers import _truncate, _write_shards, build_data, load_table_column, stray_temporaries

from multiref.teacher.hypotheses import ShardError, gather


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Corpus archive, preprocessed data (vocabulary, pairs) and small word vectors, built once per module."""
    return build_data(tmp_path_factory)


# ---------------------------------------------------------------------------------------------------------------
# Empty hypothesis (tolerated: kept and counted)


def test_empty_teacher_hypothesis_is_kept_and_counted(data: dict[str, Path], tmp_path: Path) -> None:
    first, last = load_table_column(data["train"], "pair_id")[0], load_table_column(data["train"], "pair_id")[-1]
    shards = _write_shards(data["train"], tmp_path / "hyp", 2, {(first, 1): "", (last, 0): ""})
    manifest = gather(shards, data["train"], 2, tmp_path / "hyp" / "manifest.json")
    assert manifest["empty_hypotheses"] == 2
    assert [entry["empty"] for entry in manifest["shards"]] == [1, 1]
    assert manifest["rows"] == 2 * len(load_table_column(data["train"], "pair_id"))


# ---------------------------------------------------------------------------------------------------------------
# Corrupt Parquet shard


def test_corrupt_hypothesis_shard_is_named_and_deleted(data: dict[str, Path], tmp_path: Path) -> None:
    shards = _write_shards(data["train"], tmp_path / "hyp", 2, {})
    _truncate(shards[1])
    manifest = tmp_path / "hyp" / "manifest.json"
    with pytest.raises(ShardError, match=rf"shard 1 \({re.escape(str(shards[1]))}\): .*Parquet"):
        gather(shards, data["train"], 2, manifest)
    assert not shards[1].exists(), "the bad shard is deleted so that a rerun regenerates exactly it"
    assert shards[0].exists() and not manifest.exists()
    assert stray_temporaries(tmp_path / "hyp") == []
