"""Snakemake adapter: each metric against the number of hypotheses per model (report plot)."""

from pathlib import Path

import _src  # noqa: F401  (puts src/ on sys.path)

from multiref.report.collect import RunRef
from multiref.report.stage import write_metric_trends
from multiref.workflow import step

with step(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    out, params = snakemake.output, snakemake.params  # noqa: F821
    runs = [RunRef(m, d, Path(t)) for m, d, t in params.runs]
    table = write_metric_trends(runs, [Path(out.png), Path(out.svg)])
    log.info("metric trends of %d runs:\n%s", len(runs), table.to_string(index=False))
