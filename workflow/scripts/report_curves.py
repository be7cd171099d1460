"""Snakemake adapter: the training curves of the runs and the teacher (report plot)."""

from pathlib import Path

import _src  # noqa: F401  (puts src/ on sys.path)

from multiref.report.stage import write_training_curves
from multiref.workflow import step

with step(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    inp, out, params = snakemake.input, snakemake.output, snakemake.params  # noqa: F821
    curves = dict(zip(params.labels, inp.curves, strict=True))
    write_training_curves(curves, Path(out.png))
    log.info("training curves of %d runs", len(curves))
