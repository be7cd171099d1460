"""Tables 1, 2, 4 and 5 of Zhao et al. (2021) and the demo's synthetic-distance table, from run outputs.

Every measured cell is read from the files a run wrote (``info.json``, ``test/perplexity.json``,
``test/metrics.json``, ``test/reval.json``, ``test/by_component*.parquet``); nothing is typed in. The
paper's printed values (:mod:`multiref.paper`) are added only as ``paper_*`` reference columns, with the
differences ``diff_*`` = measured - paper.

Scales as printed in the paper: BLEU-2 and the embedding similarities x100, Reval on 1-5, D1/D2 type
counts, Param in M = parameters / 2^20, Trn Time = seconds of training per pass over the 1-GT pairs.

Uncertainty: a paired bootstrap over test contexts. One set of resampled context indices (seeded) is
shared by every row of a table, so each row gets a percentile interval of its mean and the interval of
its difference to the table's baseline row (the first row with that metric) is paired.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from multiref import paper
from multiref.data.settings import parse_setting, split_seed
from multiref.errors import ConfigError, MultirefError
from multiref.io import read_json, read_table
from multiref.tables import seeds

MEGA = 2**20
# bootstrapped column -> (per-context score file: per_pair.parquet or reval.parquet, its column); scales in SCALE
BOOTSTRAPPED = {"bleu2": ("per_pair", "bleu2"), "ext": ("per_pair", "extrema"), "avg": ("per_pair", "average"),
                "grd": ("per_pair", "greedy"), "reval": ("reval", "reval")}
SCALE = {"bleu2": 100.0, "ext": 100.0, "avg": 100.0, "grd": 100.0, "reval": 1.0}
HEADERS = {"model": "Model", "k": "$k$", "gt": "Use GT", "n_hyp": r"\# hyp.", "pi": r"$\bar{\pi}_k$ (\%)", "param": "Param", "trn_time": "Trn Time", "data": "Data", "ppl": "ppl", "ppl_own": r"ppl ($k$ alone)", "bleu2": "BLEU-2", "ext": "Ext",
           "avg": "Avg", "grd": "Grd", "reval": "Reval", "d1": "D1", "d2": "D2"}


@dataclass(frozen=True)
class Row:
    """One table row: the run of ``model`` on data setting ``data``, shown as ``label`` under ``group``;
    ``paper`` is the paper's model label whose printed values are the reference (None: no reference)."""

    group: str
    label: str
    model: str
    data: str
    paper: str | None = None

    @classmethod
    def from_config(cls, item: Mapping[str, Any], where: str) -> Row:
        try:
            return cls(group=str(item.get("group", "")), label=str(item.get("label", item["model"])), model=str(item["model"]),
                       data=str(item["data"]), paper=item.get("paper", item.get("label", item["model"])))
        except KeyError as exc:
            raise ConfigError(f"{where}: a row needs '{exc.args[0]}' (got {dict(item)})") from exc


def data_label(setting: str) -> str:
    """The paper's Data column: ``1 GT``, ``5 hyp``, ``1 GT + 5 hyp``; an equal-steps control ``gt_steps_hyp5``
    (the demo's synthetic table) is ``1 GT (steps of 5 hyp)``; training seed k >= 1 (``hyp5_seed2``) adds ``(seed 2)``."""
    setting, k = split_seed(setting)
    if k:
        return f"{data_label(setting)} (seed {k})"
    setting, _, like = setting.partition("_steps_")
    if like:
        return f"{data_label(setting)} (steps of {data_label(like)})"
    s = parse_setting(setting)
    parts = (["1 GT"] if s.gt else []) + ([f"{s.k} hyp"] if s.k else [])
    return " + ".join(parts)


# ------------------------------------------------------------------------------------------------------
# Reading one run


def _json(path: Path, numbers: Sequence[str] = ()) -> dict[str, Any]:
    return read_json(path, numbers, what="the table needs this run's output; run its rule first")


def trn_time(run_dir: Path, info: Mapping[str, Any], gt_pairs: int) -> float | None:
    """Seconds per pass over the 1-GT training pairs: the run's training time scaled by its examples."""
    if info.get("seconds_per_gt_epoch") is not None:
        return float(info["seconds_per_gt_epoch"])
    bench = run_dir / "benchmark.tsv"  # runs trained before train_seconds was recorded: job wall time
    if bench.is_file() and info.get("examples_seen"):
        seconds = float(pd.read_csv(bench, sep="\t")["s"].iloc[-1])
        return seconds / float(info["examples_seen"]) * gt_pairs
    return None


def read_test(test: Path) -> dict[str, Any]:
    """Measured test values (paper scales) and per-context scores for the bootstrap, from a ``test/`` folder."""
    ppl = _json(test / "perplexity.json", ("ppl_authors", "ppl_token"))
    met = _json(test / "metrics.json", ("bleu2", "extrema", "average", "greedy", "distinct1", "distinct2", "pairs"))
    values: dict[str, Any] = {
        "ppl": ppl["ppl_authors"], "ppl_token": ppl["ppl_token"], "bleu2": 100 * met["bleu2"], "ext": 100 * met["extrema"],
        "avg": 100 * met["average"], "grd": 100 * met["greedy"], "d1": met["distinct1"], "d2": met["distinct2"],
        "word_vectors": met.get("word_vectors"), "test_pairs": met["pairs"], "reval": None,
    }
    needed = ["pair_id", *[col for src, col in BOOTSTRAPPED.values() if src == "per_pair"]]
    per_pair = read_table(test / "per_pair.parquet", columns=needed).to_pandas().set_index("pair_id").sort_index()
    scores = {m: per_pair[col].to_numpy() * SCALE[m] for m, (src, col) in BOOTSTRAPPED.items() if src == "per_pair"}
    ids = per_pair.index.to_numpy()
    if (test / "reval.json").is_file():
        values["reval"] = _json(test / "reval.json", ("reval",))["reval"]
        rv = read_table(test / "reval.parquet", columns=["pair_id", "reval"]).to_pandas().set_index("pair_id").sort_index()
        if not np.array_equal(rv.index.to_numpy(), ids):
            raise MultirefError(f"{test / 'reval.parquet'}: its pair ids differ from {test / 'per_pair.parquet'}")
        scores["reval"] = rv["reval"].to_numpy()
    return {"values": values, "scores": scores, "pair_ids": ids}


def read_run(run_dir: Path, gt_pairs: int) -> dict[str, Any]:
    """A training run's row: Param and Trn Time from ``info.json``, the rest from ``test/``."""
    info = _json(run_dir / "info.json", ("parameters",))
    out = read_test(run_dir / "test")
    out["values"]["param"] = info["parameters"] / MEGA
    out["values"]["trn_time"] = trn_time(run_dir, info, gt_pairs)
    return out


def read_teacher(teacher_dir: Path, epochs: int) -> dict[str, Any]:
    """The teacher's row: Param and Trn Time from its fine-tuning (on the 1-GT pairs), the rest from ``teacher/test/``."""
    fit = _json(teacher_dir / "metrics.json", ("parameters", "train_seconds_this_run"))
    out = read_test(teacher_dir / "test")
    out["values"]["param"] = fit["parameters"] / MEGA
    out["values"]["trn_time"] = fit["train_seconds_this_run"] / max(epochs, 1)
    return out


# ------------------------------------------------------------------------------------------------------
# Bootstrap


def bootstrap_indices(n: int, samples: int, seed: int) -> np.ndarray:
    """``samples`` resamples (with replacement) of ``n`` test contexts: an int array [samples, n]."""
    if n < 1 or samples < 1:
        raise ValueError(f"bootstrap needs n >= 1 and samples >= 1, got n={n}, samples={samples}")
    return np.random.default_rng(seed).integers(0, n, size=(samples, n))


def percentile_interval(values: np.ndarray, indices: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the mean of ``values`` over the resamples ``indices``."""
    means = values[indices].mean(axis=1)
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return float(lo), float(hi)


def paired_difference_interval(a: np.ndarray, b: np.ndarray, indices: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Interval of mean(a) - mean(b) when both are scored on the same contexts (same resamples)."""
    if a.shape != b.shape:
        raise ValueError(f"paired bootstrap needs scores of the same contexts, got {a.shape} and {b.shape}")
    return percentile_interval(a - b, indices, level)


# ------------------------------------------------------------------------------------------------------
# Tables


def _add_bootstrap(frame: pd.DataFrame, runs: Sequence[dict[str, Any]], boot: Mapping[str, Any], base: int = 0) -> None:
    """Per row and metric: ``<m>_ci_lo/hi`` of its mean, and ``<m>_vs_base_ci_lo/hi`` of its paired difference to
    row ``base`` (the table's baseline; the first row that has the metric if ``base`` lacks it). A row of several
    seeds gets the hierarchical interval of :mod:`multiref.tables.seeds` (seeds, then the shared contexts)."""
    ids = [r["pair_ids"] for r in runs]
    if any(not np.array_equal(ids[0], i) for i in ids[1:]):
        raise MultirefError("the rows of a table were scored on different test contexts; the paired bootstrap needs the same ones")
    indices = bootstrap_indices(len(ids[0]), int(boot["samples"]), int(boot["seed"]))
    level = float(boot["level"])
    rng = np.random.default_rng([int(boot["seed"]), 1])  # the seed draws; none at all when every row has one seed
    draws = [seeds.seed_resamples(int(r.get("seeds", 1)), int(boot["samples"]), rng) for r in runs]
    frame["seeds"] = [int(r.get("seeds", 1)) for r in runs]
    for metric in BOOTSTRAPPED:
        b = base if metric in runs[base]["scores"] else next((i for i, r in enumerate(runs) if metric in r["scores"]), None)
        if b is None:
            continue
        base_scores = runs[b]["scores"][metric]
        base_means = seeds.resampled_means(base_scores, indices, draws[b])
        lo, hi, dlo, dhi = [], [], [], []
        for r, draw in zip(runs, draws, strict=True):
            s = r["scores"].get(metric)
            if s is None:
                lo.append(None), hi.append(None), dlo.append(None), dhi.append(None)
                continue
            if s.ndim == 1 and base_scores.ndim == 1:  # one seed on both sides: the paired context bootstrap
                a, c = percentile_interval(s, indices, level), paired_difference_interval(s, base_scores, indices, level)
            else:
                means = seeds.resampled_means(s, indices, draw)
                a, c = seeds.percentile(means, level), seeds.percentile(means - base_means, level)
            lo.append(a[0]), hi.append(a[1]), dlo.append(c[0]), dhi.append(c[1])
        frame[f"{metric}_ci_lo"], frame[f"{metric}_ci_hi"] = lo, hi
        frame[f"{metric}_vs_base_ci_lo"], frame[f"{metric}_vs_base_ci_hi"] = dlo, dhi
    frame["bootstrap_base"] = frame["run"].iloc[base]


def _add_reference(frame: pd.DataFrame, refs: Sequence[Mapping[str, float] | None], columns: Sequence[str]) -> None:
    for col in columns:
        ref = [None if r is None else r.get(col) for r in refs]
        frame[f"paper_{col}"] = ref
        frame[f"diff_{col}"] = [None if p is None or m is None or (isinstance(m, float) and math.isnan(m)) else m - p
                                for m, p in zip(frame[col], ref, strict=True)]


def model_table(
    rows: Sequence[Row],
    runs: Sequence[dict[str, Any]],
    reference: Mapping[tuple[str, str], Mapping[str, float]],
    boot: Mapping[str, Any],
) -> pd.DataFrame:
    """Tables 1 and 2: one line per row with Param, Trn Time, Data and the eight metrics."""
    records = []
    for row, run in zip(rows, runs, strict=True):
        v = run["values"]
        records.append({"group": row.group, "model": row.label, "run": f"{row.model}/{row.data}", **{k: v.get(k) for k in ("param", "trn_time")},
                        "data": data_label(row.data), **{m: v.get(m) for m in paper.METRICS}, "ppl_token": v.get("ppl_token"),
                        "word_vectors": v.get("word_vectors"), "test_pairs": v.get("test_pairs")})
    frame = pd.DataFrame(records)
    # the baseline of the paired differences: the first student row (Table 1: HRED on 1 GT; Table 2: HRED)
    _add_bootstrap(frame, runs, boot, base=next((i for i, r in enumerate(rows) if r.model != "teacher"), 0))
    refs = [reference.get((row.paper, row.data)) if row.paper else None for row in rows]
    _add_reference(frame, refs, ["param", "trn_time", *paper.METRICS])
    return frame


def table4(label: str, settings: Sequence[str], runs: Sequence[dict[str, Any]], boot: Mapping[str, Any], with_reference: bool) -> pd.DataFrame:
    """Table 4: one model, with / without the ground truth, by number of hypotheses."""
    records = []
    for setting, run in zip(settings, runs, strict=True):
        s = parse_setting(setting)
        records.append({"model": label, "run": setting, "use_gt": s.gt, "n_hyp": s.k, **{m: run["values"].get(m) for m in paper.TABLE4_METRICS},
                        "ppl_token": run["values"].get("ppl_token")})
    frame = pd.DataFrame(records)
    _add_bootstrap(frame, runs, boot)
    refs = [paper.TABLE4.get((bool(r["use_gt"]), int(r["n_hyp"]))) if with_reference else None for r in records]
    _add_reference(frame, refs, list(paper.TABLE4_METRICS))
    return frame


def table4_settings(hypotheses: Sequence[int], available: Sequence[str]) -> list[str]:
    """``hypK`` and ``gt+hypK`` for each K, in the paper's order; each must be a configured setting."""
    out = []
    for k in hypotheses:
        for name in (f"hyp{k}", f"gt+hyp{k}"):
            if name not in available:
                raise ConfigError(f"tables.table4: data setting {name!r} is not in settings.names")
            out.append(name)
    return out


def table5(by_component: Path, bleu_by_k: Mapping[int, float], reval_by_k: Mapping[int, float] | None, with_reference: bool) -> pd.DataFrame:
    """Table 5: decoding with the k-th latent variable only; pi-bar_k in percent, two perplexities per k.

    ``ppl`` is what the authors' ``eval_vhred_lgm_k.py`` prints for variable k and what the paper's column shows:
    its statistics reporter is created once and never cleared in the loop over k, so the value printed at k is the
    running mean of the per-variable perplexities of variables 0..k. ``ppl_own`` is variable k's own perplexity
    (the authors' per-batch mean of exp(mean token cross-entropy), over the test set, with z from variable k)."""
    meta = json.loads((pq.read_schema(by_component).metadata or {}).get(b"multiref", b"{}"))
    pi, ppl_k = meta.get("pi_mean"), meta.get("ppl_authors_by_k")
    if pi is None or ppl_k is None:
        raise MultirefError(f"{by_component}: no pi_mean / ppl_authors_by_k in its metadata (not a by-component decoding)")
    running = np.cumsum(np.asarray(ppl_k, dtype=float)) / np.arange(1, len(ppl_k) + 1)
    records = []
    for k in range(len(pi)):
        ref = paper.TABLE5.get(k) if with_reference else None
        records.append({"k": k, "pi": 100 * pi[k], "ppl": float(running[k]), "ppl_own": ppl_k[k], "bleu2": 100 * bleu_by_k[k],
                        "reval": None if reval_by_k is None else reval_by_k[k],
                        "paper_pattern": None if ref is None else ref["pattern"],
                        **{f"paper_{c}": None if ref is None else ref[c] for c in ("pi", "ppl", "bleu2", "reval")}})
    return pd.DataFrame(records)


def component_bleu(by_component: Path, test_pairs: Path, vocab_path: Path) -> dict[int, float]:
    """Mean BLEU-2 of the responses decoded with each latent variable k (raw, not x100)."""
    from multiref.data.pairs import split_tokens
    from multiref.eval.metrics import bleu2_scores
    from multiref.eval.run_metrics import references

    refs = references(test_pairs, vocab_path)
    frame = pq.read_table(by_component, columns=["k", "pair_id", "hypothesis"]).to_pandas()
    out = {}
    for k, group in frame.groupby("k", sort=True):
        scores = bleu2_scores([split_tokens(h) for h in group["hypothesis"]], [refs[p] for p in group["pair_id"]])
        out[int(k)] = float(np.mean(scores))
    return out


def component_reval(path: Path) -> dict[int, float]:
    """Mean Reval score of the responses decoded with each latent variable k."""
    frame = pq.read_table(path, columns=["k", "reval"]).to_pandas()
    return {int(k): float(v) for k, v in frame.groupby("k", sort=True)["reval"].mean().items()}


# ------------------------------------------------------------------------------------------------------
# LaTeX


def _tex_escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"), ("$", r"\$")):
        text = text.replace(a, b)
    return text


def _fmt(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "--"
    if kind in ("d1", "d2", "trn_time", "n_hyp", "k"):
        return f"{round(float(value)):,}".replace(",", "{,}")
    if kind == "ppl" and float(value) >= 1000:
        return f"{float(value):.1f}"
    return f"{float(value):.2f}"


def to_latex(frame: pd.DataFrame, columns: Sequence[str], caption: str, label: str, first: str = "model", groups: bool = True) -> str:
    """Booktabs LaTeX: the measured columns, group headings as in the paper (no reference columns)."""
    header = [HEADERS.get(c, _tex_escape(c)) for c in (first, *columns)]  # HEADERS are LaTeX already
    lines = [r"\begin{table*}[t]", r"\centering", r"\small", r"\begin{tabular}{l" + "r" * len(columns) + "}", r"\toprule",
             " & ".join(header) + r" \\", r"\midrule"]
    current = None
    for _, r in frame.iterrows():
        if groups and "group" in frame.columns and r["group"] and r["group"] != current:
            if current is not None:
                lines.append(r"\midrule")
            lines.append(rf"\multicolumn{{{len(columns) + 1}}}{{l}}{{\textit{{{_tex_escape(str(r['group']))}}}}} \\")
            current = r["group"]
        cells = [_tex_escape(str(r[first]))] + [_tex_escape(str(r[c])) if c == "data" else _fmt(r[c], c) for c in columns]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{_tex_escape(caption)}}}", rf"\label{{{label}}}", r"\end{table*}", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------
# The demo's synthetic-distance table


def synthetic_table(summaries: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per run (``"model/setting" -> summary``, the teacher first): mean KL(p || q) in nats, q's mass on
    valid responses, and the true distribution's entropy, over the same test contexts."""
    records = []
    for name, s in summaries.items():
        model, _, data = name.partition("/")
        records.append({"model": model, "data": data_label(data), "run": name, "contexts": s["contexts"], "kl_nats": s["mean_kl_nats"],
                        "valid_mass": s["mean_valid_mass"], "entropy_nats": s["mean_entropy_nats"], "prior_samples": s.get("prior_samples")})
    frame = pd.DataFrame(records)
    if frame["contexts"].nunique() > 1:
        raise MultirefError(f"runs were measured on different numbers of contexts: {sorted(frame['contexts'].unique())}")
    return frame


def synthetic_latex(frame: pd.DataFrame) -> str:
    lines = [r"\begin{table}[t]", r"\centering", r"\small", r"\begin{tabular}{llrr}", r"\toprule",
             r"Model & Data & KL$(p \| q)$ (nats) & $\sum_{y \in \mathrm{supp}\,p} q(y \mid c)$ \\", r"\midrule"]
    for _, r in frame.iterrows():
        lines.append(f"{_tex_escape(r['model'])} & {_tex_escape(r['data'])} & {r['kl_nats']:.2f} & {r['valid_mass']:.3f}" + r" \\")
    n, h = int(frame["contexts"].iloc[0]), float(frame["entropy_nats"].iloc[0])
    caption = (f"Exact distance of each model to the synthetic corpus's true response distribution p(y|c), mean over the first {n} "
               f"test contexts (entropy of p: {h:.2f} nats); lower KL and higher valid mass are better.")
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{_tex_escape(caption)}}}", r"\label{tab:synthetic}", r"\end{table}", ""]
    return "\n".join(lines)
