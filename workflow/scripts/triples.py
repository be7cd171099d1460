"""Snakemake adapter: Mirror's (context, query, response) triples, their vocabulary and MMI's backward examples."""

from pathlib import Path

import _src  # noqa: F401  (puts src/ on sys.path)

from multiref.mirror.triples import TripleConfig, write_triples
from multiref.workflow import step

with step(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    inp, out, params = snakemake.input, snakemake.output, snakemake.params  # noqa: F821
    manifest = write_triples(
        Path(inp.sessions),
        {"train": Path(out.train), "dev": Path(out.dev), "test": Path(out.test)},
        Path(out.vocab),
        Path(out.manifest),
        TripleConfig.from_mapping(params.triples),
        backward_paths={"train": Path(out.backward_train), "dev": Path(out.backward_dev)},
    )
    log.info("triples: %s", manifest)
