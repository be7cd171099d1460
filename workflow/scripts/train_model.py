"""Snakemake adapter: train one model on one data setting."""

from pathlib import Path

import _src  # noqa: F401  (puts src/ on sys.path)
import torch

from multiref.io import read_json
from multiref.models.run import train_run
from multiref.workflow import step

with step(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    torch.set_num_threads(snakemake.threads)  # noqa: F821
    inp, out, params, wc = snakemake.input, snakemake.output, snakemake.params, snakemake.wildcards  # noqa: F821
    info = train_run(
        name=wc.model,
        spec=params.spec,
        train_cfg=params.train,
        setting_path=Path(inp.setting),
        train_pairs=Path(inp.train),
        dev_pairs=Path(inp.dev),
        vocab_path=Path(inp.vocab),
        hypotheses_manifest=Path(inp.hypotheses) if "hypotheses" in inp.keys() else None,
        model_path=Path(out.model),
        log_path=Path(out.log),
        info_path=Path(out.info),
        work_dir=Path(params.work),
        teacher_dir=Path(inp.teacher) if "teacher" in inp.keys() else None,
        init_embeddings=Path(inp.embeddings) if "embeddings" in inp.keys() else None,
        checkpoint_seconds=60 * params.checkpoint_minutes,
        hypothesis_pairs=Path(inp.pairs) if "pairs" in inp.keys() else None,
        max_steps=int(read_json(inp.reference, ["steps"], "the run whose step count this control takes")["steps"])
        if "reference" in inp.keys()
        else None,
    )
    log.info("run: %s", info)
