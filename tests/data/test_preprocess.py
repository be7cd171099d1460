"""The data stage end to end: pilot subsets, Table 8 of a subset, and the errors of empty splits."""

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import dialogue, write_corpus

from multiref.data.preprocess import PreprocessConfig, preprocess
from multiref.errors import ConfigError, CorpusError
from multiref.tables.corpus import table8, table8_caption

SPLITS = ("train", "dev", "test")


def corpus(folder: Path, n: int = 40) -> Path:
    """n dialogues of two topics, all different (no duplicates), 3-4 turns each."""
    return write_corpus(folder, [dialogue([f"hello number {i} .", f"hi {i} , how are you ?", "fine , thanks ."][: 2 + i % 2] + [f"bye {i} ."], topic=1 + i % 2) for i in range(n)])


def run(tmp_path: Path, cfg: PreprocessConfig) -> tuple[Path, dict]:
    out = tmp_path / "data"
    paths = {s: out / "pairs" / f"{s}.parquet" for s in SPLITS}
    manifest = preprocess(corpus(tmp_path / "corpus"), out / "sessions.parquet", out / "vocab.parquet", paths,
                          out / "preprocess.json", cfg, progress=False)
    return out, manifest


def test_a_subset_keeps_that_many_sessions_and_table8_says_so(tmp_path: Path) -> None:
    out, manifest = run(tmp_path, PreprocessConfig(duplicate_threshold=1.0, subset={"train": 5, "dev": 2, "test": None}, subset_seed=1))
    assert [manifest["splits"][s]["sessions"] for s in SPLITS] == [5, 2, 4]
    assert manifest["subset"] == {"seed": 1, "sizes": {"train": 5, "dev": 2, "test": None}, "full_sessions": {"train": 32, "dev": 4, "test": 4}}
    sessions = pd.read_parquet(out / "sessions.parquet")
    assert len(sessions) == 11 and sessions["session_id"].is_monotonic_increasing
    pairs = pd.read_parquet(out / "pairs" / "train.parquet")
    assert set(pairs["session_id"]) == set(sessions.loc[sessions["split"] == "train", "session_id"])
    frame = table8(out / "sessions.parquet", {s: out / "pairs" / f"{s}.parquet" for s in SPLITS}, with_paper=True, subset=True)
    assert frame["scope"].eq("subset").all() and frame.loc[0, "train"] == 5 and frame.loc[0, "paper_train"] == 9237
    assert not any(c.startswith("diff") for c in frame.columns)  # a sample is not compared with the whole corpus
    caption = table8_caption(True, manifest["subset"])
    assert "subset of the sessions (data.subset, seed 1: 5 of 32 train, 2 of 4 validation, 4 of 4 test)" in caption
    assert json.loads((out / "preprocess.json").read_text())["subset"]["seed"] == 1


def test_the_whole_corpus_has_no_subset(tmp_path: Path) -> None:
    out, manifest = run(tmp_path, PreprocessConfig(duplicate_threshold=1.0))
    assert manifest["subset"] is None and [manifest["splits"][s]["sessions"] for s in SPLITS] == [32, 4, 4]
    frame = table8(out / "sessions.parquet", {s: out / "pairs" / f"{s}.parquet" for s in SPLITS}, with_paper=True)
    assert frame["scope"].eq("corpus").all() and "diff_train" in frame.columns
    assert table8_caption(True, None) == "Corpus statistics of DailyDialog, measured by this pipeline; paper rows: Zhao et al. (2021), Table 8."


@pytest.mark.parametrize(
    ("cfg", "error", "message"),
    [
        (PreprocessConfig(duplicate_threshold=1.0, subset={"test": 5}), ConfigError,
         r"data.subset.test is 5 but the test split has only 4 sessions"),
        (PreprocessConfig(duplicate_threshold=1.0, train_end=0.9, dev_end=0.9), CorpusError,
         r"the dev split has no sessions \(sessions per split: train 36, dev 0, test 4\); check data.split"),
    ],
    ids=["subset-larger-than-split", "split-without-sessions"],
)
def test_impossible_splits_are_named_and_write_nothing(tmp_path: Path, cfg: PreprocessConfig, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        run(tmp_path, cfg)
    assert not (tmp_path / "data").exists()


def test_a_corpus_of_empty_files_is_refused(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path / "corpus", [])
    out = tmp_path / "data"
    with pytest.raises(CorpusError, match=r"corpus: no dialogues left \(0 read"):
        preprocess(folder, out / "s.parquet", out / "v.parquet", {s: out / f"{s}.parquet" for s in SPLITS}, out / "m.json", progress=False)
    assert not out.exists()


def test_a_subset_that_leaves_no_test_pairs_is_named(tmp_path: Path) -> None:
    """One-utterance sessions have no (context, response) pair: a subset of only such test sessions has none."""
    dialogues = [dialogue([f"hello {i} .", f"bye {i} ."]) for i in range(18)] + [dialogue([f"alone {i} ."]) for i in range(2)]
    folder = write_corpus(tmp_path / "corpus", dialogues)
    out = tmp_path / "data"
    cfg = PreprocessConfig(duplicate_threshold=1.0, subset={"test": 1})
    with pytest.raises(CorpusError, match=r"the test split has no pairs \(pairs per split: train 16, dev 2, test 0\); check data.subset"):
        preprocess(folder, out / "s.parquet", out / "v.parquet", {s: out / f"{s}.parquet" for s in SPLITS}, out / "m.json", cfg, progress=False)
    assert not out.exists()
