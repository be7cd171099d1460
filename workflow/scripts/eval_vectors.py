"""Snakemake adapter: the word vectors of the embedding metrics, restricted to the training words (eval.word_table)."""

from pathlib import Path

import _src  # noqa: F401  (puts src/ on sys.path)

from multiref.eval.run_metrics import prepare_eval_vectors
from multiref.workflow import step

with step(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    inp, out, params = snakemake.input, snakemake.output, snakemake.params  # noqa: F821
    info = prepare_eval_vectors(
        params.source, Path(inp.sessions), Path(inp.train), Path(out.kv), Path(out.info), word_table=params.word_table
    )
    log.info("evaluation vectors: %s", info)
