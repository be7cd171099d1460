"""The claims' evidence from run folders: one row per (claim, comparison, metric) with its estimate, interval and
verdict, a claim-level summary, and the Markdown of ``claims.md``.

Which runs are compared is the configuration's (:mod:`multiref.claims.spec`); which folders hold each run's seeds is
the caller's (a mapping or a callable; :func:`multiref.claims.spec.run_dirs` is the pipeline's layout); how a folder
is read is :func:`read_run_scores` unless a loader is given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from multiref.claims.spec import METRICS, PAPERS, Claim, Claims, Comparison, RunRef
from multiref.claims.stats import Estimate, aggregate, hierarchical_interval, interval_level, seed_interval, verdict
from multiref.errors import MultirefError
from multiref.tables.results import read_test


@dataclass(frozen=True, eq=False)  # eq=False: fields are arrays, whose == is elementwise
class ContextScores:
    """A metric's scores of one run, one per test context (``pair_ids``, in that order), on the printed scale."""

    pair_ids: np.ndarray
    scores: np.ndarray


@dataclass(frozen=True)
class RunScores:
    """What a claim can read of one run (one training seed): per-context scores and run-level values by metric."""

    contexts: Mapping[str, ContextScores] = field(default_factory=dict)
    values: Mapping[str, float] = field(default_factory=dict)


Folders = Mapping[RunRef, Sequence[Path]] | Callable[[RunRef], Sequence[Path]]
Loader = Callable[[Path], RunScores]


def read_run_scores(run_dir: Path, extra: Mapping[str, ContextScores | float] | None = None) -> RunScores:
    """A run folder's test scores (:func:`multiref.tables.results.read_test` of ``run_dir/test``): per-context
    BLEU-2, Ext, Avg, Grd (x100) and Reval (where scored); run-level ppl, D1, D2. ``extra`` adds metrics the
    folder does not hold (e.g. the demo's KL, :func:`synthetic_kl`), per context or as one value."""
    test = read_test(Path(run_dir) / "test")
    ids = test["pair_ids"]
    contexts = {m: ContextScores(ids, s) for m, s in test["scores"].items()}
    values = {m: float(test["values"][m]) for m in ("ppl", "d1", "d2")}
    for name, item in (extra or {}).items():
        if isinstance(item, ContextScores):
            contexts[name] = item
        else:
            values[name] = float(item)
    return RunScores(contexts, values)


def synthetic_kl(fit: Path) -> dict[str, ContextScores]:
    """Per-context KL(p || q) in nats of every run in a ``synthetic_fit.parquet`` (rule ``table_synthetic``), by
    its ``run`` name (``model/setting``); pass one to :func:`read_run_scores` as ``extra={"kl": ...}``."""
    frame = pd.read_parquet(fit, columns=["run", "pair_id", "kl"])
    return {str(run): ContextScores(g["pair_id"].to_numpy(), g["kl"].to_numpy(dtype=np.float64))
            for run, g in frame.sort_values(["run", "pair_id"]).groupby("run", sort=False)}


def _per_context(metric: str, runs: Sequence[RunScores], names: Sequence[str]) -> np.ndarray | None:
    """[runs, contexts] of ``metric`` if every run has per-context scores of it on the same contexts, else None."""
    if not all(metric in r.contexts for r in runs):
        return None
    ids = runs[0].contexts[metric].pair_ids
    for r, name in zip(runs[1:], names[1:], strict=True):
        if not np.array_equal(r.contexts[metric].pair_ids, ids):
            raise MultirefError(f"{metric}: {name} was scored on other test contexts than {names[0]}; the paired bootstrap needs the same ones")
    return np.stack([r.contexts[metric].scores for r in runs])


def _run_value(metric: str, run: RunScores, name: str) -> float:
    if metric in run.values:
        return float(run.values[metric])
    if metric in run.contexts:
        return float(np.mean(run.contexts[metric].scores))
    raise MultirefError(f"{name}: no {metric} for this run (a claim compares it on {metric}; is the metric scored for it?)")


def compare(better: Sequence[RunScores], worse: Sequence[RunScores], metric: str, samples: int, seed: int, level: float,
            names: tuple[Sequence[str], Sequence[str]] = ((), ()), key: str = "") -> Estimate:
    """mean(better) - mean(worse) on ``metric`` over the seeds of each side, with its interval at ``level``: the
    hierarchical bootstrap where every run has per-context scores of the metric, else the seed-only one."""
    names_b = list(names[0]) or [f"better seed {k}" for k in range(len(better))]
    names_w = list(names[1]) or [f"worse seed {k}" for k in range(len(worse))]
    if not better or not worse:
        raise MultirefError(f"{metric}: a comparison needs at least one run folder on each side")
    both = [*better, *worse]
    table = _per_context(metric, both, [*names_b, *names_w])
    if table is not None:
        return hierarchical_interval(table[: len(better)], table[len(better):], samples, seed, level, key)
    b = [_run_value(metric, r, n) for r, n in zip(better, names_b, strict=True)]
    w = [_run_value(metric, r, n) for r, n in zip(worse, names_w, strict=True)]
    return seed_interval(b, w, samples, seed, level, key)


def _decimals(*values: float | None) -> int:
    """Decimals that give the largest of ``values`` three significant digits (2 to 4)."""
    top = max((abs(v) for v in values if v is not None and np.isfinite(v)), default=0.0)
    return 2 if top == 0 else int(np.clip(2 - np.floor(np.log10(top)), 2, 4))


def _fmt(x: float | None, decimals: int) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:+.{decimals}f}"


def _evidence(claim: Claim, comp: Comparison, metric: str, est: Estimate, result: str) -> str:
    m, places = METRICS[metric], _decimals(est.estimate, est.lo, est.hi)
    what = f"{comp.better.name} - {comp.worse.name}, {m.label}{' (lower is better)' if m.lower_is_better else ''}: {_fmt(est.estimate, places)}"
    sizes = f"{est.seeds_better} vs {est.seeds_worse} seed(s)" + (f", {est.contexts} contexts" if est.contexts is not None else "")
    if est.lo is None:
        return (f"{what}, no interval ({sizes}: {m.label} is one value per run, and the seed-only bootstrap needs at least "
                f"2 seeds per side) -> {result}")
    test = " (TOST)" if claim.direction == "equivalent" else " (one-sided at its upper end)" if claim.direction == "limited" else ""
    margin = f", margin {claim.margin[metric]:g}" if metric in claim.margin else ""
    return f"{what} [{_fmt(est.lo, places)}, {_fmt(est.hi, places)}] ({100 * est.level:g}% interval{test}{margin}; {sizes}) -> {result}"


def _row(claim: Claim, j: int, comp: Comparison, metric: str, est: Estimate) -> dict[str, Any]:
    m = METRICS[metric]
    result = verdict(claim.direction, est.lo, est.hi, m.lower_is_better, claim.margin.get(metric))
    return {
        "claim": claim.id, "paper": claim.paper, "section": claim.section, "direction": claim.direction, "comparison": j,
        "better": comp.better.name, "worse": comp.worse.name, "metric": metric, "lower_is_better": m.lower_is_better,
        "estimate": est.estimate, "lo": est.lo, "hi": est.hi, "interval_level": est.level, "margin": claim.margin.get(metric),
        "verdict": result, "tested": est.lo is not None,
        "bootstrap": "none" if est.lo is None else "seeds" if est.contexts is None else "seeds+contexts",
        "seeds_better": est.seeds_better, "seeds_worse": est.seeds_worse, "contexts": est.contexts,
        "evidence": _evidence(claim, comp, metric, est, result), "sentence": claim.sentence, "note": claim.note,
    }


def evaluate(claims: Claims, folders: Folders, load: Loader = read_run_scores) -> pd.DataFrame:
    """One row per (claim, comparison, metric): the estimate mean(better) - mean(worse) on the metric's printed
    scale, its interval (``lo``, ``hi`` at ``interval_level``), the verdict, the seeds per side, the contexts and
    the paper's sentence. ``folders`` gives the seed folders of each compared run (``claims.runs()``); each folder
    is loaded once with ``load``."""
    cache: dict[Path, RunScores] = {}

    def side(ref: RunRef) -> tuple[list[RunScores], list[str]]:
        dirs = [Path(d) for d in (folders(ref) if callable(folders) else folders[ref])]
        if not dirs:
            raise MultirefError(f"{ref.name}: no run folder given for this run")
        for d in dirs:
            if d not in cache:
                cache[d] = load(d)
        return [cache[d] for d in dirs], [str(d) for d in dirs]

    rows = []
    for claim in claims.claims:
        level = interval_level(claim.direction, claims.level)
        for j, comp in enumerate(claim.comparisons):
            (better, names_b), (worse, names_w) = side(comp.better), side(comp.worse)
            key = f"{comp.better.name}|{comp.worse.name}"
            for metric in claim.metrics:
                est = compare(better, worse, metric, claims.samples, claims.seed, level, (names_b, names_w), key)
                rows.append(_row(claim, j, comp, metric, est))
    return pd.DataFrame(rows, columns=COLUMNS)


COLUMNS = ["claim", "paper", "section", "direction", "comparison", "better", "worse", "metric", "lower_is_better", "estimate", "lo",
           "hi", "interval_level", "margin", "verdict", "tested", "bootstrap", "seeds_better", "seeds_worse", "contexts", "evidence",
           "sentence", "note"]


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per claim (in the frame's order): its overall verdict (:func:`multiref.claims.stats.aggregate` of the
    rows with an interval), the counts of rows by verdict, the rows without an interval, and the sentence."""
    records = []
    for claim, rows in frame.groupby("claim", sort=False):
        tested = rows[rows["tested"].astype(bool)]
        counts = tested["verdict"].value_counts()
        records.append({
            "claim": claim, "paper": rows["paper"].iloc[0], "section": rows["section"].iloc[0], "direction": rows["direction"].iloc[0],
            "verdict": aggregate(str(rows["direction"].iloc[0]), list(tested["verdict"])), "rows": len(rows),
            "holds": int(counts.get("holds", 0)), "fails": int(counts.get("fails", 0)), "inconclusive": int(counts.get("inconclusive", 0)),
            "untested": int(len(rows) - len(tested)), "sentence": rows["sentence"].iloc[0], "note": rows["note"].iloc[0],
        })
    return pd.DataFrame(records, columns=["claim", "paper", "section", "direction", "verdict", "rows", "holds", "fails",
                                          "inconclusive", "untested", "sentence", "note"])


def claims_markdown(frame: pd.DataFrame) -> str:
    """``claims.md``: per claim, one line with its overall verdict first, the paper, section and sentence, then
    one evidence line per (comparison, metric)."""
    lines = ["# The papers' claims on this configuration's runs", "",
             ("Verdict per claim first, then its evidence: mean(better) - mean(worse) on the printed scale, its interval, "
              "and the verdict of that comparison and metric. Method: docs/claims.md."), ""]
    for s in summarise(frame).itertuples(index=False):
        counts = f"{s.holds} hold, {s.fails} fail, {s.inconclusive} inconclusive" + (f", {s.untested} without interval" if s.untested else "")
        lines.append(f"- **{s.verdict}** `{s.claim}` ({s.direction}; {counts}): {PAPERS.get(str(s.paper), s.paper)}, "
                     f"{s.section}: \"{s.sentence}\"" + (f" *{s.note}*" if s.note else ""))
        for ev in frame.loc[frame["claim"] == s.claim, "evidence"]:
            lines.append(f"  - {ev}")
    return "\n".join(lines) + "\n"


def evaluate_folders(claims: Claims, folders: Mapping[str, Sequence[str]], kl: Path | None = None) -> pd.DataFrame:
    """:func:`evaluate` on the pipeline's run folders: ``folders`` maps each compared run's name (``RunRef.name``)
    to its seed folders; ``kl`` (the demo's ``synthetic_fit.parquet``) adds the per-context KL of every run on the
    pairs, looked up by ``model/<folder name>`` (so each seed has its own)."""
    by_run = synthetic_kl(kl) if kl is not None else {}

    def load(run_dir: Path) -> RunScores:
        name = f"{run_dir.parent.name}/{run_dir.name}"
        extra = {"kl": by_run[name]} if name in by_run and run_dir.parent.parent.parent.name != "mirror" else None
        return read_run_scores(run_dir, extra)

    def seeds(ref: RunRef) -> list[Path]:
        if ref.name not in folders:
            raise MultirefError(f"{ref.name}: the claims compare this run but no folder was given for it")
        return [Path(d) for d in folders[ref.name]]

    return evaluate(claims, seeds, load)
