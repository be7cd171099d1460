# Mirror (Li, Kiseleva & de Rijke, 2021): (context, query, response) triples, Mirror and its baselines
# trained on them (also on the teacher's hypotheses), beam / MMI decoding, metrics, the learned judge's
# pairwise table and the human-evaluation sheet. See docs/mirror.md.


rule triples:
    input:
        sessions=rules.preprocess.output.sessions,
    output:
        train=out("mirror/data/train.parquet"),
        dev=out("mirror/data/dev.parquet"),
        test=out("mirror/data/test.parquet"),
        vocab=out("mirror/data/vocab.parquet"),
        manifest=out("mirror/data/manifest.json"),
        backward_train=out("mirror/data/backward/train.parquet"),
        backward_dev=out("mirror/data/backward/dev.parquet"),
    log:
        log_path("triples"),
    benchmark:
        bench_path("triples")
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        **LIGHT,
    params:
        triples=MIRROR["triples"],
    script:
        "../scripts/triples.py"


use rule data_setting as triple_setting with:
    input:
        unpack(setting_inputs("mirror/data/train.parquet", "mirror/data/settings")),
    output:
        index=out("mirror/data/settings/{setting}.parquet"),
    log:
        log_path("triple_setting_{setting}"),


use rule data_setting as backward_setting with:
    input:
        train=rules.triples.output.backward_train,
    output:
        index=out("mirror/data/backward/settings/{setting}.parquet"),
    log:
        log_path("backward_setting_{setting}"),
    wildcard_constraints:
        setting="gt",


use rule word_vectors as triple_word_vectors with:
    input:
        vocab=rules.triples.output.vocab,
    output:
        matrix=out("mirror/data/word_vectors/init.npy"),
        info=out("mirror/data/word_vectors/init.json"),
    log:
        log_path("triple_word_vectors"),
    benchmark:
        bench_path("triple_word_vectors")


use rule train_model as train_triples with:
    input:
        unpack(run_inputs("triples")),
    output:
        model=out("mirror/runs/{model}/{data}/model.pt"),
        log=out("mirror/runs/{model}/{data}/log.csv"),
        info=out("mirror/runs/{model}/{data}/info.json"),
    log:
        log_path("train_mirror_{model}_{data}"),
    benchmark:
        out("mirror/runs/{model}/{data}/benchmark.tsv")
    params:
        spec=model_spec,
        train=seeded_train(MIRROR_TRAIN),
        work=lambda wc: out(f"work/mirror/runs/{wc.model}/{wc.data}"),
        checkpoint_minutes=config["resources"]["checkpoint_minutes"],


use rule train_model as train_backward with:
    input:
        unpack(run_inputs("backward")),
    output:
        model=out("mirror/backward/{model}/model.pt"),
        log=out("mirror/backward/{model}/log.csv"),
        info=out("mirror/backward/{model}/info.json"),
    log:
        log_path("train_backward_{model}"),
    benchmark:
        out("mirror/backward/{model}/benchmark.tsv")
    params:
        spec=model_spec,
        train=MIRROR_TRAIN,
        work=lambda wc: out(f"work/mirror/backward/{wc.model}"),
        checkpoint_minutes=config["resources"]["checkpoint_minutes"],


use rule decode as decode_triples with:
    input:
        model=out("mirror/runs/{model}/{data}/model.pt"),
        test=rules.triples.output.test,
        vocab=rules.triples.output.vocab,
    output:
        decode=out("mirror/runs/{model}/{data}/test/decode.parquet"),
        ppl=out("mirror/runs/{model}/{data}/test/perplexity.json"),
    log:
        log_path("decode_mirror_{model}_{data}"),
    benchmark:
        out("mirror/runs/{model}/{data}/test/benchmark.tsv")
    params:
        decode=MIRROR_DECODE,
        device=config["train"]["device"],


rule decode_mmi:
    input:
        forward=out("mirror/runs/{model}/{data}/model.pt"),
        forward_info=out("mirror/runs/{model}/{data}/info.json"),
        backward=mmi_backward_model,
        test=rules.triples.output.test,
        vocab=rules.triples.output.vocab,
    output:
        decode=out("mirror/runs/{model}+mmi/{data}/test/decode.parquet"),
        ppl=out("mirror/runs/{model}+mmi/{data}/test/perplexity.json"),
        info=out("mirror/runs/{model}+mmi/{data}/info.json"),
    log:
        log_path("decode_mmi_{model}_{data}"),
    benchmark:
        out("mirror/runs/{model}+mmi/{data}/test/benchmark.tsv")
    conda:
        "../../envs/torch.yaml"
    threads: config["resources"]["gpu_threads"]
    resources:
        gpu=1,
        mem_mb=config["resources"]["gpu_mem_mb"],
        runtime=config["resources"]["light_runtime"],
    params:
        mmi=MIRROR["mmi"],
        decode=MIRROR_DECODE,
        device=config["train"]["device"],
    script:
        "../scripts/decode_mmi.py"


use rule metrics as triple_metrics with:
    input:
        decode=out("mirror/runs/{model}/{data}/test/decode.parquet"),
        test=rules.triples.output.test,
        vocab=rules.triples.output.vocab,
        vectors=rules.eval_vectors.output.kv,
    output:
        metrics=out("mirror/runs/{model}/{data}/test/metrics.json"),
        per_pair=out("mirror/runs/{model}/{data}/test/per_pair.parquet"),
    log:
        log_path("metrics_mirror_{model}_{data}"),
    benchmark:
        out("mirror/runs/{model}/{data}/test/metrics_benchmark.tsv")
    wildcard_constraints:
        model=r"[a-z0-9_]+(\+mmi)?",


use rule reval_score as triple_reval_score with:
    input:
        model=rules.reval_train.output.model,
        decode=out("mirror/runs/{model}/{data}/test/decode.parquet"),
        test=rules.triples.output.test,
    output:
        scores=out("mirror/runs/{model}/{data}/test/reval.parquet"),
        summary=out("mirror/runs/{model}/{data}/test/reval.json"),
    log:
        log_path("reval_score_mirror_{model}_{data}"),
    benchmark:
        out("mirror/runs/{model}/{data}/test/reval_benchmark.tsv")
    wildcard_constraints:
        model=r"[a-z0-9_]+(\+mmi)?",


rule table_mirror:
    input:
        rows=[
            f
            for s in MIRROR_SYSTEMS
            for f in row_files(s["model"], s["data"], "mirror/")
        ],
        train=rules.triples.output.train,
    output:
        csv=report(
            out("table_mirror.csv"),
            caption="../report/table_mirror.rst",
            category="Tables",
            subcategory="CSV",
            labels={"table": "Mirror"},
        ),
        pairwise=out("table_mirror_pairwise.csv"),
        tex=out("table_mirror.tex"),
    log:
        log_path("table_mirror"),
    conda:
        "../../envs/tables.yaml"
    resources:
        **LIGHT,
    params:
        systems=MIRROR_SYSTEMS,
        run_dirs=[
            [
                run_dir(s["model"], d, "mirror/")
                for d in seed_runs(s["model"], s["data"], "mirror/")
            ]
            for s in MIRROR_SYSTEMS
        ],
        pairs=MIRROR_PAIRS,
        margin=MIRROR["judge"]["margin"],
        bootstrap=TABLES["bootstrap"],
        source=config["corpus"]["source"],
    script:
        "../scripts/table_mirror.py"


rule human_eval_sheet:
    input:
        test=rules.triples.output.test,
        decodes=[
            f"{run_dir(s['model'], s['data'], 'mirror/')}/test/decode.parquet"
            for s in MIRROR_SYSTEMS
        ],
    output:
        csv=out("mirror/human_eval/sheet.csv"),
        html=out("mirror/human_eval/sheet.html"),
        key=out("mirror/human_eval/key.csv"),
    log:
        log_path("human_eval_sheet"),
    conda:
        "../../envs/tables.yaml"
    resources:
        **LIGHT,
    params:
        systems=[s["label"] for s in MIRROR_SYSTEMS],
        pairs=MIRROR_PAIRS,
        dialogues=MIRROR["human_eval"]["dialogues"],
        seed=MIRROR["human_eval"]["seed"],
    script:
        "../scripts/human_eval_sheet.py"
