"""The paper's tables from the pipeline's outputs: Table 8 (corpus), Tables 1, 2, 4, 5 (results) and their LaTeX."""
