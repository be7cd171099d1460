"""The evaluation stage: training-word vectors and one run's metrics from its decoded Parquet."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from teacher_helpers import make_data

from multiref.errors import MultirefError
from multiref.eval.decode import DECODE_SCHEMA
from multiref.eval.run_metrics import prepare_eval_vectors, references, run_metrics, training_words
from multiref.io import write_parquet


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_data(tmp_path_factory.mktemp("eval"), n_dialogues=60)


def vector_file(path: Path, words: list[str]) -> Path:
    lines = [f"{w} " + " ".join(str((i * 7 + j) % 5 - 2 + 0.5) for j in range(4)) for i, w in enumerate(words)]
    path.write_text("\n".join(lines + ["notatrainingword 1 1 1 1"]) + "\n", encoding="utf-8")
    return path


def test_vectors_are_restricted_to_training_words(data: dict[str, Path], tmp_path: Path) -> None:
    words = sorted(training_words(data["sessions"], data["train"]))
    assert len(words) > 20
    info = prepare_eval_vectors(str(vector_file(tmp_path / "v.txt", words[:15])), data["sessions"], data["train"], tmp_path / "v.kv", tmp_path / "v.json")
    assert info == {"source": str(tmp_path / "v.txt"), "dim": 4, "word_table": "full", "training_words": len(words),
                    "training_words_with_vector": 15}
    assert json.loads((tmp_path / "v.json").read_text()) == info
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.json", "v.kv", "v.txt"]  # one file, no .npy beside it


def test_perfect_responses_score_one_and_mismatched_pairs_fail(data: dict[str, Path], tmp_path: Path) -> None:
    words = sorted(training_words(data["sessions"], data["train"]))
    prepare_eval_vectors(str(vector_file(tmp_path / "v.txt", words)), data["sessions"], data["train"], tmp_path / "v.kv", tmp_path / "v.json")
    refs = references(data["test"], data["vocab"])
    ids = list(refs)
    decode = tmp_path / "decode.parquet"
    texts = [" ".join(refs[p]) for p in ids]
    write_parquet(pa.table({"pair_id": ids, "hypothesis": texts, "n_tokens": [len(refs[p]) for p in ids]}, schema=DECODE_SCHEMA), decode, {"model": "oracle"})
    out = run_metrics(decode, data["test"], data["vocab"], tmp_path / "v.kv", tmp_path / "m.json", tmp_path / "pp.parquet", vectors_source="toy")
    assert out["pairs"] == len(ids) and out["model"] == "oracle" and out["word_vectors"] == "toy"
    per_pair = pq.read_table(tmp_path / "pp.parquet").to_pandas()
    long_enough = [len(refs[p]) >= 2 for p in ids]
    assert per_pair.loc[long_enough, "bleu2"].min() == pytest.approx(1.0)
    has_vector = [any(w in words for w in refs[p]) for p in ids]
    assert per_pair.loc[has_vector, ["average", "extrema", "greedy"]].min().min() == pytest.approx(1.0, abs=1e-6)
    assert out["distinct1"] == len({w for p in ids for w in refs[p]})
    write_parquet(pa.table({"pair_id": ids[:-1], "hypothesis": texts[:-1], "n_tokens": [1] * (len(ids) - 1)}, schema=DECODE_SCHEMA), decode)
    with pytest.raises(MultirefError, match="do not match the test set"):
        run_metrics(decode, data["test"], data["vocab"], tmp_path / "v.kv", tmp_path / "m2.json", tmp_path / "pp2.parquet")
    assert not (tmp_path / "m2.json").exists()


def test_word_table_counts_whole_training_utterances(tmp_path: Path) -> None:
    """The authors' table holds every token of the train split's whole utterances (their word-count file is
    counted before the 40-token truncation); `truncated` holds the pairs' text only. Dev words are in neither."""
    from multiref.data.dailydialog import Session
    from multiref.data.pairs import build_pairs, build_vocabulary
    from multiref.data.preprocess import sessions_table
    from multiref.errors import ConfigError

    long = " ".join([*(f"w{i}" for i in range(40)), "beyond", "forty"])  # 42 tokens: the last two are cut
    def session(sid: int, split: str, utterances: list[str]) -> Session:
        n = len(utterances)
        return Session(line=sid + 1, topic_id=1, topic="t", raw_utterances=utterances, acts=["inform"] * n, emotions=["neutral"] * n,
                       floors=["AB"[i % 2] for i in range(n)], utterances=utterances, split=split, session_id=sid)
    sessions = [session(0, "train", ["hello there", long, "bye ."]), session(1, "dev", ["devword only", "fine ."])]
    pq.write_table(sessions_table(sessions), tmp_path / "sessions.parquet")
    pairs = build_pairs(sessions[:1], build_vocabulary(sessions[0].utterances, 60), history_len=5, max_utterance_tokens=40)
    pq.write_table(pairs, tmp_path / "train.parquet")
    full = training_words(tmp_path / "sessions.parquet", tmp_path / "train.parquet")
    truncated = training_words(tmp_path / "sessions.parquet", tmp_path / "train.parquet", "truncated")
    assert full - truncated == {"beyond", "forty"} and truncated < full
    assert "devword" not in full and "hello" in truncated
    vectors = vector_file(tmp_path / "v.txt", ["beyond", "forty", "hello", "devword"])
    info = prepare_eval_vectors(str(vectors), tmp_path / "sessions.parquet", tmp_path / "train.parquet", tmp_path / "v.kv", tmp_path / "v.json")
    assert info["word_table"] == "full" and info["training_words_with_vector"] == 3
    info = prepare_eval_vectors(str(vectors), tmp_path / "sessions.parquet", tmp_path / "train.parquet", tmp_path / "t.kv", tmp_path / "t.json",
                                word_table="truncated")
    assert info["word_table"] == "truncated" and info["training_words_with_vector"] == 1
    with pytest.raises(ConfigError, match="eval.word_table.*'whole'"):
        training_words(tmp_path / "sessions.parquet", tmp_path / "train.parquet", "whole")
