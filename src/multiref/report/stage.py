"""One function per report rule: read the pipeline's outputs, write one report item atomically."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from multiref.errors import MultirefError
from multiref.io import write_text
from multiref.report import pages, plots, samples
from multiref.report.collect import RunRef, metric_table


def write_metric_trends(runs: Sequence[RunRef], outputs: Sequence[Path]) -> pd.DataFrame:
    """Each metric against the number of hypotheses per model; returns the plotted table."""
    table = metric_table(runs)
    plots.write(plots.metric_trends(table), *outputs)
    return table


def read_curve(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise MultirefError(f"{path}: cannot read the training curve ({exc})") from exc


def write_training_curves(curves: Mapping[str, Path], output: Path) -> None:
    """One panel per run (``label -> log.csv``): training loss and dev monitor against the step."""
    plots.write(plots.training_curves({label: read_curve(Path(p)) for label, p in curves.items()}), output)


def write_pi_bar(by_component: Path, title: str, output: Path) -> list[float]:
    """π̄_k of one mixture-prior run (``pi_mean`` of its ``by_component.parquet``)."""
    from multiref.io import read_parquet_metadata

    pi = read_parquet_metadata(by_component).get("pi_mean")
    if not isinstance(pi, list):
        raise MultirefError(f"{by_component}: schema metadata has no 'pi_mean' list")
    plots.write(plots.pi_bar(pi, title), output)
    return [float(v) for v in pi]


def _pairs(test: Path, n: int, seed: int) -> list[int]:
    ids = pq.read_table(test, columns=["pair_id"]).column("pair_id").to_pylist()
    return samples.pick_pairs(ids, n, seed)


def write_samples(test: Path, decodes: Mapping[str, Path], output: Path, n: int, seed: int) -> list[int]:
    """Every run's greedy response on ``n`` seeded test contexts (the paper's Tables 10, 11)."""
    ids = _pairs(test, n, seed)
    contexts = samples.load_contexts(test, ids)
    responses = {label: samples.read_responses(Path(p), ids) for label, p in decodes.items()}
    caption = (
        f"{len(ids)} test contexts drawn with seed {seed} (floors A/B, oldest turn first), the ground truth, "
        "then each run's greedy response (model/data setting)."
    )
    write_text(samples.samples_html("Sample responses per model", caption, contexts, responses), output)
    return ids


def write_component_samples(by_component: Path, test: Path, run: str, output: Path, n: int, seed: int) -> list[float]:
    """The responses of a mixture-prior run with each latent variable alone (the paper's Table 6)."""
    ids = _pairs(test, n, seed)
    contexts = samples.load_contexts(test, ids)
    responses, pi = samples.component_responses(by_component, ids)
    caption = (
        f"{run}: {len(ids)} test contexts drawn with seed {seed}, the ground truth, then the response decoded "
        "with only the k-th latent variable (one-hot π), for every k; π̄ is its mean selection probability."
    )
    write_text(samples.samples_html(f"Responses per latent variable: {run}", caption, contexts, responses), output)
    return pi


def write_methods(config: Mapping[str, Any], runs: Sequence[str], docs_dir: Path | None, rst: Path, html: Path) -> None:
    """The methods page as RST and as standalone HTML."""
    text = pages.methods_rst(config, list(runs), docs_dir)
    page = pages.rst_to_html(text, "Methods")
    write_text(text, rst)
    write_text(page, html)


def write_table_page(csv: Path, title: str, caption: str, output: Path) -> None:
    """One results table as an HTML page (the report shows HTML; CSV files are only downloads)."""
    write_text(pages.table_html(csv, title, caption), output)
