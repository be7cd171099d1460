"""Training state on disk: model, optimiser, scheduler, RNG and loop position, for exact resumption."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from multiref.io import atomic_path


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
    """Restore a saved state made with the same ``fingerprint``; None when there is none to resume."""
    if not path.exists():
        return None
    saved = torch.load(path, map_location=device, weights_only=False)
    if saved.get("fingerprint") != fingerprint:
        logging.getLogger("multiref").warning(
            "ignoring checkpoint %s: it was made with another configuration, model or data; starting afresh", path
        )
        return None
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["rng_cpu"])
    if saved.get("rng_cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved["rng_cuda"])
    return saved["state"]
