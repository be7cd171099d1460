"""Snakemake adapter: the claims' verdicts (claims.csv, claims.md, and the report's HTML page)."""

from pathlib import Path

import _src  # noqa: F401  (puts src/ on sys.path)

from multiref.claims import claims_markdown, parse_claims, summarise
from multiref.claims.evaluate import evaluate_folders
from multiref.io import atomic_path
from multiref.report.pages import claims_page
from multiref.workflow import step

with step(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    inp, out, params = snakemake.input, snakemake.output, snakemake.params  # noqa: F821
    claims = parse_claims(params.claims)
    frame = evaluate_folders(claims, params.folders, Path(inp.kl[0]) if inp.kl else None)
    markdown = claims_markdown(frame)
    with atomic_path(Path(out.csv)) as tmp:
        frame.to_csv(tmp, index=False)
    with atomic_path(Path(out.md)) as tmp:
        tmp.write_text(markdown, encoding="utf-8")
    with atomic_path(Path(out.html)) as tmp:
        tmp.write_text(claims_page(summarise(frame), frame), encoding="utf-8")
    log.info("claims:\n%s", summarise(frame)[["claim", "verdict", "holds", "fails", "inconclusive", "untested"]].to_string(index=False))
