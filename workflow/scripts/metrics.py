"""Snakemake adapter: the automated metrics of one decoded run."""

from pathlib import Path

import _src  # noqa: F401  (puts src/ on sys.path)

from multiref.eval.run_metrics import run_metrics
from multiref.workflow import step

with step(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    inp, out, params = snakemake.input, snakemake.output, snakemake.params  # noqa: F821
    summary = run_metrics(
        Path(inp.decode), Path(inp.test), Path(inp.vocab), Path(inp.vectors), Path(out.metrics), Path(out.per_pair),
        variant=params.variant, vectors_source=params.source, word_table=params.word_table,
    )
    log.info("metrics: %s", summary)
