"""Snakemake adapter: the report's methods page (RST and HTML) from the configuration."""

from pathlib import Path

import _src  # noqa: F401  (puts src/ on sys.path)

from multiref.report.stage import write_methods
from multiref.workflow import step

with step(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    out, params = snakemake.output, snakemake.params  # noqa: F821
    write_methods(snakemake.config, params.runs, Path(params.docs), Path(out.rst), Path(out.html))  # noqa: F821
    log.info("methods page of %d runs", len(params.runs))
