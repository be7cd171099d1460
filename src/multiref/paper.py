"""Numbers printed in the papers. They appear only in clearly labelled reference columns."""

from __future__ import annotations

# Zhao, Lala & Kawahara (2021), Table 8: corpus statistics of DailyDialog.
TABLE8: dict[str, dict[str, int]] = {
    "sessions": {"train": 9237, "dev": 1157, "test": 1159},
    "pairs": {"train": 59305, "dev": 9906, "test": 9716},
}
