# Reval stage: the learned response evaluator (RoBERTa-eval) trained on human judgements, and the Reval
# scores of each decoded run (Tables 1, 2, 4) and of each latent variable's responses (Table 5).

REVAL = config["reval"]


# Synthetic judgements need the demo corpus's distribution and its dev/test pairs; a local file is an input.
REVAL_JUDGEMENT_INPUTS = {}
if REVAL["judgements"]["source"] == "synthetic":
    REVAL_JUDGEMENT_INPUTS = {
        "distribution": out("data/synthetic/distribution.parquet"),
        "dev": out("data/pairs/dev.parquet"),
        "test": out("data/pairs/test.parquet"),
    }
elif REVAL["judgements"]["source"] == "local":  # a path is required (multiref.config)
    REVAL_JUDGEMENT_INPUTS = {"local": REVAL["judgements"]["path"]}
# Pre-training reads the pipeline's training pairs.
REVAL_TRAIN_INPUTS = {"judgements": out("reval/judgements.json")}
if REVAL["pretrain"]["epochs"] > 0:
    REVAL_TRAIN_INPUTS["pairs"] = out("data/pairs/train.parquet")


rule reval_judgements:
    input:
        **REVAL_JUDGEMENT_INPUTS,
    output:
        judgements=out("reval/judgements.json"),
        info=out("reval/judgements_info.json"),
    log:
        log_path("reval_judgements"),
    conda:
        "../../envs/torch.yaml"
    threads: 1
    resources:
        **LIGHT,
    params:
        judgements=REVAL["judgements"],
        work=out("work/reval"),
    script:
        "../scripts/reval_judgements.py"


rule reval_train:
    input:
        **REVAL_TRAIN_INPUTS,
    output:
        model=directory(out("reval/model")),
        heldout=out("reval/heldout.json"),
        per_item=out("reval/heldout.parquet"),
    log:
        log_path("reval_train"),
    benchmark:
        bench_path("reval_train")
    conda:
        "../../envs/torch.yaml"
    threads: config["resources"]["gpu_threads"]
    resources:
        gpu=1,
        mem_mb=config["resources"]["gpu_mem_mb"],
        runtime=config["resources"]["train_runtime"],
    params:
        reval=REVAL,
        work=out("work/reval"),
        checkpoint_minutes=config["resources"]["checkpoint_minutes"],
    script:
        "../scripts/reval_train.py"


rule reval_score:
    input:
        model=rules.reval_train.output.model,
        decode=out("runs/{model}/{data}/test/decode.parquet"),
        test=out("data/pairs/test.parquet"),
    output:
        scores=out("runs/{model}/{data}/test/reval.parquet"),
        summary=out("runs/{model}/{data}/test/reval.json"),
    log:
        log_path("reval_score_{model}_{data}"),
    benchmark:
        out("runs/{model}/{data}/test/reval_benchmark.tsv")
    conda:
        "../../envs/torch.yaml"
    threads: config["resources"]["gpu_threads"]
    resources:
        gpu=1,
        mem_mb=config["resources"]["gpu_mem_mb"],
        runtime=config["resources"]["light_runtime"],
    params:
        device=REVAL["device"],
        batch_size=REVAL["score_batch_size"],
        by_component=False,
    script:
        "../scripts/reval_score.py"


use rule reval_score as teacher_reval_score with:
    input:
        model=rules.reval_train.output.model,
        decode=rules.teacher_decode.output.decode,
        test=out("data/pairs/test.parquet"),
    output:
        scores=out("teacher/test/reval.parquet"),
        summary=out("teacher/test/reval.json"),
    log:
        log_path("reval_score_teacher"),
    benchmark:
        bench_path("reval_score_teacher")


use rule reval_score as reval_components with:
    input:
        model=rules.reval_train.output.model,
        decode=out("runs/{model}/{data}/test/by_component.parquet"),
        test=out("data/pairs/test.parquet"),
    output:
        scores=out("runs/{model}/{data}/test/by_component_reval.parquet"),
    log:
        log_path("reval_components_{model}_{data}"),
    benchmark:
        out("runs/{model}/{data}/test/by_component_reval_benchmark.tsv")
    params:
        device=REVAL["device"],
        batch_size=REVAL["score_batch_size"],
        by_component=True,
