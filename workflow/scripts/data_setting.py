"""Snakemake adapter: materialise one training data setting (gt, hypK, gt+hypK) as an index."""

from pathlib import Path

import _src  # noqa: F401  (puts src/ on sys.path)

from multiref.data.settings import write_setting
from multiref.workflow import step

with step(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    meta = write_setting(
        Path(snakemake.input.train),  # noqa: F821
        snakemake.wildcards.setting,  # noqa: F821
        snakemake.params.available,  # noqa: F821
        snakemake.params.gt_copies,  # noqa: F821
        Path(snakemake.output.index),  # noqa: F821
    )
    log.info("setting: %s", meta)
