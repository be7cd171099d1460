"""Put this workflow's ``src/`` first on ``sys.path``, so scripts import the library of the workflow being run.

Snakemake adds this folder to ``sys.path`` of every script it runs; importing this module first lets the
scripts work in per-rule conda environments (``--sdm conda``) where multiref is not installed, and makes
them use this checkout's library even when the virtual environment's (editable) install points at another
checkout: that one's ``src/`` is on ``sys.path`` too (from the install's ``.pth`` file, before the entries
Snakemake copies from the main process), so this folder is moved to the front rather than only added.
"""

import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")
while SRC in sys.path:
    sys.path.remove(SRC)
sys.path.insert(0, SRC)
loaded = sys.modules.get("multiref")
if loaded is not None and not str(Path(loaded.__file__).resolve()).startswith(SRC):
    raise ImportError(f"multiref was imported from {loaded.__file__} before this workflow's {SRC}")
