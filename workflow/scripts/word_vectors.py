"""Snakemake adapter: the initial word-embedding matrix of the vocabulary from pretrained vectors."""

from pathlib import Path

import _src  # noqa: F401  (puts src/ on sys.path)

from multiref.models.data import load_vocabulary
from multiref.models.embeddings import write_initial_embeddings
from multiref.workflow import step

with step(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    inp, out = snakemake.input, snakemake.output  # noqa: F821
    vocab = load_vocabulary(Path(inp.vocab))
    info = write_initial_embeddings(list(vocab.tokens), vocab.id("<pad>"), snakemake.params.source, Path(out.matrix), Path(out.info))  # noqa: F821
    log.info("initial embeddings: %s", info)
