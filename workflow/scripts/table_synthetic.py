"""Snakemake adapter: the demo's table of exact distances to the synthetic corpus's response distribution."""

from pathlib import Path

import _src  # noqa: F401  (puts src/ on sys.path)
import torch

from multiref.eval.synthetic_distance import measure_all
from multiref.tables import write_table
from multiref.tables.results import synthetic_latex, synthetic_table
from multiref.workflow import step

with step(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    torch.set_num_threads(snakemake.threads)  # noqa: F821
    inp, out, params = snakemake.input, snakemake.output, snakemake.params  # noqa: F821
    summaries = measure_all(
        dict(zip(params.runs, map(Path, inp.models), strict=True)), Path(inp.teacher), Path(inp.test), Path(inp.vocab),
        Path(inp.distribution), Path(out.per_context), params.cfg["max_contexts"], params.cfg["prior_samples"],
    )
    frame = synthetic_table(summaries)
    write_table(frame, synthetic_latex(frame), Path(out.csv), Path(out.tex))
    log.info("distances:\n%s", frame.to_string(index=False))
