"""Snakemake adapter: sample responses of every run on a few seeded test contexts (report page)."""

from pathlib import Path

import _src  # noqa: F401  (puts src/ on sys.path)

from multiref.report.stage import write_samples
from multiref.workflow import step

with step(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    inp, out, params = snakemake.input, snakemake.output, snakemake.params  # noqa: F821
    decodes = dict(zip(params.labels, inp.decodes, strict=True))
    ids = write_samples(Path(inp.test), decodes, Path(out.html), params.n, params.seed)
    log.info("samples of %d runs on test pairs %s", len(decodes), ids)
