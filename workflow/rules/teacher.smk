# Teacher stage: GPT-2 fine-tuning -> N nucleus-sampled hypotheses per training pair (sharded) ->
# the paper's data settings. GPU rules request `gpu=1` and run on the CPU where there is none.


rule teacher:
    input:
        sessions=rules.preprocess.output.sessions,
        train=rules.preprocess.output.train,
        dev=rules.preprocess.output.dev,
    output:
        model=directory(out("teacher/model")),
        curve=out("teacher/curve.csv"),
        metrics=out("teacher/metrics.json"),
    log:
        log_path("teacher"),
    benchmark:
        bench_path("teacher")
    priority: 50  # the head of the longest path (teacher -> shards -> hypothesis settings -> runs)
    conda:
        "../../envs/torch.yaml"
    threads: config["resources"]["gpu_threads"]
    resources:
        gpu=1,
        mem_mb=config["resources"]["gpu_mem_mb"],
        runtime=config["resources"]["teacher_runtime"],
    params:
        teacher=config["teacher"],
        max_utterance_tokens=config["data"]["max_utterance_tokens"],
        work=out("work/teacher"),
        checkpoint_minutes=config["resources"]["checkpoint_minutes"],
    script:
        "../scripts/teacher.py"


rule hypotheses_shard:
    input:
        model=rules.teacher.output.model,
        train=rules.preprocess.output.train,
    output:
        shard=out("teacher/hypotheses/shard{shard}.parquet"),
    log:
        log_path("hypotheses_shard{shard}"),
    benchmark:
        bench_path("hypotheses_shard{shard}")
    priority: 40
    conda:
        "../../envs/torch.yaml"
    threads: config["resources"]["gpu_threads"]
    resources:
        gpu=1,
        mem_mb=config["resources"]["gpu_mem_mb"],
        runtime=config["resources"]["shard_runtime"],
    params:
        sampling=config["teacher"]["sampling"],
        shards=config["teacher"]["shards"],
        device=config["teacher"]["device"],
        work=out("work/hypotheses"),
    script:
        "../scripts/hypotheses_shard.py"


rule hypotheses:
    input:
        shards=HYPOTHESIS_SHARDS,
        train=rules.preprocess.output.train,
    output:
        manifest=out("teacher/hypotheses/manifest.json"),
    log:
        log_path("hypotheses_gather"),
    conda:
        "../../envs/data.yaml"
    resources:
        **LIGHT,
    params:
        n=config["teacher"]["sampling"]["n"],
    script:
        "../scripts/hypotheses_gather.py"


rule teacher_fit:
    input:
        model=rules.teacher.output.model,
        hypotheses=rules.hypotheses.output.manifest,
        distribution=rules.synthetic_corpus.output.distribution,
        train=rules.preprocess.output.train,
        dev=rules.preprocess.output.dev,
    output:
        summary=out("teacher/fit.json"),
        contexts=out("teacher/fit_contexts.csv"),
    log:
        log_path("teacher_fit"),
    conda:
        "../../envs/torch.yaml"
    resources:
        **LIGHT,
    params:
        max_contexts=config["teacher"]["fit_contexts"],
        n=config["teacher"]["sampling"]["n"],
    script:
        "../scripts/teacher_fit.py"


# The teacher's own row of Tables 1 and 2: its test decoding and metrics.


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
