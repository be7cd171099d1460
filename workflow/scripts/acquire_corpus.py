"""Snakemake adapter: download or copy the corpus archive, check it, extract the four files."""

from pathlib import Path

import _src  # noqa: F401  (puts src/ on sys.path)

from multiref.data.acquire import acquire_corpus
from multiref.workflow import step

with step(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    archive = snakemake.input.get("archive")  # noqa: F821
    manifest = acquire_corpus(
        out_dir=Path(snakemake.output.text).parent,  # noqa: F821
        manifest_path=Path(snakemake.output.manifest),  # noqa: F821
        url=snakemake.params.url,  # noqa: F821
        archive=Path(archive) if archive else None,
        sha256=snakemake.params.sha256,  # noqa: F821
        timeout=snakemake.params.timeout,  # noqa: F821
    )
    log.info("corpus from %s, sha256 %s", manifest["source"], manifest["sha256"])
