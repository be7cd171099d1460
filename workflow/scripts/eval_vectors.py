"""Snakemake adapter: the word vectors of the embedding metrics, restricted to the training words."""

from pathlib import Path

import _src  # noqa: F401  (puts src/ on sys.path)

from multiref.eval.run_metrics import prepare_eval_vectors
from multiref.workflow import step

with step(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    info = prepare_eval_vectors(
        snakemake.params.source, Path(snakemake.input.train), Path(snakemake.output.kv), Path(snakemake.output.info)  # noqa: F821
    )
    log.info("evaluation vectors: %s", info)
