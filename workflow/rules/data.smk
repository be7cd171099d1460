# Data stage: corpus archive -> four corpus files -> sessions, vocabulary and pairs (Table 8's inputs).


rule synthetic_corpus:
    output:
        archive=out("data/synthetic/ijcnlp_dailydialog.zip"),
        distribution=out("data/synthetic/distribution.parquet"),
    log:
        log_path("synthetic_corpus"),
    conda:
        "../../envs/data.yaml"
    resources:
        **LIGHT,
    params:
        seed=config["corpus"]["synthetic"]["seed"],
        n_dialogues=config["corpus"]["synthetic"]["n_dialogues"],
        max_turns=config["corpus"]["synthetic"]["max_turns"],
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
    log:
        log_path("corpus"),
    conda:
        "../../envs/data.yaml"
    resources:
        **LIGHT,
    params:
        url=config["corpus"]["url"],
        sha256=config["corpus"]["sha256"],
        timeout=config["corpus"]["download_timeout"],
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
    log:
        log_path("preprocess"),
    benchmark:
        bench_path("preprocess")
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        **LIGHT,
    params:
        data=config["data"],
    script:
        "../scripts/preprocess.py"


# The training data settings of the paper (gt, hypK, gt+hypK): an index into the pairs and hypotheses.


rule data_setting:
    input:
        unpack(setting_inputs("data/pairs/train.parquet", "data/settings")),
    output:
        index=out("data/settings/{setting}.parquet"),
    log:
        log_path("data_setting_{setting}"),
    conda:
        "../../envs/data.yaml"
    resources:
        **LIGHT,
    params:
        available=config["teacher"]["sampling"]["n"],
        gt_copies=config["settings"]["gt_copies"],
    script:
        "../scripts/data_setting.py"
