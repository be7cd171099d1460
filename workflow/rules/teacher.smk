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
    wildcard_constraints:
        shard=r"\d{4}",
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


rule data_setting:
    input:
        unpack(setting_inputs),
    output:
        index=out("data/settings/{setting}.parquet"),
    log:
        log_path("data_setting_{setting}"),
    wildcard_constraints:
        setting=r"gt|hyp\d+|gt\+hyp\d+",
    conda:
        "../../envs/data.yaml"
    resources:
        **LIGHT,
    params:
        available=config["teacher"]["sampling"]["n"],
        gt_copies=config["settings"]["gt_copies"],
    script:
        "../scripts/data_setting.py"


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
