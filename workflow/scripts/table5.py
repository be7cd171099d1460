"""Snakemake adapter: Table 5 (decoding with one latent variable) as CSV and LaTeX."""

from pathlib import Path

import _src  # noqa: F401  (puts src/ on sys.path)

from multiref.tables import write_table
from multiref.tables.results import component_bleu, component_reval, table5, to_latex
from multiref.workflow import step

with step(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    inp, out, params = snakemake.input, snakemake.output, snakemake.params  # noqa: F821
    bleu = component_bleu(Path(inp.by_component), Path(inp.test), Path(inp.vocab))
    reval = component_reval(Path(inp.reval)) if "reval" in inp.keys() else None
    frame = table5(Path(inp.by_component), bleu, reval, with_reference=True)
    caption = (
        f"{params.run} decoded with the k-th latent variable only (Zhao et al., 2021, Table 5), measured for every k. "
        "ppl: the running mean of the per-variable perplexities of variables 0..k, the quantity the authors' script "
        "prints and the paper's column shows; ppl (k alone): variable k's own perplexity."
    )
    if params.source != "dailydialog":
        caption += " Synthetic demo corpus: the paper_* columns of the CSV show the format only."
    latex = to_latex(frame, ["pi", "ppl", "ppl_own", "bleu2", "reval"], caption, "tab:table5", first="k", groups=False)
    write_table(frame, latex, Path(out.csv), Path(out.tex))
    log.info("table 5:\n%s", frame.to_string(index=False))
