# Tables: every cell computed from the pipeline's outputs; paper values only as labelled references.


rule table8:
    input:
        sessions=rules.preprocess.output.sessions,
        train=rules.preprocess.output.train,
        dev=rules.preprocess.output.dev,
        test=rules.preprocess.output.test,
        manifest=rules.preprocess.output.manifest,
    output:
        csv=report(
            out("table8.csv"),
            caption="../report/table8.rst",
            category="Tables",
            subcategory="CSV",
            labels={"table": "8"},
        ),
        tex=out("table8.tex"),
    log:
        log_path("table8"),
    conda:
        "../../envs/tables.yaml"
    resources:
        **LIGHT,
    params:
        source=config["corpus"]["source"],
    script:
        "../scripts/table8.py"


# ---------------------------------------------------------------------------------------------------
# Tables 1, 2, 4, 5 (and the demo's synthetic-distance table) from the runs their rows name.


rule table1:
    input:
        rows=[f for r in TABLES["table1"] for f in row_files(r["model"], r["data"])],
        train=rules.preprocess.output.train,
    output:
        csv=report(
            out("table1.csv"),
            caption="../report/table1.rst",
            category="Tables",
            subcategory="CSV",
            labels={"table": "1"},
        ),
        tex=out("table1.tex"),
    log:
        log_path("table1"),
    conda:
        "../../envs/tables.yaml"
    resources:
        **LIGHT,
    params:
        table="table1",
        rows=TABLES["table1"],
        test_dirs=[seed_test_dirs(r["model"], r["data"]) for r in TABLES["table1"]],
        bootstrap=TABLES["bootstrap"],
        teacher_epochs=config["teacher"]["train"]["epochs"],
        source=config["corpus"]["source"],
    script:
        "../scripts/results_table.py"


use rule table1 as table2 with:
    input:
        rows=[f for r in TABLES["table2"] for f in row_files(r["model"], r["data"])],
        train=rules.preprocess.output.train,
    output:
        csv=report(
            out("table2.csv"),
            caption="../report/table2.rst",
            category="Tables",
            subcategory="CSV",
            labels={"table": "2"},
        ),
        tex=out("table2.tex"),
    log:
        log_path("table2"),
    params:
        table="table2",
        rows=TABLES["table2"],
        test_dirs=[seed_test_dirs(r["model"], r["data"]) for r in TABLES["table2"]],
        bootstrap=TABLES["bootstrap"],
        teacher_epochs=config["teacher"]["train"]["epochs"],
        source=config["corpus"]["source"],


rule table4:
    input:
        rows=[
            f
            for d in TABLE4_SETTINGS
            for f in row_files(TABLES["table4"]["model"] or "", d)
        ],
    output:
        csv=report(
            out("table4.csv"),
            caption="../report/table4.rst",
            category="Tables",
            subcategory="CSV",
            labels={"table": "4"},
        ),
        tex=out("table4.tex"),
    log:
        log_path("table4"),
    conda:
        "../../envs/tables.yaml"
    resources:
        **LIGHT,
    params:
        label=TABLES["table4"]["label"] or TABLES["table4"]["model"],
        settings=TABLE4_SETTINGS,
        test_dirs=[
            seed_test_dirs(TABLES["table4"]["model"], d) for d in TABLE4_SETTINGS
        ],
        bootstrap=TABLES["bootstrap"],
        source=config["corpus"]["source"],
    script:
        "../scripts/table4.py"


rule table5:
    input:
        unpack(table5_inputs),
    output:
        csv=report(
            out("table5.csv"),
            caption="../report/table5.rst",
            category="Tables",
            subcategory="CSV",
            labels={"table": "5"},
        ),
        tex=out("table5.tex"),
    log:
        log_path("table5"),
    conda:
        "../../envs/tables.yaml"
    resources:
        **LIGHT,
    params:
        source=config["corpus"]["source"],
        run=f"{TABLES['table5']['model']}/{TABLES['table5']['data']}",
    script:
        "../scripts/table5.py"


# The demo's measured version of the paper's KL argument (synthetic corpus only).
rule table_synthetic:
    input:
        models=[out(f"runs/{m}/{d}/model.pt") for m, d in SYNTHETIC_RUNS],
        teacher=rules.teacher.output.model,
        test=out("data/pairs/test.parquet"),
        vocab=out("data/vocab.parquet"),
        distribution=out("data/synthetic/distribution.parquet"),
    output:
        csv=report(
            out("table_synthetic.csv"),
            caption="../report/table_synthetic.rst",
            category="Tables",
            subcategory="CSV",
            labels={"table": "synthetic distances"},
        ),
        tex=out("table_synthetic.tex"),
        per_context=out("synthetic_fit.parquet"),
    log:
        log_path("table_synthetic"),
    benchmark:
        bench_path("table_synthetic")
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        **LIGHT,
    params:
        runs=[f"{m}/{d}" for m, d in SYNTHETIC_RUNS],
        cfg=TABLES["synthetic"],
    script:
        "../scripts/table_synthetic.py"
