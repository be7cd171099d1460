"""The Mirror paper's pairwise protocol, with a learned judge in place of the human annotators.

Li, Kiseleva & de Rijke (SIGIR 2021), section 4.4: for each method pair (Mirror, baseline), 200 random
test dialogues are shown to 3 MTurk annotators, who say which of the two responses is more appropriate
given the context; Table 1 gives the shares of Mirror's wins, losses and ties.

Here the judge is Reval (:mod:`multiref.reval`), which scores a response to its context on 1-5.
Per test dialogue, with a = Mirror's score and b = the baseline's score and a margin m >= 0:

    win  if a - b >  m
    loss if b - a >  m
    tie  if |a - b| <= m          (m = 0: a tie only when both scores are equal)

The comparison is exact (no tolerance): a difference that floating point puts just above the margin is
not a tie. The shares are the means of the win / loss / tie indicators over the test dialogues; each has
a percentile bootstrap interval over test dialogues (:func:`multiref.tables.results.percentile_interval` of the
indicator), and every row of a table uses the same resamples (same seed), so rows are comparable.

The paper's human shares (:data:`multiref.paper.MIRROR_HUMAN`) appear only as ``paper_human_*``
reference columns; they were measured by people on the authors' systems, not by this judge.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from multiref import paper
from multiref.errors import ConfigError, MultirefError
from multiref.tables.results import Row, _tex_escape, bootstrap_indices, model_table, percentile_interval, read_run
from multiref.tables.seeds import combine_seeds

OUTCOMES = ("wins", "losses", "ties")


def _check_margin(margin: float) -> float:
    """The margin as a float; a ConfigError unless it is a finite number >= 0."""
    try:
        value = float(margin)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"pairwise margin: expected a number >= 0, got {margin!r}") from exc
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"pairwise margin: expected a finite number >= 0, got {margin!r}")
    return value


def judge(a: np.ndarray, b: np.ndarray, margin: float) -> np.ndarray:
    """Per test dialogue: +1 where ``a`` is preferred (a - b > margin), -1 where ``b`` is (b - a > margin),
    0 for a tie (|a - b| <= margin). ``a`` and ``b`` are the two systems' scores of the same dialogues, in
    the same order; the result is an int8 array of their shape."""
    m = _check_margin(margin)
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise MultirefError(f"pairwise judge: the two systems' scores have different shapes, {a.shape} and {b.shape}")
    for name, scores in (("a", a), ("b", b)):
        if np.isnan(scores).any():
            raise MultirefError(f"pairwise judge: scores {name} contain NaN at positions {np.flatnonzero(np.isnan(scores))[:10].tolist()}")
    diff = a - b
    out = np.zeros(a.shape, dtype=np.int8)
    out[diff > m] = 1
    out[diff < -m] = -1
    return out


@dataclass(frozen=True, eq=False)  # eq=False: fields are arrays, whose == is elementwise
class Comparison:
    """One method pair: the Mirror system ``system`` against ``baseline``.

    ``a`` and ``b`` are the per-dialogue Reval scores of the system and of the baseline; ``pair_ids_a`` and
    ``pair_ids_b`` the test dialogue ids those scores belong to (one per score, any order). ``paper`` is the
    baseline's key in :data:`multiref.paper.MIRROR_HUMAN` for the reference columns (None: no reference).
    """

    system: str
    baseline: str
    a: np.ndarray
    b: np.ndarray
    pair_ids_a: np.ndarray
    pair_ids_b: np.ndarray
    paper: str | None = None

    def __post_init__(self) -> None:
        for field in ("a", "b", "pair_ids_a", "pair_ids_b"):
            value = np.asarray(getattr(self, field))
            if value.ndim != 1:
                raise MultirefError(f"comparison {self.system} vs. {self.baseline}: {field} must be one-dimensional, got shape {value.shape}")
            object.__setattr__(self, field, value)
        for scores, ids, who in (("a", "pair_ids_a", self.system), ("b", "pair_ids_b", self.baseline)):
            if len(getattr(self, scores)) != len(getattr(self, ids)):
                raise MultirefError(f"comparison {self.system} vs. {self.baseline}: {who} has {len(getattr(self, scores))} scores "
                                    f"but {len(getattr(self, ids))} dialogue ids")

    def aligned(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids, a, b): both systems' scores sorted by dialogue id. A MultirefError naming both systems if
        they were not scored on the same test dialogues (or an id repeats)."""
        order_a = np.argsort(self.pair_ids_a, kind="stable")
        order_b = np.argsort(self.pair_ids_b, kind="stable")
        ids_a, ids_b = self.pair_ids_a[order_a], self.pair_ids_b[order_b]
        if not np.array_equal(ids_a, ids_b):
            only_a = np.setdiff1d(ids_a, ids_b)[:5].tolist()
            only_b = np.setdiff1d(ids_b, ids_a)[:5].tolist()
            raise MultirefError(f"comparison {self.system} vs. {self.baseline}: the two systems were scored on different test "
                                f"dialogues ({len(ids_a)} and {len(ids_b)} ids; only {self.system}: {only_a}, "
                                f"only {self.baseline}: {only_b}, first few shown)")
        if len(ids_a) > 1 and (ids_a[1:] == ids_a[:-1]).any():
            repeated = np.unique(ids_a[1:][ids_a[1:] == ids_a[:-1]])[:5].tolist()
            raise MultirefError(f"comparison {self.system} vs. {self.baseline}: dialogue ids occur more than once: {repeated}")
        return ids_a, self.a[order_a], self.b[order_b]


def pairwise_shares(a: np.ndarray, b: np.ndarray, margin: float, indices: np.ndarray, level: float) -> dict[str, float]:
    """Shares of ``wins``, ``losses`` and ``ties`` of ``a`` over ``b`` (summing to 1), each with the percentile
    interval ``<x>_ci_lo`` / ``<x>_ci_hi`` at ``level`` over the resamples ``indices`` (an int array
    [samples, n] from :func:`multiref.tables.results.bootstrap_indices`), and ``n``, the number of dialogues."""
    outcome = judge(a, b, margin)
    n = outcome.size
    if outcome.ndim != 1 or n == 0:
        raise MultirefError(f"pairwise shares: need a non-empty one-dimensional array of scores, got shape {outcome.shape}")
    indices = np.asarray(indices)
    if indices.ndim != 2 or indices.shape[1] != n:
        raise MultirefError(f"pairwise shares: bootstrap indices of shape {indices.shape} do not resample {n} dialogues")
    if not 0 < float(level) < 1:
        raise ConfigError(f"pairwise shares: bootstrap level must lie in (0, 1), got {level!r}")
    out: dict[str, float] = {}
    for name, code in zip(OUTCOMES, (1, -1, 0), strict=True):
        indicator = (outcome == code).astype(np.float64)
        out[name] = float(indicator.mean())
        out[f"{name}_ci_lo"], out[f"{name}_ci_hi"] = percentile_interval(indicator, indices, float(level))
    out["n"] = n
    return out


def _boot(boot: Mapping[str, Any]) -> tuple[int, int, float]:
    """(samples, seed, level) from the bootstrap settings; a ConfigError naming a missing or bad field."""
    try:
        samples, seed, level = int(boot["samples"]), int(boot["seed"]), float(boot["level"])
    except KeyError as exc:
        raise ConfigError(f"pairwise bootstrap settings: missing field '{exc.args[0]}' (got {dict(boot)})") from exc
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"pairwise bootstrap settings: samples and seed must be integers, level a number (got {dict(boot)})") from exc
    if samples < 1:
        raise ConfigError(f"pairwise bootstrap settings: samples must be >= 1, got {boot['samples']!r}")
    if not 0 < level < 1:
        raise ConfigError(f"pairwise bootstrap settings: level must lie in (0, 1), got {boot['level']!r}")
    return samples, seed, level


def pairwise_table(comparisons: Sequence[Comparison], margin: float, boot: Mapping[str, Any]) -> pd.DataFrame:
    """One row per comparison: the judge's shares of the system's wins / losses / ties against the baseline with
    their bootstrap intervals, the margin, the number of test dialogues, and the paper's human shares as
    ``paper_human_*`` (None where the comparison has no reference). ``boot`` = {"samples", "seed", "level"};
    every row uses the resamples drawn with that seed (the same ones for rows with the same number of dialogues)."""
    m = _check_margin(margin)
    samples, seed, level = _boot(boot)
    resamples: dict[int, np.ndarray] = {}
    records = []
    for c in comparisons:
        ref = None
        if c.paper is not None:
            if c.paper not in paper.MIRROR_HUMAN:
                raise ConfigError(f"comparison {c.system} vs. {c.baseline}: paper label {c.paper!r} is not in the Mirror paper's "
                                  f"human evaluation (known: {sorted(paper.MIRROR_HUMAN)})")
            ref = paper.MIRROR_HUMAN[c.paper]
        ids, a, b = c.aligned()
        if len(ids) == 0:
            raise MultirefError(f"comparison {c.system} vs. {c.baseline}: no test dialogues")
        if len(ids) not in resamples:
            resamples[len(ids)] = bootstrap_indices(len(ids), samples, seed)
        try:
            shares = pairwise_shares(a, b, m, resamples[len(ids)], level)
        except MultirefError as exc:
            raise MultirefError(f"comparison {c.system} vs. {c.baseline}: {exc}") from exc
        record: dict[str, Any] = {"system": c.system, "baseline": c.baseline}
        record.update({f"judge_{x}": shares[x] for x in OUTCOMES})
        record.update({f"judge_{x}_ci_{end}": shares[f"{x}_ci_{end}"] for x in OUTCOMES for end in ("lo", "hi")})
        record.update({"margin": m, "test_dialogues": int(shares["n"])})
        record.update({f"paper_human_{x}": None if ref is None else ref[x] for x in OUTCOMES})
        records.append(record)
    columns = ["system", "baseline", *(f"judge_{x}" for x in OUTCOMES), *(f"judge_{x}_ci_{e}" for x in OUTCOMES for e in ("lo", "hi")),
               "margin", "test_dialogues", *(f"paper_human_{x}" for x in OUTCOMES)]
    frame = pd.DataFrame(records, columns=columns)
    for x in OUTCOMES:  # object dtype keeps None (not NaN) where a row has no reference
        frame[f"paper_human_{x}"] = pd.Series([r[f"paper_human_{x}"] for r in records], index=frame.index, dtype=object)
    return frame


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _share_cell(share: Any, lo: Any, hi: Any) -> str:
    """``0.50 {\\scriptsize [0.44, 0.57]}``; ``--`` if the share is missing."""
    if _missing(share):
        return "--"
    cell = f"{float(share):.2f}"
    if not (_missing(lo) or _missing(hi)):
        cell += rf" {{\scriptsize [{float(lo):.2f}, {float(hi):.2f}]}}"
    return cell


def pairwise_latex(frame: pd.DataFrame, caption: str, label: str) -> str:
    """Booktabs LaTeX of a :func:`pairwise_table`: method pair, the judge's wins / losses / ties with their
    intervals, and the paper's human W / L / T (``--`` where there is no reference)."""
    needed = ["system", "baseline", *(f"judge_{x}{s}" for x in OUTCOMES for s in ("", "_ci_lo", "_ci_hi")),
              *(f"paper_human_{x}" for x in OUTCOMES)]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise MultirefError(f"pairwise LaTeX: the table lacks columns {missing} (not a pairwise_table frame)")
    lines = [r"\begin{table*}[t]", r"\centering", r"\small", r"\begin{tabular}{lrrrc}", r"\toprule",
             r"Method pair & Wins & Losses & Ties & paper (human) W/L/T \\", r"\midrule"]
    for _, r in frame.iterrows():
        pair = rf"{_tex_escape(str(r['system']))} vs.\ {_tex_escape(str(r['baseline']))}"
        shares = [_share_cell(r[f"judge_{x}"], r[f"judge_{x}_ci_lo"], r[f"judge_{x}_ci_hi"]) for x in OUTCOMES]
        ref = [r[f"paper_human_{x}"] for x in OUTCOMES]
        reference = "--" if any(_missing(v) for v in ref) else " / ".join(f"{float(v):.2f}" for v in ref)
        lines.append(" & ".join([pair, *shares, reference]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{_tex_escape(caption)}}}", rf"\label{{{label}}}", r"\end{table*}", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------
# The Mirror table: automated metrics of every system, and the judge's pairwise shares

def _first_seed(scores: np.ndarray) -> np.ndarray:
    """Per-dialogue scores of the first training seed ([n] as is, [S, n] -> row 0)."""
    return scores[0] if scores.ndim == 2 else scores


OUT_OF_SCOPE = {"DC": "needs external topic models (out of scope)", "DC-MMI": "needs external topic models (out of scope)"}


def mirror_tables(systems: Sequence[Mapping[str, Any]], run_dirs: Sequence[Sequence[Path]], pairs: Sequence[tuple[str, str]],
                  margin: float, boot: Mapping[str, Any], gt_pairs: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The metrics table (one row per system, as Tables 1-2, paired intervals against the first system) and the
    pairwise table (one row per (Mirror variant, baseline) pair, then the paper's DC and DC-MMI reference rows,
    which this pipeline does not build). ``systems`` are ``mirror.systems`` entries, ``run_dirs`` their run folders
    (one per training seed: the metrics are means over seeds, :mod:`multiref.tables.seeds`; the judge compares the
    first seed's responses, as the paper's annotators saw one system's)."""
    rows = [Row(group="Mirror" if s["role"] == "mirror" else "Baselines", label=str(s["label"]), model=str(s["model"]),
                data=str(s["data"]), paper=s.get("paper")) for s in systems]
    runs = [combine_seeds([read_run(Path(d), gt_pairs) for d in dirs], f"mirror system {r.label}") for r, dirs in zip(rows, run_dirs, strict=True)]
    metrics = model_table(rows, runs, {}, boot)
    metrics = metrics.drop(columns=[c for c in metrics.columns if c.startswith(("paper_", "diff_"))])
    by_label = {r.label: (r, run) for r, run in zip(rows, runs, strict=True)}
    comparisons = []
    for system, baseline in pairs:
        (_, a), (rb, b) = by_label[system], by_label[baseline]
        for run, label in ((a, system), (b, baseline)):
            if "reval" not in run["scores"]:
                raise MultirefError(f"the Mirror table's judge needs Reval scores; {label} has none (its test/reval.parquet)")
        comparisons.append(Comparison(system=system, baseline=baseline, a=_first_seed(a["scores"]["reval"]), b=_first_seed(b["scores"]["reval"]),
                                      pair_ids_a=a["pair_ids"], pair_ids_b=b["pair_ids"], paper=rb.paper))
    pairwise = pairwise_table(comparisons, margin, boot)
    pairwise["note"] = ""
    first = next((s for s, _ in pairs), "Mirror")
    extra = [{"system": first, "baseline": name, "margin": margin, "note": note,
              **{f"paper_human_{x}": paper.MIRROR_HUMAN[name][x] for x in OUTCOMES}} for name, note in OUT_OF_SCOPE.items()]
    pairwise = pd.concat([pairwise, pd.DataFrame(extra).astype(object)], ignore_index=True)
    return metrics, pairwise
