"""Snakemake adapter: Table 8 (corpus statistics) as CSV and LaTeX."""

import _src  # noqa: F401  (puts src/ on sys.path)
from pathlib import Path

from multiref.tables import table8, table8_latex, write_table
from multiref.workflow import step

with step(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    inp, out = snakemake.input, snakemake.output  # noqa: F821
    real = snakemake.params.source == "dailydialog"  # noqa: F821
    df = table8(Path(inp.sessions), {s: Path(inp[s]) for s in ("train", "dev", "test")}, with_paper=real)
    caption = (
        "Corpus statistics (DailyDialog), measured by this pipeline; paper rows: Zhao et al. (2021), Table 8."
        if real
        else "Corpus statistics of the synthetic demo corpus (no paper reference)."
    )
    write_table(df, table8_latex(df, caption), Path(out.csv), Path(out.tex))
    log.info("table 8:\n%s", df.to_string(index=False))
