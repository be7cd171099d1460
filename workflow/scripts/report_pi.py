"""Snakemake adapter: mean mixture weight per latent variable of one run (report plot)."""

from pathlib import Path

import _src  # noqa: F401  (puts src/ on sys.path)

from multiref.report.stage import write_pi_bar
from multiref.workflow import step

with step(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    inp, out, wc = snakemake.input, snakemake.output, snakemake.wildcards  # noqa: F821
    pi = write_pi_bar(Path(inp.by_component), f"{wc.model}/{wc.data}", Path(out.png))
    log.info("pi_mean: %s", pi)
