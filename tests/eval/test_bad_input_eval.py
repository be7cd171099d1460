"""Bad input of the metrics (multiref.eval.run_metrics): an empty decoded response (tolerated: scores 0 and is
counted), missing evaluation word vectors, a corrupt Parquet input (decoded responses, vocabulary, test
pairs), and out-of-vocabulary-only sentences (tolerated: 0 in the embedding metrics).

Part of the bad-input sweep (shared inputs in tests/bad_input_helpers.py): each case asserts the error
type, that the message names the culprit, and that no output is left behind."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from bad_input_helpers import OOV_RESPONSE, _copy, _truncate, build_data, files_under, load_table_column

from multiref.errors import ConfigError, MultirefError
from multiref.eval.run_metrics import prepare_eval_vectors, run_metrics
from multiref.io import write_parquet


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Corpus archive, preprocessed data (vocabulary, pairs) and small word vectors, built once per module."""
    return build_data(tmp_path_factory)


def _decode_file(path: Path, hypotheses: dict[int, str]) -> Path:
    write_parquet(pa.table({
        "pair_id": pa.array(list(hypotheses), pa.int64()),
        "hypothesis": list(hypotheses.values()),
        "n_tokens": pa.array([len(h.split()) for h in hypotheses.values()], pa.int32()),
    }), path, {"model": "hred"})
    return path


# ---------------------------------------------------------------------------------------------------------------
# Empty decoded hypothesis (tolerated: scores 0)


def test_empty_decoded_hypothesis_scores_zero(data: dict[str, Path], tmp_path: Path) -> None:
    test_ids = load_table_column(data["test"], "pair_id")
    hyps = {p: "good to hear ." for p in test_ids} | {test_ids[0]: ""}
    decode = _decode_file(tmp_path / "decode.parquet", hyps)
    summary = run_metrics(decode, data["test"], data["vocab"], data["kv"], tmp_path / "metrics.json",
                          tmp_path / "per_pair.parquet", variant="authors")
    assert summary["empty_hypotheses"] == 1
    per_pair = {row["pair_id"]: row for row in pq.read_table(tmp_path / "per_pair.parquet").to_pylist()}
    assert {k: per_pair[test_ids[0]][k] for k in ("bleu2", "average", "extrema", "greedy")} == dict.fromkeys(
        ("bleu2", "average", "extrema", "greedy"), 0.0)


# ---------------------------------------------------------------------------------------------------------------
# Missing word vectors


@pytest.mark.parametrize("source", ["{tmp}/nowhere/GoogleNews-vectors-negative300.bin.gz", "missing-vectors.kv"],
                         ids=["path", "relative"])
def test_missing_evaluation_word_vectors(data: dict[str, Path], tmp_path: Path, source: str) -> None:
    source = source.format(tmp=tmp_path)
    out = tmp_path / "eval_vectors"
    with pytest.raises(ConfigError, match=rf"word-vector file {re.escape(str(source))} does not exist"):
        prepare_eval_vectors(source, data["sessions"], data["train"], out / "vectors.kv", out / "vectors.json")
    assert files_under(out) == []


# ---------------------------------------------------------------------------------------------------------------
# Corrupt Parquet file: the inputs of the metrics


@pytest.mark.parametrize("culprit", ["decode", "vocab", "test"])
def test_corrupt_parquet_input_stops_the_metrics(data: dict[str, Path], tmp_path: Path, culprit: str) -> None:
    inputs = {
        "decode": _decode_file(tmp_path / "in" / "decode.parquet", dict.fromkeys(load_table_column(data["test"], "pair_id"), "good .")),
        "vocab": _copy(data["vocab"], tmp_path / "in" / "vocab.parquet"),
        "test": _copy(data["test"], tmp_path / "in" / "test.parquet"),
    }
    _truncate(inputs[culprit])
    out = tmp_path / "out"
    with pytest.raises(MultirefError, match=rf"{re.escape(str(inputs[culprit]))}: cannot read this Parquet file"):
        run_metrics(inputs["decode"], inputs["test"], inputs["vocab"], data["kv"], out / "metrics.json", out / "per_pair.parquet")
    assert files_under(out) == []


# ---------------------------------------------------------------------------------------------------------------
# Out-of-vocabulary-only sentences (tolerated: embedding similarities 0)


def test_oov_only_sentences_score_zero_in_the_embedding_metrics(data: dict[str, Path], tmp_path: Path) -> None:
    test_ids = load_table_column(data["test"], "pair_id")
    responses = dict(zip(test_ids, load_table_column(data["test"], "response"), strict=True))
    oov_pair = next(p for p, r in responses.items() if r == OOV_RESPONSE)  # reference: <unk> <unk> .
    other = next(p for p in test_ids if p != oov_pair)
    # "." has a vector: keep it out of both sides so that each side is out of vocabulary only
    hyps = dict.fromkeys(test_ids, "hello , how are you ?") | {oov_pair: "good thanks", other: "florp blorp"}
    decode = _decode_file(tmp_path / "decode.parquet", hyps)
    run_metrics(decode, data["test"], data["vocab"], data["kv"], tmp_path / "metrics.json", tmp_path / "per_pair.parquet")
    per_pair = {row["pair_id"]: row for row in pq.read_table(tmp_path / "per_pair.parquet").to_pylist()}
    for pair in (oov_pair, other):  # an all-unknown reference, an all-unknown hypothesis
        assert {k: per_pair[pair][k] for k in ("average", "extrema", "greedy")} == dict.fromkeys(("average", "extrema", "greedy"), 0.0)
