# Model stage: one training job per (model, data setting), one GPU each where there is one.


rule word_vectors:
    input:
        vocab=out("data/vocab.parquet"),
    output:
        matrix=out("data/word_vectors/init.npy"),
        info=out("data/word_vectors/init.json"),
    log:
        log_path("word_vectors"),
    benchmark:
        bench_path("word_vectors")
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        **LIGHT,
    params:
        source=config["train"]["word_vectors"],
    script:
        "../scripts/word_vectors.py"


rule train_model:
    input:
        unpack(run_inputs("pairs")),
    output:
        model=out("runs/{model}/{data}/model.pt"),
        log=out("runs/{model}/{data}/log.csv"),
        info=out("runs/{model}/{data}/info.json"),
    log:
        log_path("train_{model}_{data}"),
    benchmark:
        out("runs/{model}/{data}/benchmark.tsv")
    conda:
        "../../envs/torch.yaml"
    threads: config["resources"]["gpu_threads"]
    resources:
        gpu=1,
        mem_mb=config["resources"]["gpu_mem_mb"],
        runtime=config["resources"]["train_runtime"],
    params:
        spec=model_spec,
        train=seeded_train(RUN_TRAIN),
        work=lambda wc: out(f"work/runs/{wc.model}/{wc.data}"),
        checkpoint_minutes=config["resources"]["checkpoint_minutes"],
    script:
        "../scripts/train_model.py"


# An equal-steps control of the demo's synthetic table (tables.synthetic.equal_steps): `model` on setting `data`
# for exactly as many steps as its run on setting `like` took.
use rule train_model as train_equal_steps with:
    input:
        unpack(run_inputs("pairs")),
        reference=out("runs/{model}/{like}/info.json"),
    output:
        model=out("runs/{model}/{data}_steps_{like}/model.pt"),
        log=out("runs/{model}/{data}_steps_{like}/log.csv"),
        info=out("runs/{model}/{data}_steps_{like}/info.json"),
    log:
        log_path("train_{model}_{data}_steps_{like}"),
    benchmark:
        out("runs/{model}/{data}_steps_{like}/benchmark.tsv")
    params:
        spec=model_spec,
        train=seeded_train(RUN_TRAIN),
        work=lambda wc: out(f"work/runs/{wc.model}/{wc.data}_steps_{wc.like}"),
        checkpoint_minutes=config["resources"]["checkpoint_minutes"],


rule decode:
    input:
        unpack(decode_inputs),
    output:
        decode=out("runs/{model}/{data}/test/decode.parquet"),
        ppl=out("runs/{model}/{data}/test/perplexity.json"),
    log:
        log_path("decode_{model}_{data}"),
    benchmark:
        out("runs/{model}/{data}/test/benchmark.tsv")
    conda:
        "../../envs/torch.yaml"
    threads: config["resources"]["gpu_threads"]
    resources:
        gpu=1,
        mem_mb=config["resources"]["gpu_mem_mb"],
        runtime=config["resources"]["light_runtime"],
    params:
        decode=config["decode"],
        device=config["train"]["device"],
    script:
        "../scripts/decode.py"


rule decode_components:
    input:
        unpack(decode_inputs),
    output:
        decode=temp(out("runs/{model}/{data}/test/components_all.parquet")),
        ppl=temp(out("runs/{model}/{data}/test/components_perplexity.json")),
        by_component=out("runs/{model}/{data}/test/by_component.parquet"),
    log:
        log_path("decode_components_{model}_{data}"),
    benchmark:
        out("runs/{model}/{data}/test/components_benchmark.tsv")
    conda:
        "../../envs/torch.yaml"
    threads: config["resources"]["gpu_threads"]
    resources:
        gpu=1,
        mem_mb=config["resources"]["gpu_mem_mb"],
        runtime=config["resources"]["light_runtime"],
    params:
        decode=config["decode"],
        device=config["train"]["device"],
    script:
        "../scripts/decode.py"
