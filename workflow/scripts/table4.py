"""Snakemake adapter: Table 4 (ground truth combined with hypotheses) as CSV and LaTeX."""

from pathlib import Path

import _src  # noqa: F401  (puts src/ on sys.path)

from multiref.tables import write_table
from multiref.tables.results import read_test, table4, to_latex
from multiref.tables.seeds import combine_seeds
from multiref.workflow import step

with step(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    out, params = snakemake.output, snakemake.params  # noqa: F821
    runs = [combine_seeds([read_test(Path(d)) for d in dirs], f"table4: {setting}") for setting, dirs in zip(params.settings, params.test_dirs, strict=True)]
    frame = table4(params.label, params.settings, runs, params.bootstrap, with_reference=True)
    frame["gt"] = ["yes" if g else "no" for g in frame["use_gt"]]
    caption = f"{params.label} trained on hypotheses with or without the ground truth (Zhao et al., 2021, Table 4), measured."
    if params.source != "dailydialog":
        caption += " Synthetic demo corpus: the paper_* columns of the CSV show the format only."
    latex = to_latex(frame, ["n_hyp", "ppl", "bleu2", "ext", "avg", "grd", "reval"], caption, "tab:table4", first="gt", groups=False)
    write_table(frame.drop(columns=["gt"]), latex, Path(out.csv), Path(out.tex))
    log.info("table 4:\n%s", frame.to_string(index=False))
