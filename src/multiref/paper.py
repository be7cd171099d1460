"""Numbers printed in the papers. They appear only in clearly labelled reference columns."""

from __future__ import annotations

# Zhao, Lala & Kawahara (2021), Table 8: corpus statistics of DailyDialog.
TABLE8: dict[str, dict[str, int]] = {
    "sessions": {"train": 9237, "dev": 1157, "test": 1159},
    "pairs": {"train": 59305, "dev": 9906, "test": 9716},
}

# Zhao, Lala & Kawahara (2021), Table 9: maximum training epochs and "steps" per data setting.
# The steps are training examples: epochs x 59,305 pairs x examples per pair with the ground truth
# counted once (e.g. 1 GT + 20 hyp.: 10 x 59,305 x 21 = 12.45 M).
TABLE9: dict[str, dict[str, float]] = {
    "gt": {"epochs": 100, "max_steps": 5.93e6},
    "hyp1": {"epochs": 100, "max_steps": 5.93e6},
    "gt+hyp1": {"epochs": 50, "max_steps": 5.93e6},
    "hyp5": {"epochs": 20, "max_steps": 5.93e6},
    "gt+hyp5": {"epochs": 20, "max_steps": 7.12e6},
    "hyp20": {"epochs": 10, "max_steps": 11.86e6},
    "gt+hyp20": {"epochs": 10, "max_steps": 12.45e6},
    "hyp100": {"epochs": 2, "max_steps": 11.86e6},
    "gt+hyp100": {"epochs": 2, "max_steps": 11.98e6},
}
