"""Initial word embeddings from pretrained vectors (the authors' GloVe Twitter-200 init)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from multiref.errors import ConfigError, MultirefError
from multiref.models.embeddings import apply_embeddings, load_vectors, pretrained_embeddings, write_initial_embeddings
from multiref.models.hred import HRED, HREDConfig

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
