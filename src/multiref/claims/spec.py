"""The papers' claims as data: typed claims, their parser (``claims`` section of the configuration), the check
of a configuration's claims against the runs it can train, and the run folders of a run with several seeds.

A claim compares runs on metrics. Each comparison names a ``better`` and a ``worse`` run (``model/setting``);
the estimate is mean(better) - mean(worse) on the metric's printed scale, and the ``direction`` says what the
paper claims about it:

``greater``
    the better run is better (higher, or lower for ppl and KL);
``equivalent``
    the two runs differ by less than ``margin[metric]`` either way (two one-sided tests);
``limited``
    the better run's gain over the worse run is below ``margin[metric]`` (a one-sided test: the paper's
    "the performance gain is limited");
``not_consistently_greater``
    the better run (a larger model, say) is not better on every comparison and metric: some (comparison,
    metric) shows it significantly worse.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from multiref.data.settings import seeded_name
from multiref.errors import ConfigError

PAPERS = {"zhao2021": "Zhao, Lala & Kawahara (2021)", "li2021": "Li, Kiseleva & de Rijke (2021)"}
DIRECTIONS = ("greater", "equivalent", "limited", "not_consistently_greater")
MARGIN_DIRECTIONS = ("equivalent", "limited")
CLAIM_KEYS = ("id", "paper", "section", "sentence", "direction", "metrics", "comparisons", "margin", "triples", "note")
SECTION_KEYS = ("seeds", "level", "samples", "seed", "list")
DEFAULTS: dict[str, Any] = {"seeds": 1, "level": 0.95, "samples": 1000, "seed": 0, "list": []}
RUN = re.compile(r"^([a-z0-9_]+(?:\+mmi)?)/(gt|hyp[0-9]+|gt\+hyp[0-9]+)$")
ID = re.compile(r"^[a-z0-9_]+$")


@dataclass(frozen=True)
class Metric:
    """A metric a claim can compare, with its label and whether lower is better. Whether it is bootstrapped over
    seeds and test contexts or over seeds alone depends on the runs' scores (:func:`multiref.claims.compare`): the
    default loader has per-context BLEU-2, Ext, Avg, Grd and Reval, and one value per run of ppl, D1 and D2."""

    name: str
    label: str
    lower_is_better: bool


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("ppl", "ppl", True),
    Metric("bleu2", "BLEU-2", False),
    Metric("ext", "Ext", False),
    Metric("avg", "Avg", False),
    Metric("grd", "Grd", False),
    Metric("reval", "Reval", False),
    Metric("d1", "D1", False),
    Metric("d2", "D2", False),
    Metric("kl", "KL (nats)", True),
)}


@dataclass(frozen=True)
class RunRef:
    """A training run of ``model`` on data setting ``data``: on the pairs (``runs/``) or, with ``triples``, on
    the Mirror section's triples (``mirror/runs/``; MMI is ``seq2seq_attn+mmi``)."""

    model: str
    data: str
    triples: bool = False

    @property
    def name(self) -> str:
        """``model/data``, with ``mirror/`` in front for a run on triples (its folder under the root)."""
        return f"{'mirror/' if self.triples else ''}{self.model}/{self.data}"


@dataclass(frozen=True)
class Comparison:
    """The runs a claim compares; the estimate is mean(better) - mean(worse)."""

    better: RunRef
    worse: RunRef


@dataclass(frozen=True)
class Claim:
    """One qualitative claim of a paper, as comparisons of runs on metrics (see the module's docstring)."""

    id: str
    paper: str
    section: str
    sentence: str
    direction: str
    metrics: tuple[str, ...]
    comparisons: tuple[Comparison, ...]
    margin: Mapping[str, float] = field(default_factory=dict)
    triples: bool = False
    note: str = ""


@dataclass(frozen=True)
class Claims:
    """The ``claims`` section: every claim, the training seeds per compared run, the interval level and the
    bootstrap's resamples and seed."""

    claims: tuple[Claim, ...]
    seeds: int = 1
    level: float = 0.95
    samples: int = 1000
    seed: int = 0

    def runs(self) -> list[RunRef]:
        """Every run some claim compares, once each, in order of appearance."""
        refs = [ref for c in self.claims for comp in c.comparisons for ref in (comp.better, comp.worse)]
        return list(dict.fromkeys(refs))


def run_dirs(root: str | Path, model: str, data: str, seeds: int, mirror: bool = False) -> list[Path]:
    """The folders of ``seeds`` training seeds of one run: ``<root>/runs/<model>/<data>/`` for seed index 0 and
    ``<root>/runs/<model>/<data>_seed<k>/`` for k >= 1 (under ``<root>/mirror/runs/`` with ``mirror``)."""
    if seeds < 1:
        raise ConfigError(f"claims.seeds: expected an integer >= 1, got {seeds!r}")
    base = Path(root) / ("mirror/runs" if mirror else "runs") / model
    return [base / seeded_name(data, k) for k in range(seeds)]


# ------------------------------------------------------------------------------------------------------
# Parsing


def _number(value: Any, where: str, low: float, high: float, integer: bool = False) -> float:
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not math.isfinite(float(value)) or not low <= float(value) <= high:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{where}: expected {kind} in [{low:g}, {high:g}], got {value!r}")
    return int(value) if integer else float(value)


def _text(item: Mapping[str, Any], key: str, where: str, required: bool = True) -> str:
    value = item.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}.{key}: expected a non-empty string, got {value!r}")
    return " ".join(value.split())


def _choice(item: Mapping[str, Any], key: str, where: str, choices: Sequence[str]) -> str:
    value = item.get(key)
    if value not in choices:
        raise ConfigError(f"{where}.{key}: {value!r} is not one of {', '.join(choices)}")
    return str(value)


def _run(value: Any, where: str, triples: bool) -> RunRef:
    match = RUN.match(value) if isinstance(value, str) else None
    if match is None:
        raise ConfigError(f"{where}: expected a run as model/setting (e.g. hred/hyp5), got {value!r}")
    if match.group(1).endswith("+mmi") and not triples:
        raise ConfigError(f"{where}: an MMI system ({value!r}) exists only on the triples (triples: true)")
    return RunRef(match.group(1), match.group(2), triples)


def _comparisons(value: Any, where: str, triples: bool) -> tuple[Comparison, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: expected a non-empty list of {{better: model/setting, worse: model/setting}}, got {value!r}")
    out = []
    for j, comp in enumerate(value):
        at = f"{where}[{j}]"
        if not isinstance(comp, Mapping) or set(comp) != {"better", "worse"}:
            raise ConfigError(f"{at}: expected exactly the keys better and worse, got {comp!r}")
        better, worse = _run(comp["better"], f"{at}.better", triples), _run(comp["worse"], f"{at}.worse", triples)
        if better == worse:
            raise ConfigError(f"{at}: compares run {better.name!r} with itself")
        out.append(Comparison(better, worse))
    return tuple(out)


def _metrics(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: expected a non-empty list of metrics ({', '.join(METRICS)}), got {value!r}")
    for name in value:
        if not isinstance(name, str) or name not in METRICS:
            raise ConfigError(f"{where}: unknown metric {name!r}; known: {', '.join(METRICS)}")
    if len(set(value)) != len(value):
        raise ConfigError(f"{where}: a metric is listed twice in {value!r}")
    return tuple(value)


def _margin(value: Any, where: str, direction: str, metrics: Sequence[str]) -> dict[str, float]:
    if direction not in MARGIN_DIRECTIONS:
        if value:
            raise ConfigError(f"{where}: a margin belongs to direction {' or '.join(MARGIN_DIRECTIONS)}, not {direction!r} (got {value!r})")
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: direction {direction!r} needs a margin per metric ({{metric: number > 0}}), got {value!r}")
    missing = [m for m in metrics if m not in value]
    if missing:
        raise ConfigError(f"{where}: direction {direction!r} needs a margin for every metric; missing {missing}")
    extra = sorted(set(value) - set(metrics))
    if extra:
        raise ConfigError(f"{where}: margin for metric(s) {extra} that the claim does not compare")
    out = {}
    for m in metrics:
        out[m] = _number(value[m], f"{where}.{m}", 0, math.inf)
        if out[m] <= 0:
            raise ConfigError(f"{where}.{m}: expected a margin > 0, got {value[m]!r}")
    return out


def parse_claim(item: Any, where: str) -> Claim:
    """One entry of ``claims.list``; ``where`` (``claims.list[i]``) prefixes every error message."""
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {item!r}")
    unknown = sorted(set(item) - set(CLAIM_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; a claim has {', '.join(CLAIM_KEYS)}")
    ident = _text(item, "id", where)
    if not ID.match(ident):
        raise ConfigError(f"{where}.id: expected lower-case letters, digits and _, got {ident!r}")
    direction = _choice(item, "direction", where, DIRECTIONS)
    triples = item.get("triples", False)
    if not isinstance(triples, bool):
        raise ConfigError(f"{where}.triples: expected true or false, got {triples!r}")
    metrics = _metrics(item.get("metrics"), f"{where}.metrics")
    return Claim(
        id=ident, paper=_choice(item, "paper", where, tuple(PAPERS)), section=_text(item, "section", where),
        sentence=_text(item, "sentence", where), direction=direction, metrics=metrics,
        comparisons=_comparisons(item.get("comparisons"), f"{where}.comparisons", triples),
        margin=_margin(item.get("margin"), f"{where}.margin", direction, metrics), triples=triples, note=_text(item, "note", where, required=False),
    )


def parse_claims(section: Mapping[str, Any] | None) -> Claims:
    """The ``claims`` section of a configuration (missing keys take the schema's defaults), validated key by key:
    a bad value raises :class:`ConfigError` naming ``claims.<key>`` or ``claims.list[i].<key>`` and the value."""
    section = {} if section is None else section
    if not isinstance(section, Mapping):
        raise ConfigError(f"claims: expected a mapping, got {section!r}")
    unknown = sorted(set(section) - set(SECTION_KEYS))
    if unknown:
        raise ConfigError(f"claims: unknown key(s) {unknown}; the section has {', '.join(SECTION_KEYS)}")
    s = {**DEFAULTS, **section}
    items = s["list"]
    if not isinstance(items, list):
        raise ConfigError(f"claims.list: expected a list of claims, got {items!r}")
    claims = tuple(parse_claim(item, f"claims.list[{i}]") for i, item in enumerate(items))
    ids = [c.id for c in claims]
    for i, ident in enumerate(ids):
        if ident in ids[:i]:
            raise ConfigError(f"claims.list[{i}].id: {ident!r} is already the id of claims.list[{ids.index(ident)}]")
    return Claims(
        claims=claims, seeds=int(_number(s["seeds"], "claims.seeds", 1, math.inf, integer=True)),
        level=_level(s["level"]), samples=int(_number(s["samples"], "claims.samples", 1, math.inf, integer=True)),
        seed=int(_number(s["seed"], "claims.seed", -math.inf, math.inf, integer=True)),
    )


def _level(value: Any) -> float:
    level = _number(value, "claims.level", 0, 1)
    if not 0.5 < level < 1:  # the equivalence test's 1 - 2 alpha interval needs level > 0.5
        raise ConfigError(f"claims.level: expected a number in (0.5, 1), got {value!r}")
    return level


# ------------------------------------------------------------------------------------------------------
# Against the configuration


def _pairs_run_problem(config: Mapping[str, Any], ref: RunRef) -> str | None:
    from multiref.config import setting_problem

    if ref.model not in config["models"]:
        return f"model {ref.model!r} is not in `models` (configured: {', '.join(sorted(config['models']))})"
    if ref.data not in config["settings"]["names"]:
        return f"data setting {ref.data!r} is not in settings.names ({', '.join(config['settings']['names'])})"
    return setting_problem(ref.data, config["teacher"]["sampling"]["n"])


def _triples_run_problem(config: Mapping[str, Any], ref: RunRef) -> str | None:
    systems = [(s["model"], s["data"]) for s in config.get("mirror", {}).get("systems", [])]
    if (ref.model, ref.data) not in systems:
        listed = ", ".join(f"{m}/{d}" for m, d in systems) or "none"
        return f"run {ref.model}/{ref.data} on the triples is not a row of mirror.systems ({listed})"
    return None


def _claim_problems(config: Mapping[str, Any], i: int, claim: Claim) -> Iterator[str]:
    where = f"claims.list[{i}] ({claim.id})"
    for j, comp in enumerate(claim.comparisons):
        for side, ref in (("better", comp.better), ("worse", comp.worse)):
            problem = (_triples_run_problem if ref.triples else _pairs_run_problem)(config, ref)
            if problem:
                yield f"{where}.comparisons[{j}].{side}: the configuration does not train {ref.name}: {problem}"
            elif "ppl" in claim.metrics and not ref.triples and config["models"][ref.model].get("kind") == "hred_tokkd":
                yield (f"{where}: metric ppl on {ref.name}: a tok-KD student's perplexity is per GPT-2 BPE token, not comparable "
                       "with the word-level models'; drop ppl from this claim")
    if "kl" in claim.metrics and (claim.triples or config["corpus"]["source"] != "synthetic"):
        yield f"{where}.metrics: kl (the exact distance to the true response distribution) exists only for runs on the pairs of a synthetic corpus"


def problems(config: Mapping[str, Any]) -> Iterator[str]:
    """Every problem of a schema-valid configuration's ``claims`` section, one line each: a bad key (as
    :func:`parse_claims`), a claim naming a run the configuration does not train (a model outside ``models``, a
    setting outside ``settings.names``, a run on triples that is not a ``mirror.systems`` row), ppl on a tok-KD
    run, KL outside a synthetic corpus. Same signature as the checks of :mod:`multiref.config`."""
    try:
        claims = parse_claims(config.get("claims"))
    except ConfigError as exc:
        yield str(exc)
        return
    for i, claim in enumerate(claims.claims):
        yield from _claim_problems(config, i, claim)
