"""What every training loop here shares: the batch order of an epoch, the training state on disk
(model, optimiser, scheduler, RNG, loop position) for exact resumption, and the CSV log."""

from __future__ import annotations

import csv
import logging
import math
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from multiref.io import atomic_path, move_aside

LOG_FIELDS = ["step", "epoch", "lr", "train_loss", "dev_loss", "dev_monitor", "dev_ppl"]


BATCHINGS = ("random", "pooled")
POOL_BATCHES = 100  # torchtext's pool: chunks of 100 batches


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The batches (example indices) of one epoch: a permutation fixed by ``seed`` and ``epoch``."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=generator).tolist()
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def pooled_batches(
    n: int, batch_size: int, seed: int, epoch: int, lengths: Sequence[int], pool: int = POOL_BATCHES
) -> list[list[int]]:
    """The batches of one epoch as torchtext's ``pool`` makes them for OpenNMT's training iterator (Mirror's
    code): the examples in a random order, cut into chunks of ``pool`` batches; each chunk sorted by
    ``lengths`` (stable: equal lengths keep the random order) and cut into batches, whose order within the
    chunk is shuffled; each batch listed longest first (``sort_within_batch``). Every example occurs once.
    Fixed by ``seed`` and ``epoch`` like :func:`epoch_batches` (so a resumed epoch has the same batches)."""
    if len(lengths) != n:
        raise ValueError(f"pooled batches need one length per example: {len(lengths)} lengths for {n} examples")
    if batch_size < 1 or pool < 1:
        raise ValueError(f"batch_size and pool must be at least 1, got {batch_size} and {pool}")
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=generator).tolist()
    batches: list[list[int]] = []
    chunk = batch_size * pool
    for start in range(0, n, chunk):
        ranked = sorted(order[start : start + chunk], key=lambda i: lengths[i])
        cut = [ranked[i : i + batch_size] for i in range(0, len(ranked), batch_size)]
        shuffle = torch.randperm(len(cut), generator=generator).tolist()
        batches += [sorted(cut[j], key=lambda i: lengths[i], reverse=True) for j in shuffle]
    return batches


def write_log(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """A training log as CSV (step, epoch, lr, train_loss, dev_loss, dev_monitor, dev_ppl; empty where not measured)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=LOG_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row.get(k) is None else row[k] for k in LOG_FIELDS})


def write_state(path: Path, fingerprint: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer, **parts: Any) -> None:
    """Write a training state atomically (a kill never leaves a half-written file): the fingerprint, the model,
    the optimiser, the CPU (and CUDA) random-number state, and any further ``parts`` of the loop."""
    with atomic_path(path) as tmp:
        torch.save(
            {
                "fingerprint": fingerprint,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "rng_cpu": torch.get_rng_state(),
                "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                **parts,
            },
            tmp,
        )


def read_state(path: Path, fingerprint: dict[str, Any], device: str = "cpu") -> dict[str, Any] | None:
    """A state written by :func:`write_state` with the same ``fingerprint``, or None (no file; a file of another
    fingerprint, ignored with a warning; a file that cannot be read, moved aside with a warning)."""
    if not path.exists():
        return None
    try:
        saved = torch.load(path, map_location=device, weights_only=False)
        if not isinstance(saved, dict):
            raise ValueError(f"holds a {type(saved).__name__}, not a training state")  # noqa: TRY004 (moved aside below)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        move_aside(path, f"{type(exc).__name__}: {exc}")
        return None
    if saved.get("fingerprint") != fingerprint:
        logging.getLogger("multiref").warning(
            "ignoring checkpoint %s: it was made with another configuration, model or input data; starting afresh", path
        )
        return None
    return saved


def restore_rng(saved: dict[str, Any]) -> None:
    """The random-number state of :func:`write_state` (the CUDA one only on as many GPUs as it was saved on)."""
    torch.set_rng_state(saved["rng_cpu"])
    cuda = saved.get("rng_cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def save_state(path: Path, fingerprint: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, state: dict[str, Any]) -> None:
    """:func:`write_state` of a loop with a learning-rate scheduler and its ``state`` (models, teacher)."""
    write_state(path, fingerprint, model, optimizer, scheduler=scheduler.state_dict(), state=state)


def load_state(path: Path, fingerprint: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, device: str) -> dict[str, Any] | None:
    """Restore a state of :func:`save_state` made with the same ``fingerprint`` into the model, optimiser,
    scheduler and random-number generators; returns the loop's state, or None when there is none to resume."""
    saved = read_state(path, fingerprint, device)
    if saved is None:
        return None
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    restore_rng(saved)
    position = {k: saved["state"][k] for k in ("epoch", "batch", "step") if k in saved["state"]}
    logging.getLogger("multiref").info("resuming from the checkpoint %s (%s)", path, position)
    return saved["state"]


class Plateau:
    """ReduceLROnPlateau's rule (threshold 1e-4 relative, no cooldown) on a monitor that may be maximised
    (``mode`` "max") or switched off ("off"), as the evaluator's training uses it: after more than ``patience``
    checks without a new best, :meth:`step` says to multiply the lr by ``factor``."""

    def __init__(self, mode: str, factor: float, patience: int) -> None:
        self.mode, self.factor, self.patience = mode, factor, patience
        self.best: float | None = None
        self.bad = 0

    def step(self, value: float) -> bool:
        """True if the lr should be reduced now."""
        if self.mode == "off" or math.isnan(value):
            return False
        if self.best is None:
            better = True
        elif self.mode == "min":
            better = value < self.best * (1 - 1e-4)
        else:
            better = value > self.best * (1 + 1e-4)
        if better:
            self.best, self.bad = value, 0
            return False
        self.bad += 1
        if self.bad > self.patience:
            self.bad = 0
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad": self.bad}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.bad = state["best"], int(state["bad"])
