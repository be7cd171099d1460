"""Snakemake adapter: decode one trained model on the test pairs; its perplexities."""

from pathlib import Path

import _src  # noqa: F401  (puts src/ on sys.path)
import torch

from multiref.device import resolve_device
from multiref.eval.decode import decode_run
from multiref.workflow import step

with step(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    torch.set_num_threads(snakemake.threads)  # noqa: F821
    inp, out, params = snakemake.input, snakemake.output, snakemake.params  # noqa: F821
    result = decode_run(
        model_path=Path(inp.model),
        test_pairs=Path(inp.test),
        vocab_path=Path(inp.vocab),
        teacher_dir=Path(inp.teacher) if "teacher" in inp.keys() else None,
        decode_path=Path(out.decode),
        ppl_path=Path(out.ppl),
        seed=params.decode["seed"],
        batch_size=params.decode["batch_size"],
        max_len=params.decode["max_len"],
        device=resolve_device(params.device, "train.device"),
        by_component_path=Path(out.by_component) if "by_component" in out.keys() else None,
        search=params.decode.get("search", "greedy"),
    )
    log.info("decoded: %s", result)
