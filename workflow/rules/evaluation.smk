# Evaluation stage: word vectors for the embedding metrics, and the metrics of each decoded run.


rule eval_vectors:
    input:
        sessions=out("data/sessions.parquet"),
        train=out("data/pairs/train.parquet"),
    output:
        kv=out("data/eval_vectors/vectors.kv"),
        info=out("data/eval_vectors/vectors.json"),
    log:
        log_path("eval_vectors"),
    benchmark:
        bench_path("eval_vectors")
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        **LIGHT,
    params:
        source=config["eval"]["word_vectors"],
        word_table=config["eval"]["word_table"],
    script:
        "../scripts/eval_vectors.py"


rule metrics:
    input:
        decode=out("runs/{model}/{data}/test/decode.parquet"),
        test=out("data/pairs/test.parquet"),
        vocab=out("data/vocab.parquet"),
        vectors=rules.eval_vectors.output.kv,
    output:
        metrics=out("runs/{model}/{data}/test/metrics.json"),
        per_pair=out("runs/{model}/{data}/test/per_pair.parquet"),
    log:
        log_path("metrics_{model}_{data}"),
    benchmark:
        out("runs/{model}/{data}/test/metrics_benchmark.tsv")
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        **LIGHT,
    params:
        source=config["eval"]["word_vectors"],
        variant=config["eval"]["embedding_variant"],
        word_table=config["eval"]["word_table"],
    script:
        "../scripts/metrics.py"
