# The HTML report (snakemake --report): results tables as HTML, plots, sample responses, methods page.
# Every item is wrapped in report(...) with a one-sentence caption in workflow/report/.


_REPORT_TABLE_RUNS = [
    (r["model"], r["data"]) for t in ("table1", "table2") for r in TABLES[t]
]
_REPORT_TABLE_RUNS += [(TABLES["table4"]["model"], d) for d in TABLE4_SETTINGS]
if TABLES["table5"]["model"]:
    _REPORT_TABLE_RUNS.append((TABLES["table5"]["model"], TABLES["table5"]["data"]))
REPORT_RUNS = [
    (m, d)
    for m, d in dict.fromkeys(RUN_PAIRS + _REPORT_TABLE_RUNS)
    if m in config["models"]
]  # every trained run the configuration decodes (the teacher row is not a run)
_MIXTURE_CANDIDATES = (
    RUN_PAIRS
    + [(r["model"], r["data"]) for t in ("table1", "table2") for r in TABLES[t]]
    if config["report"]["components"] == "all"
    else []
)
if TABLES["table5"]["model"]:
    _MIXTURE_CANDIDATES.append((TABLES["table5"]["model"], TABLES["table5"]["data"]))
MIXTURE_RUNS = [
    (m, d)
    for m, d in dict.fromkeys(_MIXTURE_CANDIDATES)
    if m in config["models"] and config["models"][m].get("prior") in ("gmm", "lgm")
]  # per-variable decoding costs K decodes: not for every setting of Table 4
REPORT_SAMPLES = {
    "n": config["report"]["sample_contexts"],
    "seed": config["report"]["sample_seed"],
}  # the fixed test contexts of the sample pages
REPORT_TABLES = [
    Path(p).stem
    for p in dict.fromkeys([out("table8.csv"), *TABLE_OUTPUTS, *MIRROR_TABLES])
]
REPORT_TABLE_TITLES = {
    "table_synthetic": "Synthetic corpus: distances to the truth",
    "table_mirror": "Mirror and its baselines (Li et al., 2021): automated metrics",
    "table_mirror_pairwise": "Mirror against each baseline, judged by Reval",
}


REPORT_TEST_DIRS = [out(f"runs/{m}/{d}/test") for m, d in REPORT_RUNS]
REPORT_CAPTIONS = Path(workflow.basedir) / "report"


rule report_trends:
    input:
        metrics=[f"{t}/metrics.json" for t in REPORT_TEST_DIRS],
        ppl=[f"{t}/perplexity.json" for t in REPORT_TEST_DIRS],
        # Reval joins the plot only when its rules are part of the workflow (reval.smk, rule reval_score)
        reval=lambda wc: (
            [f"{t}/reval.json" for t in REPORT_TEST_DIRS]
            if hasattr(rules, "reval_score")
            else []
        ),
    output:
        png=report(
            out("report/metric_trends.png"),
            caption="../report/metric_trends.rst",
            category="Plots",
            subcategory="Metric trends",
            labels={"plot": "each metric against K"},
        ),
        svg=out("report/metric_trends.svg"),
    log:
        log_path("report_trends"),
    conda:
        "../../envs/report.yaml"
    resources:
        **LIGHT,
    params:
        runs=[(m, d, t) for (m, d), t in zip(REPORT_RUNS, REPORT_TEST_DIRS)],
    script:
        "../scripts/report_trends.py"


rule report_curves:
    input:
        curves=[out(f"runs/{m}/{d}/log.csv") for m, d in REPORT_RUNS]
        + [out("teacher/curve.csv")],
    output:
        png=report(
            out("report/training_curves.png"),
            caption="../report/training_curves.rst",
            category="Plots",
            subcategory="Training curves",
            labels={"plot": "training curves of every run"},
        ),
    log:
        log_path("report_curves"),
    benchmark:
        bench_path("report_curves")
    conda:
        "../../envs/report.yaml"
    resources:
        **LIGHT,
    params:
        labels=[f"{m}/{d}" for m, d in REPORT_RUNS] + ["teacher"],
    script:
        "../scripts/report_curves.py"


rule report_pi:
    input:
        by_component=out("runs/{model}/{data}/test/by_component.parquet"),
    output:
        png=report(
            out("report/pi_bar_{model}_{data}.png"),
            caption="../report/pi_bar.rst",
            category="Plots",
            subcategory="Mixture weights",
            labels={"run": "{model}/{data}"},
        ),
    log:
        log_path("report_pi_{model}_{data}"),
    conda:
        "../../envs/report.yaml"
    resources:
        **LIGHT,
    script:
        "../scripts/report_pi.py"


rule report_samples:
    input:
        test=out("data/pairs/test.parquet"),
        decodes=[f"{t}/decode.parquet" for t in REPORT_TEST_DIRS],
    output:
        html=report(
            out("report/samples.html"),
            caption="../report/samples.rst",
            category="Samples",
            subcategory="Per model",
            labels={"page": "responses per model"},
        ),
    log:
        log_path("report_samples"),
    conda:
        "../../envs/report.yaml"
    resources:
        **LIGHT,
    params:
        labels=[f"{m}/{d}" for m, d in REPORT_RUNS],
        n=REPORT_SAMPLES["n"],
        seed=REPORT_SAMPLES["seed"],
    script:
        "../scripts/report_samples.py"


use rule report_samples as report_samples_mirror with:
    input:
        test=out("mirror/data/test.parquet"),
        decodes=[
            f"{run_dir(s['model'], s['data'], 'mirror/')}/test/decode.parquet"
            for s in MIRROR_SYSTEMS
        ],
    output:
        html=report(
            out("report/samples_mirror.html"),
            caption="../report/samples_mirror.rst",
            category="Samples",
            subcategory="Mirror systems",
            labels={"page": "responses of Mirror and its baselines"},
        ),
    log:
        log_path("report_samples_mirror"),
    params:
        labels=[s["label"] for s in MIRROR_SYSTEMS],
        n=REPORT_SAMPLES["n"],
        seed=REPORT_SAMPLES["seed"],


rule report_components:
    input:
        test=out("data/pairs/test.parquet"),
        by_component=out("runs/{model}/{data}/test/by_component.parquet"),
    output:
        html=report(
            out("report/samples_components_{model}_{data}.html"),
            caption="../report/samples_components.rst",
            category="Samples",
            subcategory="Per latent variable",
            labels={"run": "{model}/{data}"},
        ),
    log:
        log_path("report_components_{model}_{data}"),
    conda:
        "../../envs/report.yaml"
    resources:
        **LIGHT,
    params:
        n=REPORT_SAMPLES["n"],
        seed=REPORT_SAMPLES["seed"],
    script:
        "../scripts/report_components.py"


rule report_methods:
    output:
        html=report(
            out("report/methods.html"),
            caption="../report/methods.rst",
            category="Methods",
            labels={"page": "methods"},
        ),
        rst=out("report/methods.rst"),
    log:
        log_path("report_methods"),
    conda:
        "../../envs/report.yaml"
    resources:
        **LIGHT,
    params:
        config=config,
        runs=[f"{m}/{d}" for m, d in REPORT_RUNS],
        docs=str(Path(workflow.basedir) / "docs"),
    script:
        "../scripts/report_methods.py"


rule report_table:
    input:
        csv=out("{table}.csv"),
    output:
        html=report(
            out("report/{table}.html"),
            caption="../report/table_html.rst",
            category="Tables",
            subcategory="HTML view",
            labels={"table": "{table}"},
        ),
    log:
        log_path("report_{table}"),
    wildcard_constraints:
        table=r"table[a-z0-9_]*",
    conda:
        "../../envs/report.yaml"
    resources:
        **LIGHT,
    params:
        title=lambda wc: REPORT_TABLE_TITLES.get(
            wc.table, wc.table.replace("table", "Table ", 1)
        ),
        caption=lambda wc: (
            (REPORT_CAPTIONS / f"{wc.table}.rst").read_text().replace("``", "").strip()
            if (REPORT_CAPTIONS / f"{wc.table}.rst").is_file()
            else ""
        ),
    script:
        "../scripts/report_table.py"


REPORT_OUTPUTS = [
    out("report/metric_trends.png"),
    out("report/training_curves.png"),
    out("report/samples.html"),
    out("report/methods.html"),
]
REPORT_OUTPUTS += [out(f"report/pi_bar_{m}_{d}.png") for m, d in MIXTURE_RUNS]
REPORT_OUTPUTS += [
    out(f"report/samples_components_{m}_{d}.html") for m, d in MIXTURE_RUNS
]
REPORT_OUTPUTS += [out(f"report/{t}.html") for t in REPORT_TABLES]
REPORT_OUTPUTS += [out("report/samples_mirror.html")] if MIRROR_SYSTEMS else []
