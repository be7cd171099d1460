"""Snakemake adapter: distance of the teacher to the synthetic corpus's true distribution."""

from pathlib import Path

import _src  # noqa: F401  (puts src/ on sys.path)

from multiref.io import write_json
from multiref.teacher.hypotheses import load_hypotheses
from multiref.teacher.synthetic_distance import exact_fit, sample_fit, summarise, true_distributions
from multiref.workflow import step

with step(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    inp, out, params = snakemake.input, snakemake.output, snakemake.params  # noqa: F821
    dists = true_distributions(Path(inp.distribution))
    exact = exact_fit(Path(inp.model), Path(inp.dev), dists, params.max_contexts)
    hyps = load_hypotheses(Path(inp.hypotheses)).to_pandas()
    samples = sample_fit(Path(inp.train), hyps, dists)
    summary = summarise(exact, samples, params.n)
    exact.to_csv(out.contexts, index=False)
    write_json(summary, Path(out.summary))
    log.info("teacher fit: %s", summary)
