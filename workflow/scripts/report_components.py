"""Snakemake adapter: one mixture-prior run's responses per latent variable (report page)."""

from pathlib import Path

import _src  # noqa: F401  (puts src/ on sys.path)

from multiref.report.stage import write_component_samples
from multiref.workflow import step

with step(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    inp, out, params, wc = snakemake.input, snakemake.output, snakemake.params, snakemake.wildcards  # noqa: F821
    pi = write_component_samples(
        Path(inp.by_component), Path(inp.test), f"{wc.model}/{wc.data}", Path(out.html), params.n, params.seed
    )
    log.info("per-variable samples, pi_mean %s", pi)
