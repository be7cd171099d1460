"""The paper's tables from the pipeline's outputs: Table 8 (:mod:`.corpus`), Tables 1, 2, 4, 5 and the demo's
synthetic-distance table (:mod:`.results`), each as CSV (reference columns, intervals) and LaTeX."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from multiref.io import atomic_path


def write_table(df: pd.DataFrame, latex: str, csv_path: Path, tex_path: Path) -> None:
    """Write the CSV and LaTeX of a table atomically."""
    with atomic_path(csv_path) as tmp:
        df.to_csv(tmp, index=False)
    with atomic_path(tex_path) as tmp:
        tmp.write_text(latex, encoding="utf-8")
