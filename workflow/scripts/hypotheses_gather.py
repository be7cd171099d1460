"""Snakemake adapter: validate every hypothesis shard and write the manifest."""

from pathlib import Path

import _src  # noqa: F401  (puts src/ on sys.path)

from multiref.teacher.hypotheses import gather
from multiref.workflow import step

with step(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    manifest = gather(
        [Path(p) for p in snakemake.input.shards],  # noqa: F821
        Path(snakemake.input.train),  # noqa: F821
        snakemake.params.n,  # noqa: F821
        Path(snakemake.output.manifest),  # noqa: F821
    )
    log.info(
        "%d hypotheses for %d pairs; %d empty, %d unfinished",
        manifest["rows"],
        manifest["pairs"],
        manifest["empty_hypotheses"],
        manifest["unfinished_hypotheses"],
    )
