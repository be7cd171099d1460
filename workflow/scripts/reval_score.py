"""Snakemake adapter: the Reval scores of one decoded test set (or of its responses per latent variable)."""

from pathlib import Path

import _src  # noqa: F401  (puts src/ on sys.path)
import torch

from multiref.device import resolve_device
from multiref.reval.jobs import score_stage
from multiref.workflow import step

with step(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    torch.set_num_threads(snakemake.threads)  # noqa: F821
    inp, out, params = snakemake.input, snakemake.output, snakemake.params  # noqa: F821
    summary = score_stage(
        Path(inp.model),
        Path(inp.decode),
        Path(inp.test),
        Path(out.scores),
        Path(out.summary) if "summary" in out.keys() else None,
        batch_size=params.batch_size,
        device=resolve_device(params.device, "reval.device"),
        by_component=params.by_component,
    )
    log.info("reval: %s", summary)
