"""The paper's tables, computed from the pipeline's outputs, with paper values as reference columns."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from multiref import paper
from multiref.data.dailydialog import SPLITS
from multiref.io import atomic_path

SPLIT_LABELS = {"train": "Train", "dev": "Validation", "test": "Test"}


def table8(sessions_path: Path, pairs_paths: Mapping[str, Path], with_paper: bool = True) -> pd.DataFrame:
    """Sessions and (context, response) pairs per split, counted from the data stage's Parquet files.

    With ``with_paper`` the paper's values are added as ``paper_<split>`` columns, with the
    differences ``diff_<split>`` and relative differences ``diff_pct_<split>`` (in percent).
    """
    splits = pq.read_table(sessions_path, columns=["split"]).column("split").to_pylist()
    measured = {
        "sessions": {name: splits.count(name) for name in SPLITS},
        "pairs": {name: pq.read_metadata(pairs_paths[name]).num_rows for name in SPLITS},
    }
    rows = []
    for item in ("sessions", "pairs"):
        row: dict[str, object] = {"item": item}
        row.update({name: measured[item][name] for name in SPLITS})
        if with_paper:
            ref = paper.TABLE8[item]
            row.update({f"paper_{name}": ref[name] for name in SPLITS})
            row.update({f"diff_{name}": measured[item][name] - ref[name] for name in SPLITS})
            row.update(
                {f"diff_pct_{name}": round(100 * (measured[item][name] - ref[name]) / ref[name], 3) for name in SPLITS}
            )
        rows.append(row)
    return pd.DataFrame(rows)


def table8_latex(df: pd.DataFrame, caption: str) -> str:
    """Booktabs LaTeX of :func:`table8`'s frame: measured rows, then the paper's rows if present."""
    labels = {"sessions": "sessions", "pairs": "(ctx, resp) pairs"}
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\begin{tabular}{lrrr}",
        r"\toprule",
        "Item & " + " & ".join(SPLIT_LABELS[s] for s in SPLITS) + r" \\",
        r"\midrule",
    ]
    for _, row in df.iterrows():
        lines.append(f"{labels[row['item']]} & " + " & ".join(f"{int(row[s]):,}" for s in SPLITS) + r" \\")
    if "paper_train" in df.columns:
        lines.append(r"\midrule")
        for _, row in df.iterrows():
            cells = " & ".join(f"{int(row[f'paper_{s}']):,}" for s in SPLITS)
            lines.append(f"{labels[row['item']]} (paper) & {cells}" + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{caption}}}", r"\label{tab:corpus}", r"\end{table}", ""]
    return "\n".join(lines)


def write_table(df: pd.DataFrame, latex: str, csv_path: Path, tex_path: Path) -> None:
    """Write the CSV and LaTeX of a table atomically."""
    with atomic_path(csv_path) as tmp:
        df.to_csv(tmp, index=False)
    with atomic_path(tex_path) as tmp:
        tmp.write_text(latex, encoding="utf-8")
