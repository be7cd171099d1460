# Tables: every cell computed from the pipeline's outputs; paper values only as labelled references.


rule table8:
    input:
        sessions=rules.preprocess.output.sessions,
        train=rules.preprocess.output.train,
        dev=rules.preprocess.output.dev,
        test=rules.preprocess.output.test,
    output:
        csv=report(
            out("table8.csv"),
            caption="../report/table8.rst",
            category="Tables",
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
