"""Snakemake adapter: corpus files -> sessions, vocabulary and pairs per split."""

import json
from pathlib import Path

import _src  # noqa: F401  (puts src/ on sys.path)

from multiref.data.preprocess import PreprocessConfig, preprocess
from multiref.workflow import step

with step(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    out = snakemake.output  # noqa: F821
    manifest = preprocess(
        corpus_dir=Path(snakemake.input.text).parent,  # noqa: F821
        sessions_path=Path(out.sessions),
        vocab_path=Path(out.vocab),
        pairs_paths={"train": Path(out.train), "dev": Path(out.dev), "test": Path(out.test)},
        manifest_path=Path(out.manifest),
        cfg=PreprocessConfig.from_mapping(snakemake.params.data),  # noqa: F821
    )
    log.info(
        "kept %d of %d dialogues (%d label mismatch, %d duplicate); splits %s",
        manifest["dialogues_kept"],
        manifest["dialogues_read"],
        manifest["dropped_label_mismatch"],
        manifest["dropped_duplicate"],
        json.dumps(manifest["splits"]),
    )
