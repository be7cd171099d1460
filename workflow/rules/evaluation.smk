# Evaluation stage: word vectors for the embedding metrics, and the metrics of each decoded run.


rule eval_vectors:
    input:
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
    wildcard_constraints:
        model=r"[a-z0-9_]+",
        data=r"gt|hyp\d+|gt\+hyp\d+",
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        **LIGHT,
    params:
        source=config["eval"]["word_vectors"],
        variant=config["eval"]["embedding_variant"],
    script:
        "../scripts/metrics.py"


rule teacher_decode:
    input:
        model=rules.teacher.output.model,
        test=out("data/pairs/test.parquet"),
    output:
        decode=out("teacher/test/decode.parquet"),
        ppl=out("teacher/test/perplexity.json"),
    log:
        log_path("teacher_decode"),
    benchmark:
        bench_path("teacher_decode")
    conda:
        "../../envs/torch.yaml"
    threads: config["resources"]["gpu_threads"]
    resources:
        gpu=1,
        mem_mb=config["resources"]["gpu_mem_mb"],
        runtime=config["resources"]["light_runtime"],
    params:
        decode=config["decode"],
        device=config["teacher"]["device"],
    script:
        "../scripts/teacher_decode.py"


use rule metrics as teacher_metrics with:
    input:
        decode=rules.teacher_decode.output.decode,
        test=out("data/pairs/test.parquet"),
        vocab=out("data/vocab.parquet"),
        vectors=rules.eval_vectors.output.kv,
    output:
        metrics=out("teacher/test/metrics.json"),
        per_pair=out("teacher/test/per_pair.parquet"),
    log:
        log_path("metrics_teacher"),
    benchmark:
        bench_path("metrics_teacher")
