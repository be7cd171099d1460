"""Training data settings of the paper (Table 4 / Table 9): ``gt``, ``hypK`` and ``gt+hypK``.

A setting is materialised as a small index, one row per training example: the pair it belongs to and
which reference it uses (the ground truth, or hypothesis ``hyp_index`` of the teacher shards). Texts
stay in the pairs and hypothesis files (read memory-mapped), so no text is copied K times.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from multiref import paper
from multiref.errors import ConfigError
from multiref.io import read_table, write_parquet

_NAME = re.compile(r"^(?:(gt)|hyp(\d+)|gt\+hyp(\d+))$")

INDEX_SCHEMA = pa.schema(
    [
        pa.field("pair_id", pa.int64(), nullable=False),
        pa.field("source", pa.string(), nullable=False),  # "gt" or "hyp"
        pa.field("hyp_index", pa.int16(), nullable=False),  # -1 for the ground truth
    ]
)


@dataclass(frozen=True)
class Setting:
    name: str
    gt: bool
    k: int  # hypotheses per pair (0 for gt)

    @property
    def epochs(self) -> int:
        """Maximum epochs of the paper's Table 9 (the setting must be one of the paper's)."""
        if self.name not in paper.TABLE9:
            raise ConfigError(f"data setting {self.name!r} has no epoch budget in the paper's Table 9")
        return int(paper.TABLE9[self.name]["epochs"])


def parse_setting(name: str) -> Setting:
    """``gt``, ``hypK`` or ``gt+hypK`` (K ≥ 1); anything else is an error naming the value."""
    match = _NAME.match(name)
    if not match:
        raise ConfigError(f"unknown data setting {name!r}: expected 'gt', 'hypK' or 'gt+hypK' (e.g. hyp20, gt+hyp5)")
    gt_only, hyp_only, gt_hyp = match.groups()
    k = int(hyp_only or gt_hyp or 0)
    if (hyp_only or gt_hyp) and k < 1:
        raise ConfigError(f"data setting {name!r}: the number of hypotheses must be at least 1")
    return Setting(name, gt=bool(gt_only or gt_hyp), k=k)


_SEEDED = re.compile(r"^(?P<data>.+?)_seed(?P<k>[1-9]\d*)$")


def seeded_name(data: str, k: int) -> str:
    """The run-folder name of setting ``data`` trained with seed index ``k``: ``data`` itself for k = 0 (the
    paper's single run, folder unchanged), ``<data>_seed<k>`` for k >= 1 (trained with ``train.seed + k``)."""
    if k < 0:
        raise ConfigError(f"seed index must be >= 0, got {k}")
    return data if k == 0 else f"{data}_seed{k}"


def split_seed(name: str) -> tuple[str, int]:
    """Inverse of :func:`seeded_name`: ``hyp5_seed2`` -> ("hyp5", 2), ``hyp5`` -> ("hyp5", 0)."""
    match = _SEEDED.match(name)
    return (match["data"], int(match["k"])) if match else (name, 0)


def build_index(pair_ids: np.ndarray, setting: Setting, available: int, gt_copies: int) -> pa.Table:
    """The example index of ``setting``: per pair, hypotheses ``0..K-1`` then the ground truth
    ``gt_copies`` times (the authors' code adds it twice in GT+hyp settings; ``gt`` alone has one)."""
    if setting.k > available:
        raise ConfigError(f"data setting {setting.name!r} needs {setting.k} hypotheses per pair, the teacher made {available}")
    copies = 1 if setting.k == 0 else (gt_copies if setting.gt else 0)
    per_pair = setting.k + copies
    n = len(pair_ids)
    ids = np.repeat(pair_ids.astype(np.int64), per_pair)
    hyp = np.tile(np.concatenate([np.arange(setting.k), np.full(copies, -1)]).astype(np.int16), n)
    source = np.where(hyp < 0, "gt", "hyp")
    return pa.table({"pair_id": ids, "source": source, "hyp_index": hyp}, schema=INDEX_SCHEMA)


def write_setting(pairs_path: Path, name: str, available: int, gt_copies: int, out_path: Path) -> dict[str, Any]:
    """Materialise one setting's index with its epoch budget (Table 9) in the Parquet metadata."""
    setting = parse_setting(name)
    pair_ids = read_table(pairs_path, columns=["pair_id"]).column("pair_id").to_numpy()
    table = build_index(pair_ids, setting, available, gt_copies)
    meta = {
        "stage": "data_setting",
        "setting": name,
        "k": setting.k,
        "gt": setting.gt,
        "gt_copies": gt_copies if setting.gt and setting.k else int(setting.gt),
        "epochs": setting.epochs,
        "examples_per_epoch": table.num_rows,
        "paper_max_steps": paper.TABLE9[name]["max_steps"],
    }
    write_parquet(table, out_path, meta)
    return meta
