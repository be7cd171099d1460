"""Snakemake adapter: Table 8 (corpus statistics) as CSV and LaTeX."""

import json
from pathlib import Path

import _src  # noqa: F401  (puts src/ on sys.path)

from multiref.tables import write_table
from multiref.tables.corpus import table8, table8_caption, table8_latex
from multiref.workflow import step

with step(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    inp, out = snakemake.input, snakemake.output  # noqa: F821
    real = snakemake.params.source == "dailydialog"  # noqa: F821
    subset = json.loads(Path(inp.manifest).read_text(encoding="utf-8")).get("subset")
    df = table8(Path(inp.sessions), {s: Path(inp[s]) for s in ("train", "dev", "test")}, with_paper=real, subset=bool(subset))
    write_table(df, table8_latex(df, table8_caption(real, subset)), Path(out.csv), Path(out.tex))
    log.info("table 8:\n%s", df.to_string(index=False))
