"""Shared inputs and checks of the bad-input sweep (tests/*/test_bad_input_<package>.py).

Each case there asserts the error type (or exit status), that the message names the culprit (file, line,
configuration key or value), and that no output nor temporary file is left behind; the two tolerated
inputs (an empty hypothesis, an out-of-vocabulary-only response) are checked against the behaviour
that docs/data.md ("Bad input") and docs/fidelity.md document. The sweep is split by the package it
checks:

 - data/test_bad_input_data.py: bad corpus checksum, truncated or corrupt archive, malformed dialogue
   line, corrupt pairs file, out-of-vocabulary-only response
 - teacher/test_bad_input_teacher.py: empty teacher hypothesis, corrupt hypothesis shard
 - models/test_bad_input_models.py: empty or out-of-vocabulary-only hypothesis in training, unknown model
   kind or data setting, missing or unreadable word vectors, corrupt setting file, GPU requested but absent
 - eval/test_bad_input_eval.py: empty or out-of-vocabulary-only decoded response, missing evaluation word
   vectors, corrupt Parquet input of the metrics
 - reval/test_bad_input_reval.py: bad checksum and unreadable annotations of the Reval judgements
 - workflow/test_bad_input_workflow.py: unknown model or data name and wrong config type in a dry run,
   GPU requested but absent in a script, unwritable output directory, folder outputs blocked by a file

This module holds what several of them use: the toy corpus (:data:`DIALOGUES`) and the data built from
it (:func:`build_data`), hypothesis shards, and the checks for leftover files.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from multiref.data.dailydialog import CORPUS_FILES
from multiref.data.preprocess import PreprocessConfig, preprocess
from multiref.io import write_parquet
from multiref.teacher.hypotheses import HYPOTHESIS_SCHEMA, shard_range

NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: 'cuda' is not an error here")

# Ten dialogues of topic 1: sessions 0-7 are train, 8 dev, 9 test. The test dialogue's last response
# uses only words that never occur in train: an out-of-vocabulary-only response.
DIALOGUES = [
    ["Hello , how are you ?", "I am fine , thanks .", "Good to hear ."],
    ["What time is it ?", "It is noon .", "Thanks a lot ."],
    ["Do you like tea ?", "Yes , I like tea .", "Me too ."],
    ["Where are you going ?", "I am going home .", "See you ."],
    ["Is it raining ?", "No , it is sunny .", "Good ."],
    ["Can you help me ?", "Sure , what is it ?", "Thanks ."],
    ["How was the trip ?", "It was fine .", "Good to hear ."],
    ["Are you hungry ?", "Yes , a lot .", "Me too ."],
    ["Hello , are you fine ?", "Yes , thanks .", "Good ."],
    ["Hello , how are you ?", "I am fine .", "Zyzzyva quokka ."],
]
OOV_RESPONSE = "zyzzyva quokka ."


def write_corpus_files(folder: Path, dialogues: list[list[str]]) -> Path:
    """The four DailyDialog files (acts all 'inform', emotions all 'neutral', topic 1)."""
    folder.mkdir(parents=True, exist_ok=True)
    bodies = {
        "text": "".join("".join(f"{u} __eou__" for u in d) + "\n" for d in dialogues),
        "act": "".join("1 " * len(d) + "\n" for d in dialogues),
        "emotion": "".join("0 " * len(d) + "\n" for d in dialogues),
        "topic": "1\n" * len(dialogues),
    }
    for key, body in bodies.items():
        (folder / CORPUS_FILES[key]).write_text(body, encoding="utf-8")
    return folder


def files_under(folder: Path) -> list[str]:
    """Every file below ``folder`` (temporaries included), relative; [] when it does not exist."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def stray_temporaries(folder: Path) -> list[str]:
    return [name for name in files_under(folder) if Path(name).name.startswith(".") or name.endswith(".tmp")]


def build_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Corpus archive, preprocessed data (vocabulary, pairs) and small word vectors: the body of each
    bad-input file's module-scoped ``data`` fixture (keys: archive, corpus, sessions, vocab, train, dev,
    test, kv)."""
    root = tmp_path_factory.mktemp("bad_input_data")
    folder = write_corpus_files(root / "src" / "ijcnlp_dailydialog", DIALOGUES)
    archive = root / "ijcnlp_dailydialog.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in CORPUS_FILES.values():
            zf.write(folder / name, f"ijcnlp_dailydialog/{name}")
    paths = {name: root / f"{name}.parquet" for name in ("sessions", "vocab", "train", "dev", "test")}
    preprocess(folder, paths["sessions"], paths["vocab"], {s: paths[s] for s in ("train", "dev", "test")},
               root / "preprocess.json", PreprocessConfig(duplicate_threshold=1.0), progress=False)
    from gensim.models import KeyedVectors

    words = ["hello", "how", "are", "you", "fine", "good", "tea", "thanks", "?", ","]  # no "."
    kv = KeyedVectors(vector_size=4, count=len(words))
    kv.add_vectors(words, np.random.default_rng(0).normal(size=(len(words), 4)).astype(np.float32))
    kv.save(str(root / "vectors.kv"))
    return paths | {"archive": archive, "corpus": folder, "kv": root / "vectors.kv"}


def _shard_table(pair_ids: list[int], n: int, texts: dict[tuple[int, int], str]) -> pa.Table:
    rows = [(p, i, texts.get((p, i), f"hypothesis {i} ."), 0 if texts.get((p, i)) == "" else 3)
            for p in pair_ids for i in range(n)]
    return pa.table({
        "pair_id": [r[0] for r in rows], "hyp_index": [r[1] for r in rows], "text": [r[2] for r in rows],
        "n_tokens": [r[3] for r in rows], "logprob": [-1.0] * len(rows), "finished": [True] * len(rows),
    }, schema=HYPOTHESIS_SCHEMA)


def _write_shards(train: Path, folder: Path, n: int, texts: dict[tuple[int, int], str], shards: int = 2) -> list[Path]:
    pair_ids = load_table_column(train, "pair_id")
    paths = []
    for index in range(shards):
        start, stop = shard_range(len(pair_ids), shards, index)
        path = folder / f"shard{index:04d}.parquet"
        write_parquet(_shard_table(pair_ids[start:stop], n, texts), path)
        paths.append(path)
    return paths


def load_table_column(path: Path, column: str) -> list[Any]:
    return pq.read_table(path, columns=[column]).column(column).to_pylist()


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _copy(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(src.read_bytes())
    return dst
