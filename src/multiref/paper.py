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

# Zhao, Lala & Kawahara (2021), Tables 1, 2, 4 and 5, as printed. Metric columns: ppl, BLEU-2 (x100),
# Embedding Extrema / Average / Greedy (x100), Reval (1-5), D1 / D2 (type counts over the test set);
# Param in M (parameters / 2^20), Trn Time in seconds per epoch of the 1-GT data.
METRICS = ("ppl", "bleu2", "ext", "avg", "grd", "reval", "d1", "d2")


def _row(param: float, trn_time: float, *values: float) -> dict[str, float]:
    return {"param": param, "trn_time": trn_time, **dict(zip(METRICS, values, strict=True))}


# Keyed by (the paper's model label, data setting name as in settings.names).
TABLE1: dict[tuple[str, str], dict[str, float]] = {
    ("GPT2md", "gt"): _row(338.39, 3000, 21.16, 8.67, 41.02, 65.17, 48.44, 4.28, 4372, 23430),
    ("HRED", "gt"): _row(8.04, 150, 29.00, 6.46, 39.40, 60.80, 43.92, 3.42, 1914, 7369),
    ("HREDtok-KD", "gt"): _row(8.04, 700, 27.68, 6.90, 39.83, 62.33, 45.11, 3.45, 1820, 7118),
    ("HRED", "hyp1"): _row(8.04, 150, 35.08, 6.62, 39.66, 61.96, 44.75, 3.61, 1914, 7369),
    ("HRED", "hyp5"): _row(8.04, 150, 23.10, 7.13, 40.23, 62.43, 45.44, 3.82, 1788, 7267),
    ("HRED", "hyp20"): _row(8.04, 150, 21.15, 7.38, 40.52, 62.53, 45.64, 3.87, 1707, 6945),
    ("HRED", "hyp100"): _row(8.04, 150, 20.93, 7.28, 40.26, 62.22, 45.30, 3.89, 1704, 6794),
}

TABLE2: dict[tuple[str, str], dict[str, float]] = {
    ("GPT2md", "gt"): TABLE1[("GPT2md", "gt")],
    ("HRED", "hyp100"): TABLE1[("HRED", "hyp100")],
    ("HREDl", "hyp100"): _row(21.04, 170, 20.81, 7.36, 40.66, 62.53, 45.48, 3.90, 1734, 7032),
    ("HREDxl", "hyp100"): _row(52.52, 190, 20.69, 7.21, 40.43, 62.51, 45.65, 3.85, 1743, 6986),
    ("VHRED", "hyp100"): _row(11.02, 160, 56.54, 5.39, 38.49, 62.38, 44.59, 3.25, 2124, 10903),
    ("VHREDgmm5", "hyp100"): _row(11.36, 160, 50.44, 5.44, 38.77, 62.55, 44.79, 3.33, 2058, 10879),
    ("VHREDlgm5", "gt"): _row(11.36, 160, 39.97, 6.10, 40.30, 64.03, 45.92, 3.33, 1934, 8789),
    ("VHREDlgm5", "hyp1"): _row(11.36, 160, 50.44, 6.12, 40.26, 64.17, 46.05, 3.50, 1989, 9427),
    ("VHREDlgm5", "hyp5"): _row(11.36, 160, 30.85, 6.61, 41.31, 65.31, 47.19, 3.73, 1825, 8522),
    ("VHREDlgm5", "hyp20"): _row(11.36, 160, 29.74, 6.82, 41.33, 65.29, 47.39, 3.76, 1786, 8395),
    ("VHREDlgm5", "hyp100"): _row(11.36, 160, 28.76, 6.79, 41.31, 65.18, 47.19, 3.76, 1777, 8364),
    ("VHREDlgm20", "gt"): _row(12.52, 160, 46.46, 6.70, 41.12, 64.98, 46.83, 3.64, 1907, 8941),
    ("VHREDlgm20", "hyp1"): _row(12.52, 160, 46.45, 6.65, 41.10, 64.95, 46.77, 3.64, 1895, 8869),
    ("VHREDlgm20", "hyp5"): _row(12.52, 160, 29.18, 6.99, 41.80, 65.72, 47.68, 3.82, 1725, 7757),
    ("VHREDlgm20", "hyp20"): _row(12.52, 160, 26.93, 7.07, 42.29, 66.13, 48.01, 3.86, 1604, 7255),
    ("VHREDlgm20", "hyp100"): _row(12.52, 160, 26.40, 7.31, 42.31, 66.32, 48.32, 3.91, 1677, 7641),
    ("VHREDlgm100", "hyp100"): _row(18.67, 160, 26.25, 7.39, 42.28, 66.19, 48.16, 3.92, 1612, 7302),
    ("MHRED", "hyp100"): _row(8.51, 300, 24.27, 6.59, 39.65, 61.64, 44.79, 3.80, 1829, 7729),
    ("HREDCVaR", "hyp100"): _row(8.04, 150, 20.92, 7.32, 40.49, 62.43, 45.53, 3.88, 1738, 6908),
    ("VHREDMBoW", "hyp100"): _row(11.02, 900, 51.74, 5.68, 38.71, 62.81, 45.07, 3.41, 2334, 12116),
}

# Table 4: VHRED-LGM20 with (True) or without (False) the ground truth, by number of hypotheses.
TABLE4_METRICS = ("ppl", "bleu2", "ext", "avg", "grd", "reval")
TABLE4: dict[tuple[bool, int], dict[str, float]] = {
    (False, 1): dict(zip(TABLE4_METRICS, (46.45, 6.65, 41.10, 64.95, 46.77, 3.64), strict=True)),
    (True, 1): dict(zip(TABLE4_METRICS, (30.12, 6.70, 41.48, 65.01, 46.91, 3.71), strict=True)),
    (False, 5): dict(zip(TABLE4_METRICS, (29.18, 6.99, 41.80, 65.72, 47.68, 3.82), strict=True)),
    (True, 5): dict(zip(TABLE4_METRICS, (27.31, 7.26, 42.21, 66.33, 48.32, 3.83), strict=True)),
    (False, 20): dict(zip(TABLE4_METRICS, (26.93, 7.07, 42.29, 66.13, 48.01, 3.86), strict=True)),
    (True, 20): dict(zip(TABLE4_METRICS, (26.46, 7.25, 42.00, 65.81, 47.71, 3.88), strict=True)),
    (False, 100): dict(zip(TABLE4_METRICS, (26.40, 7.31, 42.31, 66.32, 48.32, 3.91), strict=True)),
    (True, 100): dict(zip(TABLE4_METRICS, (26.49, 7.23, 42.28, 65.83, 47.60, 3.88), strict=True)),
}

# Table 5: VHRED-LGM20 (100 hyp.) decoded with the k-th latent variable only; the paper shows four
# variables, one per pattern. pi is the mean selection probability in percent. Variable indices are
# arbitrary labels of one training run: another run's k = 4 is not the paper's k = 4.
TABLE5: dict[int, dict[str, float | str]] = {
    4: {"pattern": "bad prob. / bad PPL / bad Reval", "pi": 0.12, "ppl": 4865.8, "bleu2": 1.77, "reval": 1.51},
    0: {"pattern": "bad prob. / good PPL / bad Reval", "pi": 0.38, "ppl": 112.10, "bleu2": 5.42, "reval": 2.73},
    8: {"pattern": "medium prob. / bad PPL / good Reval", "pi": 8.22, "ppl": 2740.2, "bleu2": 6.22, "reval": 3.74},
    1: {"pattern": "good prob. / good PPL / good Reval", "pi": 39.24, "ppl": 72.34, "bleu2": 5.52, "reval": 3.59},
}

# Li, Kiseleva & de Rijke (2021, "Mirror"), Table 1(b): human pairwise evaluation on DailyDialog, as printed.
# Keyed by the baseline's label; the shares of 200 test dialogues (3 MTurk annotators each) in which Mirror's
# response was judged more appropriate (wins), less appropriate (losses) or equally so (ties). Human judges,
# not a learned evaluator: reference only, shown next to the learned judge's shares (multiref.mirror.pairwise).
MIRROR_HUMAN: dict[str, dict[str, float]] = {
    "Seq2SeqAttn": {"wins": 0.50, "losses": 0.26, "ties": 0.24},
    "HRED": {"wins": 0.49, "losses": 0.32, "ties": 0.19},
    "VHRED": {"wins": 0.48, "losses": 0.37, "ties": 0.15},
    "MMI": {"wins": 0.40, "losses": 0.34, "ties": 0.26},
    "DC": {"wins": 0.45, "losses": 0.38, "ties": 0.17},
    "DC-MMI": {"wins": 0.47, "losses": 0.35, "ties": 0.18},
}
