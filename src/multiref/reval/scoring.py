"""Scoring responses with a trained evaluator, and the correlations of scores with human judgements."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from multiref.errors import ConfigError
from multiref.reval.model import Context, RevalConfig, RevalModel, format_input, load_reval

# --------------------------------------------------------------------------------------------------------------
# Scoring, correlations


def pad_batch(seqs: Sequence[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids.to(device), mask.to(device)


def encode_all(
    contexts: Sequence[Context], responses: Sequence[str], tokenizer: Any, cfg: RevalConfig
) -> list[list[int]]:
    if len(contexts) != len(responses):
        raise ValueError(f"{len(contexts)} contexts but {len(responses)} responses")
    return [
        format_input(c, r, tokenizer, cfg.max_length, max_uttr_len=cfg.max_uttr_len, history_len=cfg.history_len)
        for c, r in zip(contexts, responses)
    ]


def eval_batches(
    model: RevalModel, seqs: Sequence[list[int]], pad_id: int, batch_size: int,
    run: Callable[[list[int], torch.Tensor, torch.Tensor], None],
) -> None:
    """Call ``run(indices, ids, mask)`` on length-sorted batches of ``seqs`` (less padding), in eval mode
    without gradients; the model's training mode is restored afterwards."""
    device = next(model.parameters()).device
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                ids, mask = pad_batch([seqs[i] for i in idx], pad_id, device)
                run(idx, ids, mask)
    finally:
        model.train(was_training)


def score_ids(model: RevalModel, seqs: Sequence[list[int]], pad_id: int, batch_size: int) -> list[float]:
    out = [0.0] * len(seqs)

    def run(idx: list[int], ids: torch.Tensor, mask: torch.Tensor) -> None:
        for i, value in zip(idx, model(ids, mask).tolist()):
            out[i] = float(value)

    eval_batches(model, seqs, pad_id, batch_size, run)
    return out


def score(
    model: RevalModel, tokenizer: Any, contexts: Sequence[Context], responses: Sequence[str], batch_size: int = 30
) -> list[float]:
    """Reval scores (1..5) of ``responses`` given ``contexts`` (lists of turns or newline-joined strings)."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    cfg = model.cfg or RevalConfig()
    seqs = encode_all(contexts, responses, tokenizer, cfg)
    return score_ids(model, seqs, tokenizer.pad_token_id, batch_size) if seqs else []


def correlations(pred: Sequence[float], gold: Sequence[float]) -> dict[str, float]:
    """Pearson and Spearman correlation of ``pred`` with ``gold`` and their two-sided p-values.

    scipy's ``pearsonr`` / ``spearmanr`` if scipy is installed, else pandas' ``corr`` (p-values NaN then).
    ``n`` is the number of pairs; a constant input or fewer than 2 pairs gives NaN correlations.
    """
    x = np.asarray(pred, dtype=float)
    y = np.asarray(gold, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"pred and gold must be 1-d and of equal length, got {x.shape} and {y.shape}")
    n = int(x.size)
    nan = float("nan")
    if n < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"pearson": nan, "pearson_p": nan, "spearman": nan, "spearman_p": nan, "n": n}
    try:
        from scipy import stats
    except ImportError:
        sx, sy = pd.Series(x), pd.Series(y)
        pearson, spearman = sx.corr(sy, method="pearson"), sx.corr(sy, method="spearman")
        return {"pearson": float(pearson), "pearson_p": nan, "spearman": float(spearman), "spearman_p": nan, "n": n}
    pr, sr = stats.pearsonr(x, y), stats.spearmanr(x, y)
    return {"pearson": float(pr[0]), "pearson_p": float(pr[1]), "spearman": float(sr[0]), "spearman_p": float(sr[1]),
            "n": n}


def score_saved(
    model_dir: str | os.PathLike[str],
    contexts: Sequence[Context],
    responses: Sequence[str],
    batch_size: int = 30,
    device: str | None = None,
) -> list[float]:
    """Load the evaluator saved in ``model_dir`` and score ``responses`` given ``contexts`` (batched, 1..5)."""
    model, tokenizer = load_reval(model_dir, device=device)
    return score(model, tokenizer, contexts, responses, batch_size=batch_size)

