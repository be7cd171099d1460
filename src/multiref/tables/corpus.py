"""Table 8 of Zhao et al. (2021): sessions and pairs per split, counted from the pipeline's outputs, with the paper's
values as reference columns (none to compare with on a pilot subset)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from multiref import paper
from multiref.data.dailydialog import SPLITS

SPLIT_LABELS = {"train": "Train", "dev": "Validation", "test": "Test"}


def table8(
    sessions_path: Path, pairs_paths: Mapping[str, Path], with_paper: bool = True, subset: bool = False
) -> pd.DataFrame:
    """Sessions and (context, response) pairs per split, counted from the data stage's Parquet files.

    With ``with_paper`` the paper's values are added as ``paper_<split>`` columns, with the
    differences ``diff_<split>`` and relative differences ``diff_pct_<split>`` (in percent). A pilot
    run on a subset of the sessions (``subset``, the configuration's ``data.subset``) keeps the
    paper's full-corpus values as reference columns but no differences (they would compare a sample
    with the whole corpus); its ``scope`` column says ``subset`` instead of ``corpus``.
    """
    splits = pq.read_table(sessions_path, columns=["split"]).column("split").to_pylist()
    measured = {
        "sessions": {name: splits.count(name) for name in SPLITS},
        "pairs": {name: pq.read_metadata(pairs_paths[name]).num_rows for name in SPLITS},
    }
    rows = []
    for item in ("sessions", "pairs"):
        row: dict[str, object] = {"item": item, "scope": "subset" if subset else "corpus"}
        row.update({name: measured[item][name] for name in SPLITS})
        if with_paper:
            ref = paper.TABLE8[item]
            row.update({f"paper_{name}": ref[name] for name in SPLITS})
            if not subset:
                row.update({f"diff_{name}": measured[item][name] - ref[name] for name in SPLITS})
                row.update(
                    {
                        f"diff_pct_{name}": round(100 * (measured[item][name] - ref[name]) / ref[name], 3)
                        for name in SPLITS
                    }
                )
        rows.append(row)
    return pd.DataFrame(rows)


def table8_caption(real: bool, subset: Mapping[str, object] | None) -> str:
    """The caption of Table 8: what was counted, and for a pilot run the subset it was counted on.

    ``subset`` is the ``subset`` entry of the data stage's manifest (``data/preprocess.json``): the
    seed, the sizes asked for, and the sessions of each split in the whole corpus.
    """
    what = "DailyDialog" if real else "the synthetic demo corpus"
    caption = f"Corpus statistics of {what}, measured by this pipeline"
    if subset:
        full = subset["full_sessions"]
        sizes = subset["sizes"]
        assert isinstance(full, Mapping) and isinstance(sizes, Mapping)
        kept = ", ".join(
            f"{sizes[n] if sizes.get(n) is not None else full[n]:,} of {full[n]:,} {SPLIT_LABELS[n].lower()}"
            for n in SPLITS
        )
        caption += f" on a subset of the sessions (data.subset, seed {subset['seed']}: {kept})"
    if real:
        caption += "; paper rows: Zhao et al. (2021), Table 8" + (", full corpus (reference only)" if subset else "")
    return caption + "."


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
