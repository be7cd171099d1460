"""Snakemake adapter: generate the synthetic DailyDialog-format archive and its true distribution."""

from pathlib import Path

import _src  # noqa: F401  (puts src/ on sys.path)

from multiref.data.synthetic import write_archive
from multiref.workflow import step

with step(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    p = snakemake.params  # noqa: F821
    info = write_archive(
        Path(snakemake.output.archive),  # noqa: F821
        Path(snakemake.output.distribution),  # noqa: F821
        n_dialogues=p.n_dialogues,
        seed=p.seed,
        max_turns=p.max_turns,
    )
    log.info("synthetic corpus: %s", info)
