# Configuration validation, output paths and guards shared by every stage.
import sys
from pathlib import Path, PurePosixPath

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

sys.path.insert(
    0, str(Path(workflow.basedir) / "src")
)  # the library, even when not installed

from multiref.config import check as check_config, check_models
from multiref.data.settings import parse_setting
from multiref.errors import ConfigError
from multiref.workflow import claim_root, RootClaimed

validate(config, schema="../schemas/config.schema.yaml")
# Constraints between keys (multiref.config); a cluster job re-parses the workflow, the main process checked it.
if workflow.is_main_process:
    try:
        check_config(config)
    except ConfigError as exc:
        raise WorkflowError(f"configuration: {exc}")

ROOT = config["root"].rstrip("/")
RUN_STAMP = Path(ROOT) / ".multiref-run"
SPLITS = ["train", "dev", "test"]


def out(path):
    """Path of an output of this configuration: everything lives under config['root']."""
    return f"{ROOT}/{path}"


def log_path(name):
    return f"{ROOT}/logs/{name}.log"


def bench_path(name):
    return f"{ROOT}/benchmarks/{name}.tsv"


if RUN_STAMP.exists():
    _stamped = RUN_STAMP.read_text().strip()
    if _stamped != config["run_name"]:
        raise WorkflowError(
            f"{ROOT}/ holds outputs of configuration '{_stamped}', not '{config['run_name']}'. "
            "Set 'root' to another folder (or remove the old outputs) so runs never mix."
        )


def stamp_run():
    """When the run starts, before any job: check the model entries (their networks are built on the meta
    device; torch is too slow to import at every parse) and claim ROOT for this configuration (atomically: of
    two runs that start together on a new root with different run_names, one is refused).
    """
    try:
        check_models(config)
        claim_root(RUN_STAMP, config["run_name"])
    except ConfigError as exc:
        raise WorkflowError(f"configuration: {exc}")


def corpus_archive():
    """Archive read by the corpus step: the generated one, a local copy, or none (download)."""
    if config["corpus"]["source"] == "synthetic":
        return rules.synthetic_corpus.output.archive
    if config["corpus"]["archive"]:
        return config["corpus"]["archive"]
    return []


LIGHT = {
    "mem_mb": config["resources"]["light_mem_mb"],
    "runtime": config["resources"]["light_runtime"],
}


HYPOTHESIS_SHARDS = [
    out(f"teacher/hypotheses/shard{i:04d}.parquet")
    for i in range(config["teacher"]["shards"])
]


def check_setting(name, where):
    """The setting ``name``, or an error naming ``where`` (a key or target) and the value.

    It must have an epoch budget in the paper's Table 9 and K <= teacher.sampling.n.
    """
    try:
        setting = parse_setting(name)
        setting.epochs
    except ConfigError as exc:
        raise WorkflowError(f"{where}: {exc}")
    if setting.k > config["teacher"]["sampling"]["n"]:
        raise WorkflowError(
            f"{where}: {name!r} needs {setting.k} hypotheses per pair but "
            f"teacher.sampling.n is {config['teacher']['sampling']['n']}"
        )
    return setting


for _name in config["settings"]["names"]:
    check_setting(_name, "settings.names")
SETTINGS = [
    out(f"data/settings/{name}.parquet") for name in config["settings"]["names"]
]
TEACHER_FIT = (
    [out("teacher/fit.json")] if config["corpus"]["source"] == "synthetic" else []
)


def model_spec(wildcards):
    """The configuration entry of a model name, or a clear error naming the unknown one."""
    if wildcards.model not in config["models"]:
        raise WorkflowError(
            f"unknown model {wildcards.model!r}; configured models: {', '.join(sorted(config['models']))}"
        )
    return config["models"][wildcards.model]


def setting_inputs(wildcards):
    """A data setting needs the teacher's hypotheses only when it uses some (gt alone does not)."""
    inputs = {"train": out("data/pairs/train.parquet")}
    target = out(f"data/settings/{wildcards.setting}.parquet")
    if check_setting(wildcards.setting, target).k > 0:
        inputs["hypotheses"] = out("teacher/hypotheses/manifest.json")
    return inputs


def run_inputs(wildcards):
    """Inputs of one training run; hypotheses only for settings that use them."""
    model_spec(wildcards)
    inputs = {
        "setting": out(f"data/settings/{wildcards.data}.parquet"),
        "train": out("data/pairs/train.parquet"),
        "dev": out("data/pairs/dev.parquet"),
        "vocab": out("data/vocab.parquet"),
    }
    if parse_setting(wildcards.data).k > 0:
        inputs["hypotheses"] = out("teacher/hypotheses/manifest.json")
    if config["models"][wildcards.model]["kind"] == "hred_tokkd":
        inputs["teacher"] = out("teacher/model")  # distils the teacher's distributions
    elif config["train"]["word_vectors"]:
        inputs["embeddings"] = out("data/word_vectors/init.npy")
    return inputs


def decode_inputs(wildcards):
    """A trained run, the test pairs, and what its vocabulary comes from."""
    kind = model_spec(wildcards)["kind"]
    inputs = {
        "model": out(f"runs/{wildcards.model}/{wildcards.data}/model.pt"),
        "test": out("data/pairs/test.parquet"),
        "vocab": out("data/vocab.parquet"),
    }
    if kind == "hred_tokkd":
        inputs["teacher"] = out("teacher/model")
    return inputs


_RUN_PAIRS = [
    (m, d) for m in config["runs"]["models"] for d in config["runs"]["settings"]
]
_RUN_PAIRS += [
    tuple(item.partition(chr(47))[::2]) for item in config["runs"]["extra"]
]  # "model/setting"
for _name, _data in _RUN_PAIRS:
    if _name not in config["models"]:
        raise WorkflowError(f"runs: unknown model {_name!r}")
    if _data not in config["settings"]["names"]:
        raise WorkflowError(f"runs: data setting {_data!r} is not in settings.names")
RUNS = [out(f"runs/{m}/{d}/model.pt") for m, d in dict.fromkeys(_RUN_PAIRS)]


# Tables: the runs their rows name, checked before any job runs (workflow/rules/tables.smk).
REVAL_SCORES = (
    "reval" in config
)  # the learned evaluator's scores join the tables when it is configured
TABLES = config["tables"]


def _check_row(table, model, data):
    if model == "teacher":
        if data != "gt":
            raise WorkflowError(
                f"tables.{table}: the teacher row is trained on 'gt', not {data!r}"
            )
        return
    if model not in config["models"]:
        raise WorkflowError(
            f"tables.{table}: unknown model {model!r}; configured models: {', '.join(sorted(config['models']))}"
        )
    if data not in config["settings"]["names"]:
        raise WorkflowError(
            f"tables.{table}: data setting {data!r} is not in settings.names"
        )


def test_dir(model, data):
    """Folder of a row's test outputs (the teacher's, or a run's)."""
    return (
        out("teacher/test") if model == "teacher" else out(f"runs/{model}/{data}/test")
    )


def row_files(model, data):
    """Every file a table row reads: test metrics, perplexity, Reval scores, and the run's info."""
    base = test_dir(model, data)
    files = [
        f"{base}/{name}"
        for name in ("metrics.json", "perplexity.json", "per_pair.parquet")
    ]
    if REVAL_SCORES:
        files += [f"{base}/reval.json", f"{base}/reval.parquet"]
    files.append(
        out("teacher/metrics.json")
        if model == "teacher"
        else out(f"runs/{model}/{data}/info.json")
    )
    return files


for _table in ("table1", "table2"):
    for _row in TABLES[_table]:
        _check_row(_table, _row["model"], _row["data"])
if TABLES["table4"]["model"]:
    for _k in TABLES["table4"]["hypotheses"]:
        for _data in (f"hyp{_k}", f"gt+hyp{_k}"):
            _check_row("table4", TABLES["table4"]["model"], _data)
if TABLES["table5"]["model"]:
    _check_row("table5", TABLES["table5"]["model"], TABLES["table5"]["data"])
    if config["models"][TABLES["table5"]["model"]].get("prior") not in ("gmm", "lgm"):
        raise WorkflowError(
            f"tables.table5: model {TABLES['table5']['model']!r} has no mixture prior (prior: gmm or lgm)"
        )

TABLE4_SETTINGS = [
    name for k in TABLES["table4"]["hypotheses"] for name in (f"hyp{k}", f"gt+hyp{k}")
]


def table5_inputs(wildcards):
    base = test_dir(TABLES["table5"]["model"], TABLES["table5"]["data"])
    inputs = {
        "by_component": f"{base}/by_component.parquet",
        "test": out("data/pairs/test.parquet"),
        "vocab": out("data/vocab.parquet"),
    }
    if REVAL_SCORES:
        inputs["reval"] = f"{base}/by_component_reval.parquet"
    return inputs


_TABLE_RUNS = [(r["model"], r["data"]) for t in ("table1", "table2") for r in TABLES[t]]
_TABLE_RUNS += [(TABLES["table4"]["model"], d) for d in TABLE4_SETTINGS]
SYNTHETIC_RUNS = [
    (m, d)
    for m, d in dict.fromkeys(_RUN_PAIRS + _TABLE_RUNS)
    if m in config["models"] and config["models"][m]["kind"] != "hred_tokkd"
]


TABLE_OUTPUTS = [out("table1.csv"), out("table2.csv")]
TABLE_OUTPUTS += [out("table4.csv")] if TABLES["table4"]["model"] else []
TABLE_OUTPUTS += [out("table5.csv")] if TABLES["table5"]["model"] else []
TABLE_OUTPUTS += (
    [out("table_synthetic.csv")] if config["corpus"]["source"] == "synthetic" else []
)


# Mirror (workflow/rules/mirror.smk): triples, the runs on them, the Mirror table and the human-evaluation sheet.
MIRROR = config["mirror"]
MIRROR_SYSTEMS = MIRROR["systems"]
MMI_SUFFIX = f"{chr(43)}mmi"  # written with chr(43): snakemake --lint reads a plus after a quote as path composition


def _check_mirror():
    if not MIRROR_SYSTEMS:
        return
    if MIRROR_SYSTEMS[0]["role"] != "mirror":
        raise WorkflowError(
            "mirror.systems: the first row is the reference Mirror system (role: mirror)"
        )
    if not any(s["role"] == "baseline" for s in MIRROR_SYSTEMS):
        raise WorkflowError(
            "mirror.systems: no row with role: baseline to compare with"
        )
    if not REVAL_SCORES:
        raise WorkflowError(
            "mirror.systems: the pairwise table's judge is the learned evaluator; configure `reval`"
        )
    unknown = sorted(set(MIRROR["train"]) - set(config["train"]))
    if unknown:
        raise WorkflowError(
            f"mirror.train: unknown key(s) {unknown}; it overrides keys of `train` ({', '.join(sorted(config['train']))})"
        )
    labels = [s["label"] for s in MIRROR_SYSTEMS]
    if len(set(labels)) != len(labels):
        raise WorkflowError(f"mirror.systems: labels must be unique, got {labels}")
    for s in MIRROR_SYSTEMS:
        where = f"mirror.systems ({s['label']})"
        model = s["model"].removesuffix(MMI_SUFFIX)
        if model not in config["models"]:
            raise WorkflowError(
                f"{where}: unknown model {model!r}; configured models: {', '.join(sorted(config['models']))}"
            )
        check_setting(s["data"], where)
        if s["model"].endswith(MMI_SUFFIX):
            if not MIRROR["backward"] or MIRROR["backward"] not in config["models"]:
                raise WorkflowError(
                    f"{where}: an MMI system needs mirror.backward, the name of a seq2seq_attn model (got {MIRROR['backward']!r})"
                )
            for name in (model, MIRROR["backward"]):
                if config["models"][name]["kind"] != "seq2seq_attn":
                    raise WorkflowError(
                        f"{where}: MMI reranks with seq2seq_attn models; {name!r} is a {config['models'][name]['kind']}"
                    )
        if config["models"][model]["kind"] == "hred_tokkd":
            raise WorkflowError(
                f"{where}: hred_tokkd distils the teacher's BPE distributions; it has no triples version"
            )


_check_mirror()


def triple_run_inputs(wildcards):
    """Inputs of one training run on the triples; the teacher's hypotheses for hypK settings."""
    model_spec(wildcards)
    inputs = {
        "setting": out(f"mirror/data/settings/{wildcards.data}.parquet"),
        "train": out("mirror/data/train.parquet"),
        "dev": out("mirror/data/dev.parquet"),
        "vocab": out("mirror/data/vocab.parquet"),
    }
    if parse_setting(wildcards.data).k > 0:
        inputs["hypotheses"] = out("teacher/hypotheses/manifest.json")
        inputs["pairs"] = out(
            "data/pairs/train.parquet"
        )  # the pairs the hypotheses belong to
    if config["train"]["word_vectors"]:
        inputs["embeddings"] = out("mirror/data/word_vectors/init.npy")
    return inputs


def mmi_backward_model(wildcards):
    """The backward model p(x|y) an MMI system reranks with, or an error naming the unset key."""
    if not MIRROR["backward"]:
        raise WorkflowError(
            f"{wildcards.model}+mmi: MMI needs mirror.backward, the name of a seq2seq_attn model (it is not set)"
        )
    return out(f"mirror/backward/{MIRROR['backward']}/model.pt")


def backward_run_inputs(wildcards):
    """Inputs of MMI's backward model p(x|y): the triples turned around (context [y], response x)."""
    model_spec(wildcards)
    inputs = {
        "setting": out("mirror/data/backward/settings/gt.parquet"),
        "train": out("mirror/data/backward/train.parquet"),
        "dev": out("mirror/data/backward/dev.parquet"),
        "vocab": out("mirror/data/vocab.parquet"),
    }
    if config["train"]["word_vectors"]:
        inputs["embeddings"] = out("mirror/data/word_vectors/init.npy")
    return inputs


def triple_setting_inputs(wildcards):
    inputs = {"train": out("mirror/data/train.parquet")}
    target = out(f"mirror/data/settings/{wildcards.setting}.parquet")
    if check_setting(wildcards.setting, target).k > 0:
        inputs["hypotheses"] = out("teacher/hypotheses/manifest.json")
    return inputs


def mirror_run_dir(model, data):
    return out(f"mirror/runs/{model}/{data}")


def mirror_row_files(model, data):
    """What a row of the Mirror table reads: test metrics, perplexity, Reval scores, run info."""
    base = mirror_run_dir(model, data)
    names = (
        "metrics.json",
        "perplexity.json",
        "per_pair.parquet",
        "reval.json",
        "reval.parquet",
    )
    files = [f"{base}/test/{n}" for n in names]
    files.append(f"{base}/info.json")
    return files


MIRROR_PAIRS = [
    (m["label"], b["label"])
    for m in MIRROR_SYSTEMS
    if m["role"] == "mirror"
    for b in MIRROR_SYSTEMS
    if b["role"] == "baseline"
]
MIRROR_TRAIN = {**config["train"], **MIRROR["train"]}
MIRROR_DECODE = {**config["decode"], **MIRROR["decode"]}
MIRROR_TABLES = (
    [out("table_mirror.csv"), out("table_mirror_pairwise.csv")]
    if MIRROR_SYSTEMS
    else []
)
MIRROR_OUTPUTS = (
    [out("table_mirror.csv"), out("mirror/human_eval/sheet.csv")]
    if MIRROR_SYSTEMS
    else []
)
