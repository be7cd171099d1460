"""Checks of a whole configuration that the schema cannot express: constraints between keys, model shapes,
local files, so that a configuration that would fail in a job fails before any job runs, with the key and
the value. ``workflow/rules/common.smk`` runs :func:`check` when the workflow is parsed (dry runs too) and
:func:`check_models` when a run starts (``onstart``, before the first job): building the models needs torch,
whose import would add seconds to every parse.

The schema (``workflow/schemas/config.schema.yaml``) checks each key alone: types, ranges, names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from multiref.errors import ConfigError

Check = Callable[[Mapping[str, Any]], Iterator[str]]


def _split(config: Mapping[str, Any]) -> Iterator[str]:
    split = config["data"]["split"]
    train_end, dev_end = split["train_end"], split["dev_end"]
    if not train_end < dev_end < 1:
        yield (
            f"data.split: train_end ({train_end}) < dev_end ({dev_end}) < 1 must hold, or the dev or test split "
            "has no sessions"
        )


def _teacher(config: Mapping[str, Any]) -> Iterator[str]:
    teacher = config["teacher"]
    if teacher["init"] == "scratch":
        shape = teacher["scratch"]
        if shape["n_embd"] % shape["n_head"]:
            yield (
                f"teacher.scratch: n_embd ({shape['n_embd']}) must be a multiple of n_head ({shape['n_head']}), "
                "each attention head taking n_embd / n_head units"
            )
        room = shape["n_positions"] - teacher["sampling"]["max_new_tokens"]
        if room < 3:
            yield (
                f"teacher.sampling.max_new_tokens ({teacher['sampling']['max_new_tokens']}) leaves {room} of "
                f"teacher.scratch.n_positions ({shape['n_positions']}) for the context (at least 3)"
            )
    elif _explicit_path(teacher["model"]) and not Path(teacher["model"]).expanduser().is_dir():
        yield f"teacher.model: {teacher['model']} is not a folder (a local GPT-2 saved with save_pretrained, or a hub name)"


def _schedules(config: Mapping[str, Any]) -> Iterator[str]:
    train = config["train"]
    mirror_train = {**train, **config["mirror"]["train"]}
    for key, sched in (("train", train), ("mirror.train", mirror_train)):
        if sched["lr"] <= sched["min_lr"]:
            yield (
                f"{key}: lr ({sched['lr']}) must exceed min_lr ({sched['min_lr']}); training stops once the learning "
                "rate is at or below min_lr, so no step would be taken"
            )
    reval = config["reval"]["train"]
    if reval["lr"] <= reval["min_lr"]:
        yield f"reval.train: lr ({reval['lr']}) must exceed min_lr ({reval['min_lr']}), or no epoch would be trained"


def _reval(config: Mapping[str, Any]) -> Iterator[str]:
    reval = config["reval"]
    split = reval["split"]
    if split["dev_share"] + split["test_share"] >= 1:
        yield (
            f"reval.split: dev_share ({split['dev_share']}) + test_share ({split['test_share']}) must be below 1, or no "
            "judgement is left to train on"
        )
    judgements = reval["judgements"]
    if judgements["source"] == "synthetic" and config["corpus"]["source"] != "synthetic":
        yield (
            "reval.judgements.source 'synthetic' scores the synthetic corpus's responses; it needs corpus.source "
            f"synthetic (got {config['corpus']['source']!r})"
        )
    if judgements["source"] == "local":
        path = judgements["path"]
        if not path:
            yield "reval.judgements.source is 'local' but reval.judgements.path is empty"
        elif not Path(path).is_file():
            yield f"reval.judgements.path: {path} is not a file"
    if _explicit_path(reval["encoder"]) and not Path(reval["encoder"]).expanduser().is_dir():
        yield f"reval.encoder: {reval['encoder']} is not a folder (a local encoder saved with save_pretrained, or a hub name)"


def _files(config: Mapping[str, Any]) -> Iterator[str]:
    archive = config["corpus"]["archive"]
    if config["corpus"]["source"] == "dailydialog" and archive and not Path(archive).is_file():
        yield f"corpus.archive: {archive} is not a file"
    for key in ("train", "eval"):
        source = config[key]["word_vectors"]
        if source and _looks_like_path(source) and not Path(source).expanduser().is_file():
            yield f"{key}.word_vectors: {source} is not a file (a local word-vector file, or a gensim-data name)"


def _models(config: Mapping[str, Any]) -> Iterator[str]:
    from multiref.models import registry  # torch: only when the configuration has models to check

    for name, spec in config["models"].items():
        try:
            registry.check_spec(name, spec)
        except ConfigError as exc:
            yield f"models.{name}: {exc}"


def setting_problem(name: str, n_hypotheses: int) -> str | None:
    """Why a data setting name cannot be built (no Table 9 budget, more hypotheses than the teacher samples,
    not a setting name), or None."""
    from multiref.data.settings import parse_setting

    try:
        setting = parse_setting(name)
        setting.epochs  # noqa: B018 (raises for a setting without a budget in Table 9)
    except ConfigError as exc:
        return str(exc)
    if setting.k > n_hypotheses:
        return f"{name!r} needs {setting.k} hypotheses per pair but teacher.sampling.n is {n_hypotheses}"
    return None


def _settings(config: Mapping[str, Any]) -> Iterator[str]:
    for name in config["settings"]["names"]:
        problem = setting_problem(name, config["teacher"]["sampling"]["n"])
        if problem:
            yield f"settings.names: {problem}"


def run_pairs(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (model, setting) runs that ``rule all`` trains: ``runs.models`` x ``runs.settings``, then ``runs.extra``."""
    runs = config["runs"]
    pairs = [(m, d) for m in runs["models"] for d in runs["settings"]]
    pairs += [tuple(item.split("/", 1)) for item in runs["extra"]]  # type: ignore[misc]
    return list(dict.fromkeys(pairs))


Claimed = tuple[frozenset[tuple[str, str, bool]], int]


def claimed_runs(config: Mapping[str, Any]) -> Claimed:
    """The runs the claims compare, as (model, data, on triples), and ``claims.seeds``; none when the section has
    a problem (the claims check reports it)."""
    from multiref.claims.spec import parse_claims

    try:
        claims = parse_claims(config.get("claims"))
    except ConfigError:
        return frozenset(), 1
    return frozenset((r.model, r.data, r.triples) for r in claims.runs()), claims.seeds


def seed_count(config: Mapping[str, Any], model: str, data: str, mirror: bool = False, claimed: Claimed | None = None) -> int:
    """How many seeds the run of ``model`` on ``data`` (on Mirror's triples if ``mirror``) is trained with:
    ``train.seeds`` (the paper: 1), or ``claims.seeds`` if larger for a run a claim compares (``claimed``: a
    :func:`claimed_runs` computed once); the teacher is fine-tuned once."""
    if model == "teacher":
        return 1
    runs, seeds = claimed if claimed is not None else claimed_runs(config)
    base = int(config["train"].get("seeds", 1))
    return max(base, seeds) if (model, data, mirror) in runs else base


def _runs(config: Mapping[str, Any]) -> Iterator[str]:
    for name, data in run_pairs(config):
        if name not in config["models"]:
            yield f"runs: unknown model {name!r}"
        if data not in config["settings"]["names"]:
            yield f"runs: data setting {data!r} is not in settings.names"


def _configured(config: Mapping[str, Any]) -> str:
    return ", ".join(sorted(config["models"]))


def table4_settings(config: Mapping[str, Any]) -> list[str]:
    """The data settings of Table 4's rows: hypK and gt+hypK for each K of ``tables.table4.hypotheses``."""
    return [name for k in config["tables"]["table4"]["hypotheses"] for name in (f"hyp{k}", f"gt+hyp{k}")]


def _row(config: Mapping[str, Any], table: str, model: str, data: str) -> Iterator[str]:
    if model == "teacher":
        if data != "gt":
            yield f"tables.{table}: the teacher row is trained on 'gt', not {data!r}"
        return
    if model not in config["models"]:
        yield f"tables.{table}: unknown model {model!r}; configured models: {_configured(config)}"
    elif data not in config["settings"]["names"]:
        yield f"tables.{table}: data setting {data!r} is not in settings.names"


def _tables(config: Mapping[str, Any]) -> Iterator[str]:
    tables = config["tables"]
    for table in ("table1", "table2"):
        for row in tables[table]:
            yield from _row(config, table, row["model"], row["data"])
    if tables["table4"]["model"]:
        for data in table4_settings(config):
            yield from _row(config, "table4", tables["table4"]["model"], data)
    model = tables["table5"]["model"]
    if model:
        problems = list(_row(config, "table5", model, tables["table5"]["data"]))
        yield from problems
        if not problems and config["models"][model].get("prior") not in ("gmm", "lgm"):
            yield f"tables.table5: model {model!r} has no mixture prior (prior: gmm or lgm)"
    for control in tables["synthetic"]["equal_steps"]:
        for data in (control["data"], control["like"]):
            yield from _row(config, "synthetic.equal_steps", control["model"], data)
        if control["model"] in config["models"] and config["models"][control["model"]].get("kind") == "hred_tokkd":
            yield "tables.synthetic.equal_steps: tok-KD has no exact distance to the synthetic truth (another vocabulary)"


def equal_steps(config: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """The equal-steps controls of the demo's synthetic table, (model, data, like); none on another corpus."""
    if config["corpus"]["source"] != "synthetic":
        return []
    return [(c["model"], c["data"], c["like"]) for c in config["tables"]["synthetic"]["equal_steps"]]


MMI_SUFFIX = "+mmi"


def _mirror(config: Mapping[str, Any]) -> Iterator[str]:
    mirror = config["mirror"]
    systems = mirror["systems"]
    if not systems:
        return
    if systems[0]["role"] != "mirror":
        yield "mirror.systems: the first row is the reference Mirror system (role: mirror)"
    if not any(s["role"] == "baseline" for s in systems):
        yield "mirror.systems: no row with role: baseline to compare with"
    if "reval" not in config:
        yield "mirror.systems: the pairwise table's judge is the learned evaluator; configure `reval`"
    unknown = sorted(set(mirror["train"]) - set(config["train"]))
    if unknown:
        yield f"mirror.train: unknown key(s) {unknown}; it overrides keys of `train` ({', '.join(sorted(config['train']))})"
    labels = [s["label"] for s in systems]
    if len(set(labels)) != len(labels):
        yield f"mirror.systems: labels must be unique, got {labels}"
    for system in systems:
        yield from _mirror_system(config, system)


def _mirror_system(config: Mapping[str, Any], system: Mapping[str, Any]) -> Iterator[str]:
    mirror, models = config["mirror"], config["models"]
    where = f"mirror.systems ({system['label']})"
    model = system["model"].removesuffix(MMI_SUFFIX)
    if model not in models:
        yield f"{where}: unknown model {model!r}; configured models: {_configured(config)}"
        return
    problem = setting_problem(system["data"], config["teacher"]["sampling"]["n"])
    if problem:
        yield f"{where}: {problem}"
    if system["model"].endswith(MMI_SUFFIX):
        backward = mirror["backward"]
        if not backward or backward not in models:
            yield f"{where}: an MMI system needs mirror.backward, the name of a seq2seq_attn model (got {backward!r})"
            return
        for name in (model, backward):
            if models[name]["kind"] != "seq2seq_attn":
                yield f"{where}: MMI reranks with seq2seq_attn models; {name!r} is a {models[name]['kind']}"
    if models[model]["kind"] == "hred_tokkd":
        yield f"{where}: hred_tokkd distils the teacher's BPE distributions; it has no triples version"


def _claims(config: Mapping[str, Any]) -> Iterator[str]:
    from multiref.claims.spec import problems as claim_problems

    yield from claim_problems(config)


CHECKS: tuple[Check, ...] = (_split, _teacher, _schedules, _reval, _files, _settings, _runs, _tables, _mirror, _claims)


def problems(config: Mapping[str, Any], models: bool = False) -> list[str]:
    """Every cross-key problem of a schema-valid configuration (with its defaults filled in), one line each;
    with ``models``, also those of the model entries (:func:`check_models`)."""
    return [line for check in (*CHECKS, *((_models,) if models else ())) for line in check(config)]


def _raise(found: list[str]) -> None:
    if found:
        raise ConfigError(found[0] if len(found) == 1 else "\n  " + "\n  ".join(found))


def check(config: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` listing every cross-key problem but the models', if any (no torch needed)."""
    _raise(problems(config))


def check_models(config: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` listing every model entry whose network cannot be built (imports torch)."""
    _raise(list(_models(config)))


def _explicit_path(value: str) -> bool:
    """A model value meant as a local folder: it starts with '/', '.' or '~' (a hub name may hold a '/')."""
    return value.startswith(("/", ".", "~"))


def _looks_like_path(value: str) -> bool:
    """A word-vector value meant as a local file rather than a gensim-data name (those have no '/' and no
    suffix), as :func:`multiref.vectors.load_vectors` reads it."""
    return "/" in value or value.startswith((".", "~")) or value.endswith((".txt", ".bin", ".gz", ".kv"))
