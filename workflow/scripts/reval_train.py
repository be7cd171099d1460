"""Snakemake adapter: train the Reval evaluator; its held-out correlations with the human scores."""

from pathlib import Path

import _src  # noqa: F401  (puts src/ on sys.path)
import torch

from multiref.device import resolve_device
from multiref.reval.jobs import train_stage
from multiref.workflow import step

with step(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    torch.set_num_threads(snakemake.threads)  # noqa: F821
    inp, out, params = snakemake.input, snakemake.output, snakemake.params  # noqa: F821
    report = train_stage(
        Path(inp.judgements),
        Path(inp.pairs) if "pairs" in inp.keys() else None,
        params.reval,
        Path(out.model),
        Path(out.heldout),
        Path(out.per_item),
        device=resolve_device(params.reval["device"], "reval.device"),
        work_dir=Path(params.work),
        checkpoint_seconds=60 * params.checkpoint_minutes,
    )
    log.info("held-out: %s; dev: %s; %.1f s", report["heldout"], report["dev"], report["seconds"])
