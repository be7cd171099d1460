"""Snakemake adapter: fine-tune (or train from scratch) the GPT-2 teacher."""

from pathlib import Path

import _src  # noqa: F401  (puts src/ on sys.path)
import torch

from multiref.teacher.build import build_teacher
from multiref.workflow import step

with step(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    torch.set_num_threads(snakemake.threads)  # noqa: F821
    inp, out, params = snakemake.input, snakemake.output, snakemake.params  # noqa: F821
    metrics = build_teacher(
        cfg=params.teacher,
        sessions_path=Path(inp.sessions),
        train_path=Path(inp.train),
        dev_path=Path(inp.dev),
        out_dir=Path(out.model),
        curve_path=Path(out.curve),
        metrics_path=Path(out.metrics),
        work_dir=Path(params.work),
        max_utterance_tokens=params.max_utterance_tokens,
        checkpoint_seconds=60 * params.checkpoint_minutes,
    )
    log.info("teacher: %s", metrics)
