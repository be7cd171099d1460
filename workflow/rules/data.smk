# Data stage: corpus archive -> four corpus files -> sessions, vocabulary and pairs (Table 8's inputs).


rule synthetic_corpus:
    output:
        archive=out("data/synthetic/ijcnlp_dailydialog.zip"),
        distribution=out("data/synthetic/distribution.parquet"),
    params:
        seed=config["corpus"]["synthetic"]["seed"],
        n_dialogues=config["corpus"]["synthetic"]["n_dialogues"],
        max_turns=config["corpus"]["synthetic"]["max_turns"],
    log:
        log_path("synthetic_corpus"),
    resources:
        **LIGHT,
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/synthetic_corpus.py"


rule corpus:
    input:
        archive=corpus_archive(),
    output:
        text=out("data/corpus/dialogues_text.txt"),
        act=out("data/corpus/dialogues_act.txt"),
        emotion=out("data/corpus/dialogues_emotion.txt"),
        topic=out("data/corpus/dialogues_topic.txt"),
        manifest=out("data/corpus/manifest.json"),
    params:
        url=config["corpus"]["url"],
        sha256=config["corpus"]["sha256"],
        timeout=config["corpus"]["download_timeout"],
    log:
        log_path("corpus"),
    resources:
        **LIGHT,
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/acquire_corpus.py"


rule preprocess:
    input:
        text=rules.corpus.output.text,
        act=rules.corpus.output.act,
        emotion=rules.corpus.output.emotion,
        topic=rules.corpus.output.topic,
    output:
        sessions=out("data/sessions.parquet"),
        vocab=out("data/vocab.parquet"),
        train=out("data/pairs/train.parquet"),
        dev=out("data/pairs/dev.parquet"),
        test=out("data/pairs/test.parquet"),
        manifest=out("data/preprocess.json"),
    params:
        data=config["data"],
    log:
        log_path("preprocess"),
    benchmark:
        bench_path("preprocess")
    threads: 1
    resources:
        **LIGHT,
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/preprocess.py"
