"""Put ``src/`` on ``sys.path`` so scripts import the library without ``pip install -e .``.

Snakemake adds this folder to ``sys.path`` of every script it runs; importing this module first lets
the scripts work in per-rule conda environments (``--sdm conda``) where multiref is not installed.
"""

import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")
if SRC not in sys.path:
    sys.path.insert(0, SRC)
