"""Snakemake adapter: the sheet, HTML page and key of the Mirror paper's pairwise human evaluation (§4.4)."""

from pathlib import Path

import _src  # noqa: F401  (puts src/ on sys.path)

from multiref.mirror.human_sheet import label_decodes, make_sheet, write_sheet
from multiref.workflow import step

with step(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    inp, out, params = snakemake.input, snakemake.output, snakemake.params  # noqa: F821
    decodes = label_decodes(params.systems, list(inp.decodes))
    pairs = [tuple(pair) for pair in params.pairs]
    sheet, key = make_sheet(Path(inp.test), decodes, pairs, dialogues=params.dialogues, seed=params.seed)
    write_sheet(sheet, key, Path(out.csv), Path(out.html), Path(out.key))
    log.info(
        "human evaluation sheet: %d items over %d method pairs (%s), seed %s -> %s",
        len(sheet), len(pairs), "; ".join(key["method_pair"].unique()), params.seed, out.csv,
    )
