"""Read the test results of the runs a report shows into one table (one row per run)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from multiref.data.settings import parse_setting
from multiref.errors import MultirefError


@dataclass(frozen=True)
class Metric:
    """A column of the paper's tables: its key in the run table, its label, and its scale."""

    key: str
    label: str
    higher_is_better: bool


#: The metrics plotted against the number of hypotheses, in the paper's column order.
METRICS: tuple[Metric, ...] = (
    Metric("ppl", "Perplexity", False),
    Metric("bleu2", "BLEU-2", True),
    Metric("extrema", "Ext", True),
    Metric("average", "Avg", True),
    Metric("greedy", "Grd", True),
    Metric("reval", "Reval", True),
    Metric("distinct1", "D1", True),
    Metric("distinct2", "D2", True),
)

#: metrics.json values in [0, 1] that the tables (and so the plots) multiply by 100.
PERCENT = ("bleu2", "extrema", "average", "greedy")


@dataclass(frozen=True)
class RunRef:
    """One trained run of the configuration and the folder of its test outputs."""

    model: str
    data: str
    test_dir: Path

    @property
    def label(self) -> str:
        return f"{self.model}/{self.data}"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise MultirefError(f"{path}: missing (the report needs the run's test outputs)") from exc
    except json.JSONDecodeError as exc:
        raise MultirefError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise MultirefError(f"{path}: expected a JSON object, found {type(value).__name__}")
    return value


def _number(path: Path, data: dict[str, Any], key: str) -> float:
    value = data.get(key)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise MultirefError(f"{path}: field {key!r} is {value!r}, expected a finite number")
    return float(value)


def run_row(run: RunRef) -> dict[str, Any]:
    """The metrics of one run: ``metrics.json`` and ``perplexity.json``, and ``reval.json`` when it
    exists (the Reval rules may not be part of the workflow; then the metric is left out)."""
    setting = parse_setting(run.data)
    row: dict[str, Any] = {"model": run.model, "data": run.data, "k": setting.k, "gt": setting.gt}
    metrics_path = run.test_dir / "metrics.json"
    metrics = _read_json(metrics_path)
    for key in ("bleu2", "extrema", "average", "greedy", "distinct1", "distinct2"):
        value = _number(metrics_path, metrics, key)
        row[key] = 100.0 * value if key in PERCENT else value
    ppl_path = run.test_dir / "perplexity.json"
    row["ppl"] = _number(ppl_path, _read_json(ppl_path), "ppl_authors")
    reval_path = run.test_dir / "reval.json"
    if reval_path.is_file():
        reval = _read_json(reval_path).get("reval")
        row["reval"] = float(reval) if isinstance(reval, (int, float)) and not isinstance(reval, bool) else math.nan
    else:
        row["reval"] = math.nan
    return row


def metric_table(runs: Sequence[RunRef]) -> pd.DataFrame:
    """One row per run (model, data, k, gt, then every metric of :data:`METRICS`; NaN when absent)."""
    if not runs:
        raise MultirefError("the report has no runs to show (runs.* and tables.* name none)")
    columns = ["model", "data", "k", "gt", *(m.key for m in METRICS)]
    return pd.DataFrame([run_row(r) for r in runs], columns=columns)
