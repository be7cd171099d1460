# The configuration, output paths, wildcard constraints and input functions shared by every stage. What a
# configuration may contain is checked by the schema and by the library (multiref.config), before any job.
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

sys.path.insert(
    0, str(Path(workflow.basedir).parent / "src")
)  # the library, even when not installed

from multiref import config as checks
from multiref.data.settings import parse_setting, seeded_name, split_seed
from multiref.errors import ConfigError
from multiref.workflow import claim_root

validate(config, schema="../schemas/config.schema.yaml")
# Constraints between keys; a cluster job re-parses the workflow, the main process checked it.
if workflow.is_main_process:
    try:
        checks.check(config)
    except ConfigError as exc:
        raise WorkflowError(f"configuration: {exc}")

ROOT = config["root"].rstrip("/")
RUN_STAMP = Path(ROOT) / ".multiref-run"
SETTING = r"gt|hyp\d+|gt\+hyp\d+"  # the data-setting wildcards (workflow/Snakefile)
# A run folder's data part: the setting, then `_seed<k>` for the k-th extra training seed (k >= 1).
RUN_DATA = rf"(?:{SETTING})(?:_seed[1-9]\d*)?"


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
        checks.check_models(config)
        claim_root(RUN_STAMP, config["run_name"])
    except ConfigError as exc:
        raise WorkflowError(f"configuration: {exc}")


LIGHT = {
    "mem_mb": config["resources"]["light_mem_mb"],
    "runtime": config["resources"]["light_runtime"],
}
TABLES = config["tables"]
MIRROR = config["mirror"]
MIRROR_SYSTEMS = MIRROR["systems"]
MMI_SUFFIX = f"{chr(43)}mmi"  # chr(43): snakemake --lint reads a plus after a quote as path composition
REVAL_SCORES = "reval" in config  # the learned evaluator's scores join the tables


def corpus_archive():
    """Archive read by the corpus step: the generated one, a local copy, or none (download)."""
    if config["corpus"]["source"] == "synthetic":
        return rules.synthetic_corpus.output.archive
    return config["corpus"]["archive"] or []


HYPOTHESIS_SHARDS = [
    out(f"teacher/hypotheses/shard{i:04d}.parquet")
    for i in range(config["teacher"]["shards"])
]


def model_spec(wildcards):
    """The configuration entry of a model name, or a clear error naming the unknown one."""
    if wildcards.model not in config["models"]:
        raise WorkflowError(
            f"unknown model {wildcards.model!r}; configured models: {', '.join(sorted(config['models']))}"
        )
    return config["models"][wildcards.model]


def checked_setting(name, where):
    """The data setting ``name``, or an error naming ``where`` (a target) and the value."""
    problem = checks.setting_problem(name, config["teacher"]["sampling"]["n"])
    if problem:
        raise WorkflowError(f"{where}: {problem}")
    return parse_setting(name)


# Inputs of the jobs that exist for pairs and for Mirror's triples alike.


def setting_inputs(train, settings):
    """Inputs of a data setting in the folder ``settings``: the training examples ``train``, and the teacher's
    hypotheses when it uses some (gt alone does not)."""

    def inputs(wildcards):
        found = {"train": out(train)}
        target = out(f"{settings}/{wildcards.setting}.parquet")
        if checked_setting(wildcards.setting, target).k > 0:
            found["hypotheses"] = out("teacher/hypotheses/manifest.json")
        return found

    return inputs


def run_inputs(examples):
    """Inputs of one training run on ``examples``: "pairs", "triples" (Mirror's), or "backward" (MMI's p(x|y))."""
    data = {
        "pairs": (
            "data/settings/{data}.parquet",
            "data/pairs/train.parquet",
            "data/pairs/dev.parquet",
            "data/vocab.parquet",
        ),
        "triples": (
            "mirror/data/settings/{data}.parquet",
            "mirror/data/train.parquet",
            "mirror/data/dev.parquet",
            "mirror/data/vocab.parquet",
        ),
        "backward": (
            "mirror/data/backward/settings/gt.parquet",
            "mirror/data/backward/train.parquet",
            "mirror/data/backward/dev.parquet",
            "mirror/data/vocab.parquet",
        ),
    }[examples]
    vectors = (
        "data/word_vectors/init.npy"
        if examples == "pairs"
        else "mirror/data/word_vectors/init.npy"
    )

    def inputs(wildcards):
        model_spec(wildcards)
        setting = split_seed(getattr(wildcards, "data", "gt"))[0]
        found = {
            key: out(path.format(data=setting))
            for key, path in zip(("setting", "train", "dev", "vocab"), data)
        }
        if examples != "backward" and parse_setting(setting).k > 0:
            found["hypotheses"] = out("teacher/hypotheses/manifest.json")
            if examples == "triples":
                found["pairs"] = out(
                    "data/pairs/train.parquet"
                )  # the pairs the hypotheses belong to
        if config["models"][wildcards.model]["kind"] == "hred_tokkd":
            found["teacher"] = out(
                "teacher/model"
            )  # distils the teacher's distributions
        elif config["train"]["word_vectors"]:
            found["embeddings"] = out(vectors)
        return found

    return inputs


def seeded_train(train):
    """The training section of a run: ``train`` with ``seed`` + k for the k-th extra seed (run folder
    ``<data>_seed<k>``); the paper's single run (k = 0) keeps ``seed``. ``train`` is RUN_TRAIN or MIRROR_TRAIN.
    """

    def params(wildcards):
        k = split_seed(wildcards.data)[1]
        return {**train, "seed": train["seed"] + k} if k else train

    return params


def decode_inputs(wildcards):
    """A trained run, the test pairs, and what its vocabulary comes from."""
    inputs = {
        "model": out(f"runs/{wildcards.model}/{wildcards.data}/model.pt"),
        "test": out("data/pairs/test.parquet"),
        "vocab": out("data/vocab.parquet"),
    }
    if model_spec(wildcards)["kind"] == "hred_tokkd":
        inputs["teacher"] = out("teacher/model")
    return inputs


def mmi_backward_model(wildcards):
    """The backward model p(x|y) an MMI system reranks with, or an error naming the unset key."""
    if not MIRROR["backward"]:
        raise WorkflowError(
            f"{wildcards.model}+mmi: MMI needs mirror.backward, the name of a seq2seq_attn model (it is not set)"
        )
    return out(f"mirror/backward/{MIRROR['backward']}/model.pt")


def run_dir(model, data, base=""):
    """Folder of a training run (``base`` "mirror/" for runs on triples)."""
    return out(f"{base}runs/{model}/{data}")


def test_dir(model, data, base=""):
    """Folder of a row's test outputs (the teacher's, or a run's)."""
    return (
        out("teacher/test")
        if model == "teacher"
        else f"{run_dir(model, data, base)}/test"
    )


def seed_runs(model, data, base=""):
    """The run folders' data parts of (model, data), one per training seed: ``data``, ``data_seed1``, ...
    (``base`` "mirror/" for Mirror's systems)."""
    count = checks.seed_count(config, model, data, bool(base), CLAIMED)
    return [seeded_name(data, k) for k in range(count)]


def seed_test_dirs(model, data, base=""):
    """The ``test/`` folders of a table row, one per training seed."""
    return [test_dir(model, d, base) for d in seed_runs(model, data, base)]


def row_files(model, data, base=""):
    """Every file a table row reads, for each of its seeds: test metrics, perplexity, Reval scores, the run's info."""
    names = ["metrics.json", "perplexity.json", "per_pair.parquet"]
    names += ["reval.json", "reval.parquet"] if REVAL_SCORES else []
    files = []
    for seeded in seed_runs(model, data, base):
        files += [f"{test_dir(model, seeded, base)}/{name}" for name in names]
        info = "teacher/metrics.json" if model == "teacher" else None
        files.append(out(info) if info else f"{run_dir(model, seeded, base)}/info.json")
    return files


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


RUN_PAIRS = checks.run_pairs(config)
CLAIMED = checks.claimed_runs(
    config
)  # the runs the claims compare, and their seed count
TABLE4_SETTINGS = checks.table4_settings(config)
TABLE_RUNS = [(r["model"], r["data"]) for t in ("table1", "table2") for r in TABLES[t]]
TABLE_RUNS += [(TABLES["table4"]["model"], d) for d in TABLE4_SETTINGS]
# The equal-steps controls of table_synthetic: (model, data, like).
EQUAL_STEPS = checks.equal_steps(config)
SYNTHETIC_RUNS = [
    (m, d)
    for m, d in dict.fromkeys(
        RUN_PAIRS
        + TABLE_RUNS
        + [(m, s) for m, d, like in EQUAL_STEPS for s in (d, like)]
    )
    if m in config["models"] and config["models"][m]["kind"] != "hred_tokkd"
]
SYNTHETIC_RUNS += [(m, f"{d}_steps_{like}") for m, d, like in EQUAL_STEPS]
if (
    config["corpus"]["source"] == "synthetic"
):  # every seed of a claimed run: the claims' KL (docs/claims.md)
    SYNTHETIC_RUNS += [
        (m, seeded)
        for m, d, triples in sorted(CLAIMED[0])
        if not triples and config["models"][m]["kind"] != "hred_tokkd"
        for seeded in seed_runs(m, d)
        if (m, seeded) not in SYNTHETIC_RUNS
    ]
TABLE_OUTPUTS = [out("table1.csv"), out("table2.csv")]
TABLE_OUTPUTS += [out("table4.csv")] if TABLES["table4"]["model"] else []
TABLE_OUTPUTS += [out("table5.csv")] if TABLES["table5"]["model"] else []
TABLE_OUTPUTS += (
    [out("table_synthetic.csv")] if config["corpus"]["source"] == "synthetic" else []
)
MIRROR_PAIRS = [
    (m["label"], b["label"])
    for m in MIRROR_SYSTEMS
    if m["role"] == "mirror"
    for b in MIRROR_SYSTEMS
    if b["role"] == "baseline"
]
# The training section of one run: without the seed count, which is not a parameter of a run (changing it must
# not retrain the runs that exist, MMI's backward model included).
RUN_TRAIN = {k: v for k, v in config["train"].items() if k != "seeds"}
MIRROR_TRAIN = {
    k: v for k, v in {**RUN_TRAIN, **MIRROR["train"]}.items() if k != "seeds"
}
MIRROR_DECODE = {**config["decode"], **MIRROR["decode"]}
MIRROR_TABLES = (
    [out("table_mirror.csv"), out("table_mirror_pairwise.csv")]
    if MIRROR_SYSTEMS
    else []
)


def claim_folders():
    """Each compared run's name (``model/data``, ``mirror/`` in front on triples) -> its seed folders."""
    return {
        ("mirror/" if triples else "")
        + f"{m}/{d}": [
            run_dir(m, s, "mirror/" if triples else "")
            for s in seed_runs(m, d, "mirror/" if triples else "")
        ]
        for m, d, triples in sorted(CLAIMED[0])
    }


CLAIMS_KL = config["corpus"]["source"] == "synthetic" and any(
    "kl" in c["metrics"] for c in config["claims"]["list"]
)


def get_final_output():
    """What `snakemake` builds without a target (the inputs of `all`): Table 8, the tables and their runs, the Mirror
    table and its human-evaluation sheet, the report's items, the hypotheses and data settings, the demo's
    distance of the teacher to the synthetic truth, and the claims' verdicts."""
    final = [out("table8.csv"), out("table8.tex"), *TABLE_OUTPUTS]
    if MIRROR_SYSTEMS:
        final += [out("table_mirror.csv"), out("mirror/human_eval/sheet.csv")]
    final += REPORT_OUTPUTS + [out("teacher/hypotheses/manifest.json")]
    final += [
        out(f"data/settings/{name}.parquet") for name in config["settings"]["names"]
    ]
    if config["corpus"]["source"] == "synthetic":
        final.append(out("teacher/fit.json"))
    final += [f"{run_dir(m, d)}/model.pt" for m, d in RUN_PAIRS]
    if config["claims"]["list"]:
        final += [out("claims.csv"), out("report/claims.html")]
    return final
