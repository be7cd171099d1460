# The papers' qualitative claims as verdicts from the runs (multiref.claims; docs/claims.md).


rule claims:
    input:
        rows=[
            f
            for m, d, triples in sorted(CLAIMED[0])
            for f in row_files(m, d, "mirror/" if triples else "")
        ],
        kl=[out("synthetic_fit.parquet")] if CLAIMS_KL else [],
    output:
        csv=report(
            out("claims.csv"),
            caption="../report/claims.rst",
            category="1. Claims",
            labels={"table": "claims (CSV)"},
        ),
        md=out("claims.md"),
        html=report(
            out("report/claims.html"),
            caption="../report/claims.rst",
            category="1. Claims",
            labels={"table": "claims"},
        ),
    log:
        log_path("claims"),
    conda:
        "../../envs/tables.yaml"
    resources:
        **LIGHT,
    params:
        claims=config["claims"],
        folders=claim_folders(),
    script:
        "../scripts/claims.py"
