"""Pretrained initial word embeddings of the dialogue models, as the authors' ``init_word_embedding``.

With pretrained vectors (the authors: GloVe Twitter-200), a vocabulary word takes its vector and a
word without one a zero vector (without them, :class:`multiref.models.hred.HRED` starts from
uniform(-1, 1)). The padding row is zero either way. Vectors come from a local file (word2vec text or binary, GloVe text without a header, or
a gensim ``KeyedVectors`` file) or, online, from a gensim-data name such as ``glove-twitter-200``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from multiref.errors import ConfigError


def pretrained_embeddings(words: Sequence[str], vectors: Any, pad_id: int) -> tuple[np.ndarray, int]:
    """The [V, D] matrix for ``words`` (in id order): a word's vector, zeros for a word without one and
    for padding; also how many words had a vector."""
    rows = np.zeros((len(words), vectors.vector_size), dtype=np.float32)
    hits = 0
    for i, word in enumerate(words):
        if i != pad_id and word in vectors.key_to_index:
            rows[i] = vectors[word]
            hits += 1
    return rows, hits


def word_embeddings(model: torch.nn.Module) -> list[torch.nn.Embedding]:
    """The word-embedding tables of a model that take the initial vectors: what its ``word_embeddings()``
    returns (each table once: a table shared by encoder and decoder, or tied to the output layer,
    counts once). A model without that method takes none: an error naming its class."""
    tables = getattr(model, "word_embeddings", None)
    if not callable(tables):
        raise ConfigError(f"{type(model).__name__} has no word embeddings to initialise (no word_embeddings())")
    unique: list[torch.nn.Embedding] = []
    for table in tables():
        if not any(table is seen for seen in unique):
            unique.append(table)
    return unique


def apply_embeddings(model: torch.nn.Module, matrix: np.ndarray, where: str) -> None:
    """Copy an initial embedding matrix into every word-embedding table of ``model``
    (:func:`word_embeddings`: HRED's one table tied to its output layer, Seq2SeqAttn's source and target
    tables, Mirror's shared table)."""
    tables = word_embeddings(model)
    for table in tables:
        if tuple(matrix.shape) != tuple(table.weight.shape):
            raise ConfigError(
                f"{where}: initial embeddings of shape {tuple(matrix.shape)} do not fit the model's "
                f"{tuple(table.weight.shape)} (vocabulary size x embedding_dim); set the model's embedding_dim to "
                "the vectors' size"
            )
    with torch.no_grad():
        for table in tables:
            table.weight.copy_(torch.from_numpy(matrix))


def write_initial_embeddings(words: Sequence[str], pad_id: int, source: str, matrix_path: Path, info_path: Path) -> dict[str, Any]:
    """Load ``source``, write the vocabulary's matrix (``.npy``) and a summary (JSON), atomically."""
    from multiref.io import atomic_path, write_json
    from multiref.vectors import load_vectors

    matrix, hits = pretrained_embeddings(words, load_vectors(source), pad_id)
    with atomic_path(matrix_path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, matrix)
    info = {"source": source, "vocabulary": len(words), "with_vector": hits, "dim": int(matrix.shape[1])}
    write_json(info, info_path)
    return info
