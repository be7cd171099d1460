"""Snakemake adapter: the MMI baseline: the forward model's N-best lists reranked with the backward p(x|y)."""

from pathlib import Path

import _src  # noqa: F401  (puts src/ on sys.path)
import torch

from multiref.device import resolve_device
from multiref.mirror.mmi import mmi_decode_run
from multiref.workflow import step

with step(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    torch.set_num_threads(snakemake.threads)  # noqa: F821
    inp, out, params = snakemake.input, snakemake.output, snakemake.params  # noqa: F821
    result = mmi_decode_run(
        forward_path=Path(inp.forward),
        backward_path=Path(inp.backward),
        test_pairs=Path(inp.test),
        vocab_path=Path(inp.vocab),
        decode_path=Path(out.decode),
        ppl_path=Path(out.ppl),
        info_path=Path(out.info),
        forward_info=Path(inp.forward_info),
        n=params.mmi["n"],
        lam=params.mmi["lambda"],
        gamma=params.mmi["gamma"],
        max_len=params.decode["max_len"],
        batch_size=params.mmi["batch_size"],
        ppl_batch_size=params.decode["batch_size"],
        seed=params.decode["seed"],
        device=resolve_device(params.device, "train.device"),
    )
    log.info("mmi: %s", result)
