"""The HTML report of a configuration (``snakemake --report``): plots, sample responses, methods page.

Every function here reads the pipeline's own outputs (see docs/data.md) and writes one file
atomically; the thin adapters live in ``workflow/scripts/report_*.py``, the rules in
``workflow/rules/report.smk``.
"""
