"""Snakemake adapter: the Mirror table (automated metrics; the learned judge's pairwise wins/losses/ties)."""

from pathlib import Path

import _src  # noqa: F401  (puts src/ on sys.path)
import pyarrow.parquet as pq

from multiref.io import atomic_path
from multiref.mirror.pairwise import mirror_tables, pairwise_latex
from multiref.tables import write_table
from multiref.tables.results import to_latex
from multiref.workflow import step

with step(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    inp, out, params = snakemake.input, snakemake.output, snakemake.params  # noqa: F821
    metrics, pairwise = mirror_tables(params.systems, [[Path(d) for d in dirs] for dirs in params.run_dirs], [tuple(p) for p in params.pairs],
                                      params.margin, params.bootstrap, pq.read_metadata(inp.train).num_rows)
    note = "" if params.source == "dailydialog" else " Synthetic demo corpus: the paper's human shares show the format only."
    vectors = sorted({v for v in metrics["word_vectors"] if v})
    columns = ["param", "trn_time", "data", "ppl", "bleu2", "ext", "avg", "grd", "reval", "d1", "d2"]
    tex = to_latex(metrics, columns, "Mirror and its baselines on DailyDialog triples (Li et al., 2021), measured by this "
                   f"pipeline. Embedding metrics with {', '.join(vectors) or 'no'} vectors." + note, "tab:mirror_metrics")
    tex += "\n" + pairwise_latex(
        pairwise, f"Pairwise comparison judged by Reval (a tie when the scores differ by at most {params.margin}), with 95% "
        "bootstrap intervals over test dialogues; the paper's human wins/losses/ties as reference. DC and DC-MMI need "
        "external topic models and are not built." + note, "tab:mirror_pairwise")
    with atomic_path(Path(out.pairwise)) as tmp:
        pairwise.to_csv(tmp, index=False)
    write_table(metrics, tex, Path(out.csv), Path(out.tex))
    log.info("Mirror table:\n%s\n%s", metrics[["model", "data", *columns[3:]]].to_string(index=False),
             pairwise[["system", "baseline", "judge_wins", "judge_losses", "judge_ties"]].to_string(index=False))
