"""Snakemake adapter: the human judgements of the Reval evaluator (downloaded, copied, or synthetic)."""

from pathlib import Path

import _src  # noqa: F401  (puts src/ on sys.path)

from multiref.reval.judgements import acquire_judgements, write_info
from multiref.reval.synthetic import write_synthetic_judgements
from multiref.workflow import step

with step(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    inp, out, params = snakemake.input, snakemake.output, snakemake.params  # noqa: F821
    j = params.judgements
    if j["source"] == "synthetic":
        s = j["synthetic"]
        info = write_synthetic_judgements(
            [Path(inp.dev), Path(inp.test)], Path(inp.distribution), Path(out.judgements),
            n_contexts=s["contexts"], valid=s["valid"], annotators=s["annotators"], noise=s["noise"],
            bias=s["bias"], seed=s["seed"],
        )
    else:
        info = acquire_judgements(
            j["source"], Path(out.judgements), url=j["url"], path=j["path"], member=j["member"],
            sha256=j["sha256"], score_name=j["score"], work_dir=Path(params.work),
        )
    write_info(info, Path(out.info))
    log.info("judgements: %s", info)
