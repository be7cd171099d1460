"""Snakemake adapter: the fine-tuned teacher decoded greedily on the test pairs, with its perplexity."""

from pathlib import Path

import _src  # noqa: F401  (puts src/ on sys.path)
import torch

from multiref.device import resolve_device
from multiref.eval.teacher_eval import teacher_decode_run
from multiref.workflow import step

with step(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    torch.set_num_threads(snakemake.threads)  # noqa: F821
    inp, out, params = snakemake.input, snakemake.output, snakemake.params  # noqa: F821
    ppl = teacher_decode_run(
        Path(inp.model), Path(inp.test), Path(out.decode), Path(out.ppl),
        max_len=params.decode["max_len"], batch_size=params.decode["batch_size"], device=resolve_device(params.device, "teacher.device"),
    )
    log.info("teacher test perplexity: %s", ppl)
