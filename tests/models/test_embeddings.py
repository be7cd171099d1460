"""Initial word embeddings from pretrained vectors (the authors' GloVe Twitter-200 init)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from multiref.errors import ConfigError, MultirefError
from multiref.models import registry
from multiref.models.embeddings import (
    apply_embeddings,
    pretrained_embeddings,
    word_embeddings,
    write_initial_embeddings,
)
from multiref.models.hred import HRED, HREDConfig
from multiref.vectors import load_vectors

WORDS = ["<pad>", "<s>", "</s>", "<unk>", "hello", "there", "zyzzyva"]


def glove_file(path: Path, header: bool) -> Path:
    lines = ["hello 1.0 2.0 3.0", "there -1.0 0.5 0.25", "<unk> 9 9 9", "<pad> 7 7 7"]
    path.write_text(("4 3\n" if header else "") + "\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("header", [False, True], ids=["glove-text", "word2vec-text"])
def test_words_take_their_vectors_and_others_zero(tmp_path: Path, header: bool) -> None:
    vectors = load_vectors(str(glove_file(tmp_path / "v.txt", header)))
    matrix, hits = pretrained_embeddings(WORDS, vectors, pad_id=0)
    assert matrix.shape == (7, 3) and hits == 3  # hello, there, <unk>; never the padding row
    np.testing.assert_array_equal(matrix[4], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(matrix[5], [-1.0, 0.5, 0.25])
    assert not matrix[0].any() and not matrix[6].any() and not matrix[1].any()


def test_model_starts_from_the_matrix_and_the_output_layer_is_tied(tmp_path: Path) -> None:
    info = write_initial_embeddings(WORDS, 0, str(glove_file(tmp_path / "v.txt", False)), tmp_path / "m.npy", tmp_path / "m.json")
    assert info == {"source": str(tmp_path / "v.txt"), "vocabulary": 7, "with_vector": 3, "dim": 3}
    model = HRED(HREDConfig(vocab_size=7, embedding_dim=3, floor_dim=2, hidden=4))
    apply_embeddings(model, np.load(tmp_path / "m.npy"), "model 'tiny'")
    assert torch.equal(model.embedding.weight[4], torch.tensor([1.0, 2.0, 3.0]))
    assert model.decoder.classifier.weight is model.embedding.weight
    with pytest.raises(ConfigError, match=r"model 'big'.*\(7, 3\).*\(7, 8\).*embedding_dim"):
        apply_embeddings(HRED(HREDConfig(vocab_size=7, embedding_dim=8, floor_dim=2, hidden=4)), np.load(tmp_path / "m.npy"), "model 'big'")


def test_without_vectors_embeddings_are_uniform_and_padding_is_zero() -> None:
    torch.manual_seed(0)
    weight = HRED(HREDConfig(vocab_size=500, embedding_dim=20, floor_dim=2, hidden=4)).embedding.weight
    assert not weight[0].any() and weight.abs().max() <= 1 and weight[1:].abs().mean() > 0.4  # U(-1, 1): mean |w| = 0.5


def test_bad_vector_sources_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_vectors(str(tmp_path / "missing.txt"))
    bad = tmp_path / "bad.txt"
    bad.write_text("hello 1.0 x\nthere 2.0\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="bad.txt: not a word-vector file"):
        load_vectors(str(bad))
    assert not (tmp_path / "m.npy").exists()


def test_offline_download_says_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import gensim.downloader

    monkeypatch.setattr(gensim.downloader, "BASE_DIR", str(tmp_path / "gensim-data"))
    with pytest.raises(MultirefError, match="glove-twitter-200.*set train.word_vectors to the local file"):
        load_vectors("glove-twitter-200")


def tiny_spec(kind: str) -> dict:
    """A small configuration entry of each model kind (embedding size 3, as the vectors of glove_file)."""
    spec = {"kind": kind, "embedding_dim": 3, "hidden": 4}
    if kind not in ("mirror", "seq2seq_attn"):
        spec["floor_dim"] = 2
    if kind in ("vhred", "vhred_mbow") or kind == "mirror":
        spec["latent_dim"] = 2
    return spec


@pytest.mark.parametrize("kind", sorted(registry.KINDS))
def test_every_model_kind_takes_initial_vectors_in_every_word_table(kind: str, tmp_path: Path) -> None:
    """Regression (issue 14): Seq2SeqAttn has a source and a target table and no ``embedding``; with
    train.word_vectors set, its training (and MMI's backward model) crashed before its first step."""
    write_initial_embeddings(WORDS, 0, str(glove_file(tmp_path / "v.txt", False)), tmp_path / "m.npy", tmp_path / "m.json")
    model = registry.build("tiny", tiny_spec(kind), len(WORDS), {"pad_id": 0, "bos_id": 1, "eos_id": 2})
    apply_embeddings(model, np.load(tmp_path / "m.npy"), "model 'tiny'")
    tables = word_embeddings(model)
    expected = {"seq2seq_attn": 2}.get(kind, 1)  # separate source and target tables unless share_embeddings
    assert len(tables) == expected
    for table in tables:
        assert torch.equal(table.weight[4], torch.tensor([1.0, 2.0, 3.0])) and not table.weight[0].any()
    names = {n for n, p in model.named_parameters() if any(p is t.weight for t in tables)}
    assert names, "the initialised tables are the model's own parameters"


def test_shared_seq2seq_embeddings_are_one_table(tmp_path: Path) -> None:
    model = registry.build("tiny", tiny_spec("seq2seq_attn") | {"share_embeddings": True}, len(WORDS), {"pad_id": 0, "bos_id": 1, "eos_id": 2})
    assert len(word_embeddings(model)) == 1


def test_a_model_without_word_tables_is_named() -> None:
    with pytest.raises(ConfigError, match="Linear has no word embeddings"):
        apply_embeddings(torch.nn.Linear(2, 2), np.zeros((2, 2), dtype=np.float32), "model 'x'")


def test_seq2seq_attn_trains_from_initial_word_vectors(tmp_path: Path) -> None:
    """Regression (issue 14): a Seq2SeqAttn run with train.word_vectors trains, and starts from the vectors."""
    from teacher_helpers import make_data

    from multiref.data.settings import write_setting
    from multiref.models.data import load_vocabulary
    from multiref.models.run import train_run

    data = make_data(tmp_path / "data", n_dialogues=24)
    write_setting(data["train"], "gt", 0, 2, tmp_path / "gt.parquet")
    vocab = load_vocabulary(data["vocab"])
    words = list(vocab.tokens)
    vectors = tmp_path / "v.txt"
    vectors.write_text("".join(f"{w} {i % 7 / 7:.3f} {i % 5 / 5:.3f} 0.5\n" for i, w in enumerate(words[9:], 9)), encoding="utf-8")
    write_initial_embeddings(words, vocab.id("<pad>"), str(vectors), tmp_path / "m.npy", tmp_path / "m.json")
    train = {"device": "cpu", "batch_size": 8, "eval_batch_size": 16, "lr": 1e-3, "max_grad_norm": 1.0, "decay": 0.75,
             "patience": 3, "validate_every": 5, "min_lr": 1e-7, "seed": 3, "keep": "last", "log_every": 5,
             "epochs": 1, "example_budget": False}
    spec = {"kind": "seq2seq_attn", "embedding_dim": 3, "hidden": 4, "layers": 1, "dropout": 0.0}
    out = tmp_path / "run"
    info = train_run("s2s", spec, train, tmp_path / "gt.parquet", data["train"], data["dev"], data["vocab"], None,
                     out / "model.pt", out / "log.csv", out / "info.json", out / "work", progress=False,
                     init_embeddings=tmp_path / "m.npy")
    assert info["steps"] > 0 and info["init_embeddings"] == str(tmp_path / "m.npy")
    model, _ = registry.load(out / "model.pt")
    start = torch.from_numpy(np.load(tmp_path / "m.npy"))
    for table in (model.src_embedding, model.tgt_embedding):  # trained from the vectors: close to them, not equal
        assert 0 < (table.weight - start).abs().max() < 0.1
