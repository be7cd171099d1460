"""What every training loop here shares: the batch order of an epoch, the training state on disk
(model, optimiser, scheduler, RNG, loop position) for exact resumption, and the CSV log."""

from __future__ import annotations

import csv
import logging
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from multiref.io import atomic_path, move_aside

LOG_FIELDS = ["step", "epoch", "lr", "train_loss", "dev_loss", "dev_monitor", "dev_ppl"]


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The batches (example indices) of one epoch: a permutation fixed by ``seed`` and ``epoch``."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=generator).tolist()
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def write_log(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """A training log as CSV (step, epoch, lr, train_loss, dev_loss, dev_monitor, dev_ppl; empty where not measured)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=LOG_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row.get(k) is None else row[k] for k in LOG_FIELDS})


def save_state(path: Path, fingerprint: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, state: dict[str, Any]) -> None:
    """Write everything a resumed run needs, atomically (a kill never leaves a half-written file)."""
    with atomic_path(path) as tmp:
        torch.save(
            {
                "fingerprint": fingerprint,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng_cpu": torch.get_rng_state(),
                "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                "state": state,
            },
            tmp,
        )


def load_state(path: Path, fingerprint: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, device: str) -> dict[str, Any] | None:
    """Restore a saved state made with the same ``fingerprint``; None when there is none to resume. A state
    file that cannot be read (truncated by a full disk, say) is moved aside with a warning."""
    if not path.exists():
        return None
    try:
        saved = torch.load(path, map_location=device, weights_only=False)
        if not isinstance(saved, dict):
            raise ValueError(f"holds a {type(saved).__name__}, not a training state")
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        move_aside(path, f"{type(exc).__name__}: {exc}")
        return None
    if saved.get("fingerprint") != fingerprint:
        logging.getLogger("multiref").warning(
            "ignoring checkpoint %s: it was made with another configuration, model or input data; starting afresh", path
        )
        return None
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["rng_cpu"])
    if saved.get("rng_cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved["rng_cuda"])
    position = {k: saved["state"][k] for k in ("epoch", "batch", "step") if k in saved["state"]}
    logging.getLogger("multiref").info("resuming from the checkpoint %s (%s)", path, position)
    return saved["state"]
