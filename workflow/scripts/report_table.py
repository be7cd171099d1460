"""Snakemake adapter: one results table as an HTML page for the report."""

from pathlib import Path

import _src  # noqa: F401  (puts src/ on sys.path)

from multiref.report.stage import write_table_page
from multiref.workflow import step

with step(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    inp, out, params = snakemake.input, snakemake.output, snakemake.params  # noqa: F821
    write_table_page(Path(inp.csv), params.title, params.caption, Path(out.html))
    log.info("rendered %s", inp.csv)
