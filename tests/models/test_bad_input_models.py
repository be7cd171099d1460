"""Bad input of the models' training (multiref.models): an empty or out-of-vocabulary-only teacher hypothesis
(tolerated: no target token, or <unk>), an unknown model kind or data setting, missing or unreadable word
vectors for the initial embeddings, a corrupt data-setting file, and a GPU requested but absent (for the
teacher and the models).

Part of the bad-input sweep (shared inputs in tests/bad_input_helpers.py): each case asserts the error
type, that the message names the culprit, and that no output is left behind."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pytest
import torch
from bad_input_helpers import NO_GPU, _truncate, _write_shards, build_data, files_under, load_table_column

from multiref.data.settings import parse_setting, write_setting
from multiref.errors import ConfigError, MultirefError
from multiref.io import write_parquet
from multiref.models import registry
from multiref.models.data import collate, load_vocabulary, setting_examples
from multiref.models.embeddings import write_initial_embeddings
from multiref.models.run import hypothesis_texts, train_run
from multiref.teacher.build import build_teacher
from multiref.teacher.hypotheses import gather


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Corpus archive, preprocessed data (vocabulary, pairs) and small word vectors, built once per module."""
    return build_data(tmp_path_factory)


# ---------------------------------------------------------------------------------------------------------------
# Empty hypothesis (tolerated: adds nothing to training)


def test_empty_hypothesis_adds_nothing_to_training(data: dict[str, Path], tmp_path: Path) -> None:
    torch.set_num_threads(1)
    first = load_table_column(data["train"], "pair_id")[0]
    texts = {(p, i): "" for p in load_table_column(data["train"], "pair_id") for i in range(2)}
    texts.pop((first, 0))  # pair `first`: hypothesis 0 is a real response, hypothesis 1 is empty
    shards = _write_shards(data["train"], tmp_path / "hyp", 2, texts)
    gather(shards, data["train"], 2, tmp_path / "hyp" / "manifest.json")
    hypotheses = hypothesis_texts(tmp_path / "hyp" / "manifest.json", 2)  # what a training run reads
    setting = tmp_path / "hyp2.parquet"
    write_parquet(
        pa.table({"pair_id": [first, first], "source": ["hyp", "hyp"], "hyp_index": pa.array([0, 1], pa.int16())}),
        setting,
    )
    vocab = load_vocabulary(data["vocab"])
    full, empty = setting_examples(setting, data["train"], hypotheses, vocab)
    assert empty.response == ()  # encodes to no ids at all, as the authors' tokenizer
    assert len(full.response) > 2
    model = registry.build("hred", {"kind": "hred", "embedding_dim": 8, "floor_dim": 4, "hidden": 8}, len(vocab),
                           {"pad_id": vocab.id("<pad>"), "bos_id": vocab.id("<s>"), "eos_id": vocab.id("</s>")}).eval()
    with torch.no_grad():
        both = model(*collate([full, empty], vocab.id("<pad>")))
        alone = model(*collate([full], vocab.id("<pad>")))
    assert both["n_tokens"] == alone["n_tokens"]
    assert torch.allclose(both["nll_sum"], alone["nll_sum"])
    assert both["token_nll"][1].abs().sum() == 0


# ---------------------------------------------------------------------------------------------------------------
# Unknown model kind or data setting


def test_unknown_model_kind_or_data_setting_in_the_library(data: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"model 'x': unknown kind 'transformer' \(known: \["):
        registry.build("x", {"kind": "transformer"}, 20, {"pad_id": 0, "bos_id": 1, "eos_id": 2})
    with pytest.raises(ConfigError, match=r"unknown data setting 'gold': expected 'gt', 'hypK' or 'gt\+hypK'"):
        parse_setting("gold")
    out = tmp_path / "settings" / "hyp7.parquet"
    with pytest.raises(ConfigError, match=r"data setting 'hyp7' has no epoch budget in the paper's Table 9"):
        write_setting(data["train"], "hyp7", 20, 2, out)
    assert files_under(tmp_path / "settings") == []


# ---------------------------------------------------------------------------------------------------------------
# Missing or unreadable word vectors


@pytest.mark.parametrize("source", ["{tmp}/nowhere/glove.twitter.200d.txt", "missing-vectors.kv"], ids=["path", "relative"])
def test_missing_training_word_vectors(data: dict[str, Path], tmp_path: Path, source: str) -> None:
    source = source.format(tmp=tmp_path)
    out = tmp_path / "word_vectors"
    vocab = load_vocabulary(data["vocab"])
    with pytest.raises(ConfigError, match=rf"word-vector file {re.escape(str(source))} does not exist"):
        write_initial_embeddings(list(vocab.tokens), vocab.id("<pad>"), source, out / "init.npy", out / "init.json")
    assert files_under(out) == []


def test_unreadable_word_vector_file(data: dict[str, Path], tmp_path: Path) -> None:
    garbage = tmp_path / "vectors.bin"
    garbage.write_bytes(b"\x00\x01 not vectors\n" * 3)
    vocab = load_vocabulary(data["vocab"])
    out = tmp_path / "word_vectors"
    with pytest.raises(ConfigError, match=rf"{re.escape(str(garbage))}: not a word-vector file gensim can read"):
        write_initial_embeddings(list(vocab.tokens), vocab.id("<pad>"), str(garbage), out / "init.npy", out / "init.json")
    assert files_under(out) == []


# ---------------------------------------------------------------------------------------------------------------
# Corrupt Parquet file: the data setting read by training


def test_corrupt_setting_file_stops_training(data: dict[str, Path], tmp_path: Path) -> None:
    setting = tmp_path / "settings" / "gt.parquet"
    write_setting(data["train"], "gt", 5, 2, setting)
    _truncate(setting)
    run = tmp_path / "runs" / "hred" / "gt"
    with pytest.raises(MultirefError, match=rf"{re.escape(str(setting))}: cannot read this Parquet file"):
        train_run("hred", {"kind": "hred"}, {"device": "cpu"}, setting, data["train"], data["dev"], data["vocab"], None,
                  run / "model.pt", run / "log.csv", run / "info.json", tmp_path / "work", progress=False)
    assert files_under(tmp_path / "runs") == [] and files_under(tmp_path / "work") == []


# ---------------------------------------------------------------------------------------------------------------
# Out-of-vocabulary-only hypothesis (tolerated: trains on <unk>)


def test_oov_only_hypothesis_trains_on_unk(data: dict[str, Path], tmp_path: Path) -> None:
    first = load_table_column(data["train"], "pair_id")[0]
    setting = tmp_path / "hyp1.parquet"
    write_parquet(pa.table({"pair_id": [first], "source": ["hyp"], "hyp_index": pa.array([0], pa.int16())}), setting)
    vocab = load_vocabulary(data["vocab"])
    (example,) = setting_examples(setting, data["train"], {(first, 0): "zyzzyva quokka"}, vocab)
    assert example.response == (vocab.id("<s>"), vocab.id("<unk>"), vocab.id("<unk>"), vocab.id("</s>"))


# ---------------------------------------------------------------------------------------------------------------
# GPU requested but absent


@NO_GPU
def test_gpu_requested_but_absent_for_the_teacher_and_the_models(data: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"^teacher.device: 'cuda:1' requested but no CUDA GPU is available"):
        build_teacher({"device": "cuda:1"}, data["sessions"], data["train"], data["dev"], out / "teacher",
                      out / "curve.csv", out / "metrics.json", tmp_path / "work" / "teacher", 40, progress=False)
    with pytest.raises(ConfigError, match=r"^train.device: 'cuda' requested but no CUDA GPU is available"):
        train_run("hred", {"kind": "hred"}, {"device": "cuda"}, tmp_path / "gt.parquet", data["train"], data["dev"],
                  data["vocab"], None, out / "model.pt", out / "log.csv", out / "info.json", tmp_path / "work" / "run",
                  progress=False)
    assert files_under(out) == [] and files_under(tmp_path / "work") == []
