"""multiref: reproduction of multi-referenced training for dialogue response generation.

The science lives here as plain, typed functions; ``workflow/`` only wires them into Snakemake.
"""

__version__ = "0.1.0"
