"""The report's plots (matplotlib, Agg backend), written atomically and byte-for-byte reproducibly:
no timestamps or software versions in the files' metadata, a fixed SVG id salt."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from multiref.errors import MultirefError
from multiref.io import atomic_path
from multiref.report.collect import METRICS

#: Metadata written into every image: none that changes between runs.
_PNG_METADATA: dict[str, Any] = {"Software": None}
_SVG_METADATA: dict[str, Any] = {"Date": None, "Creator": None}
_STYLE = {"svg.hashsalt": "multiref", "font.size": 9, "axes.titlesize": 10, "figure.dpi": 100}


def save_figure(fig: Figure, path: Path, dpi: int = 110) -> None:
    """Write ``fig`` to ``path`` (PNG or SVG by its suffix) atomically, without varying metadata."""
    suffix = path.suffix.lower()
    if suffix not in (".png", ".svg"):
        raise MultirefError(f"{path}: plots are written as .png or .svg, not {suffix or 'no suffix'!r}")
    with atomic_path(path) as tmp, plt.rc_context(_STYLE):
        meta = _PNG_METADATA if suffix == ".png" else _SVG_METADATA
        fig.savefig(tmp, format=suffix[1:], dpi=dpi, metadata=meta, bbox_inches="tight")


def _grid(n: int, ncols: int) -> tuple[int, int]:
    cols = max(1, min(ncols, n))
    return math.ceil(n / cols), cols


def metric_trends(table: pd.DataFrame, metrics: Sequence[str] | None = None) -> Figure:
    """Each metric against the number of hypotheses per context, one line per model and kind of
    setting: ``hypK`` (solid, circles) and ``gt+hypK`` (dashed, squares); a run on the ground truth
    alone is a star at "GT". Metrics absent from every run (e.g. Reval without its rules) are left out."""
    keys = [m.key for m in METRICS] if metrics is None else list(metrics)
    labels = {m.key: m.label for m in METRICS}
    missing = [c for c in ("model", "data", "k", "gt", *keys) if c not in table.columns]
    if missing:
        raise MultirefError(f"metric table: missing columns {missing}")
    shown = [k for k in keys if table[k].notna().any()]
    if not shown:
        raise MultirefError("metric table: no metric has a value for any run")
    ks = sorted({int(k) for k in table["k"] if int(k) > 0})
    positions = {0: 0, **{k: i + 1 for i, k in enumerate(ks)}}  # GT first, then K in order (evenly spaced)
    models = list(dict.fromkeys(table["model"]))
    colours = plt.get_cmap("tab10" if len(models) <= 10 else "tab20")
    with plt.rc_context(_STYLE):
        nrows, ncols = _grid(len(shown), 4)
        fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 2.8 * nrows + 0.8), squeeze=False)
        for ax, key in zip(axes.flat, shown):
            for i, model in enumerate(models):
                rows = table[table["model"] == model]
                colour = colours(i % colours.N)
                gt_only = rows[(rows["k"] == 0) & rows[key].notna()]
                if len(gt_only):
                    ax.plot([0] * len(gt_only), gt_only[key], marker="*", markersize=10, linestyle="none", color=colour)
                for with_gt, style, marker in ((False, "-", "o"), (True, "--", "s")):
                    part = rows[(rows["k"] > 0) & (rows["gt"] == with_gt) & rows[key].notna()].sort_values("k")
                    if len(part):
                        x = [positions[int(k)] for k in part["k"]]
                        ax.plot(x, part[key], linestyle=style, marker=marker, color=colour, markersize=5)
            ax.set_title(labels.get(key, key) + ("  (lower is better)" if key == "ppl" else ""))
            ax.set_xticks(list(positions.values()), ["GT", *(str(k) for k in ks)])
            ax.set_xlim(-0.5, len(positions) - 0.5)
            ax.set_xlabel("hypotheses per context (K)")
            ax.grid(alpha=0.3)
        for ax in list(axes.flat)[len(shown):]:
            ax.set_visible(False)
        handles = [plt.Line2D([], [], color=colours(i % colours.N), lw=2, label=m) for i, m in enumerate(models)]
        handles += [
            plt.Line2D([], [], color="0.3", marker="*", markersize=9, linestyle="none", label="GT only"),
            plt.Line2D([], [], color="0.3", marker="o", linestyle="-", label="hypK"),
            plt.Line2D([], [], color="0.3", marker="s", linestyle="--", label="GT+hypK"),
        ]
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 7), frameon=False)
        fig.tight_layout(rect=(0, 0.1 if nrows == 1 else 0.06, 1, 1))
    return fig


def _curve_columns(curve: pd.DataFrame, name: str) -> tuple[str, str]:
    """The training-loss column and the dev column to plot (``dev_monitor``, or ``dev_loss`` when the
    monitor is empty, as in the teacher's curve)."""
    for column in ("step", "train_loss"):
        if column not in curve.columns:
            raise MultirefError(f"training curve {name}: missing column {column!r} (found {list(curve.columns)})")
    for column in ("dev_monitor", "dev_loss"):
        if column in curve.columns and pd.to_numeric(curve[column], errors="coerce").notna().any():
            return "train_loss", column
    raise MultirefError(f"training curve {name}: no dev_monitor or dev_loss values")


def training_curves(curves: Mapping[str, pd.DataFrame], ncols: int = 4) -> Figure:
    """One panel per run: the training loss (left axis) and the dev monitor (right axis) against the step."""
    if not curves:
        raise MultirefError("training curves: no runs given")
    with plt.rc_context(_STYLE):
        nrows, cols = _grid(len(curves), ncols)
        fig, axes = plt.subplots(nrows, cols, figsize=(3.4 * cols, 2.6 * nrows), squeeze=False)
        for ax, (name, curve) in zip(axes.flat, curves.items()):
            train_col, dev_col = _curve_columns(curve, name)
            step = pd.to_numeric(curve["step"], errors="coerce")
            train = pd.to_numeric(curve[train_col], errors="coerce")
            dev = pd.to_numeric(curve[dev_col], errors="coerce")
            keep = train.notna() & step.notna()
            ax.plot(step[keep], train[keep], color="tab:blue", lw=1, label="train loss")
            ax.set_xlabel("step")
            ax.set_ylabel("train loss", color="tab:blue")
            twin = ax.twinx()
            keep = dev.notna() & step.notna()
            twin.plot(step[keep], dev[keep], color="tab:red", marker=".", lw=1, label=dev_col)
            twin.set_ylabel(dev_col, color="tab:red")
            ax.set_title(name)
            ax.grid(alpha=0.3)
        for ax in list(axes.flat)[len(curves):]:
            ax.set_visible(False)
        fig.tight_layout()
    return fig


def pi_bar(pi_mean: Sequence[float], title: str) -> Figure:
    """π̄_k, the mixture weights averaged over the test contexts, per latent variable k."""
    values = np.asarray(pi_mean, dtype=float)
    if values.ndim != 1 or values.size == 0 or not np.isfinite(values).all() or (values < 0).any():
        raise MultirefError(f"{title}: pi_mean must be a non-empty list of non-negative numbers, got {list(pi_mean)!r}")
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(max(3.0, 0.6 * values.size + 1.5), 2.8))
        ks = np.arange(values.size)
        ax.bar(ks, 100.0 * values, color="tab:purple")
        for k, v in zip(ks, values):
            ax.annotate(f"{100 * v:.1f}", (k, 100 * v), ha="center", va="bottom", fontsize=8)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_xlabel("latent variable k")
        ax.set_ylabel(r"$\bar{\pi}_k$ over test contexts (%)")
        ax.set_ylim(0, max(100.0 * values.max() * 1.15, 1.0))
        ax.set_title(title)
        fig.tight_layout()
    return fig


def write(fig: Figure, *paths: Path) -> None:
    """Save ``fig`` to every path and release it."""
    try:
        for path in paths:
            save_figure(fig, Path(path))
    finally:
        plt.close(fig)
