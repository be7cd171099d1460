"""Snakemake adapter: Table 1 or Table 2 (CSV with reference columns and bootstrap intervals, LaTeX)."""

from pathlib import Path

import _src  # noqa: F401  (puts src/ on sys.path)
import pyarrow.parquet as pq

from multiref import paper
from multiref.tables import write_table
from multiref.tables.results import Row, model_table, read_run, read_teacher, to_latex
from multiref.tables.seeds import combine_seeds
from multiref.workflow import step

CAPTIONS = {
    "table1": "Data enhancement (Zhao et al., 2021, Table 1), measured by this pipeline.",
    "table2": "Model enhancement (Zhao et al., 2021, Table 2), measured by this pipeline.",
}

with step(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    inp, out, params = snakemake.input, snakemake.output, snakemake.params  # noqa: F821
    rows = [Row.from_config(item, f"tables.{params.table}") for item in params.rows]
    gt_pairs = pq.read_metadata(inp.train).num_rows
    runs = [  # one entry per row: its seeds' runs combined (multiref.tables.seeds)
        combine_seeds([read_teacher(Path(d).parent, params.teacher_epochs) if row.model == "teacher" else read_run(Path(d).parent, gt_pairs)
                       for d in dirs], f"{params.table}: {row.model}/{row.data}")
        for row, dirs in zip(rows, params.test_dirs, strict=True)
    ]
    reference = {**paper.TABLE1, **paper.TABLE2}  # a (model, setting) printed in either table is its reference
    frame = model_table(rows, runs, reference, params.bootstrap)
    vectors = sorted({v for v in frame["word_vectors"] if v})
    caption = CAPTIONS[params.table] + f" Embedding metrics with {', '.join(vectors) or 'no'} vectors."
    if params.source != "dailydialog":
        caption += " Synthetic demo corpus: the paper_* columns of the CSV show the format only."
    columns = ["param", "trn_time", "data", "ppl", "bleu2", "ext", "avg", "grd", "reval", "d1", "d2"]
    write_table(frame, to_latex(frame, columns, caption, f"tab:{params.table}"), Path(out.csv), Path(out.tex))
    log.info("%s:\n%s", params.table, frame[["model", "data", *columns[3:]]].to_string(index=False))
