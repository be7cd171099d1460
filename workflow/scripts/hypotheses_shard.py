"""Snakemake adapter: sample the hypotheses of one shard of the training pairs."""

from pathlib import Path

import _src  # noqa: F401  (puts src/ on sys.path)
import torch

from multiref.teacher.hypotheses import SamplingConfig, generate_shard
from multiref.workflow import step

with step(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    torch.set_num_threads(snakemake.threads)  # noqa: F821
    params = snakemake.params  # noqa: F821
    info = generate_shard(
        teacher_dir=Path(snakemake.input.model),  # noqa: F821
        pairs_path=Path(snakemake.input.train),  # noqa: F821
        shard=int(snakemake.wildcards.shard),  # noqa: F821
        shards=params.shards,
        cfg=SamplingConfig(**params.sampling),
        out_path=Path(snakemake.output.shard),  # noqa: F821
        work_dir=Path(params.work),
        device=params.device,
    )
    log.info("shard: %s", info)
