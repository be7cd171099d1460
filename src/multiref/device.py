"""Which torch device a job runs on (a light module: the jobs that only need this do not import transformers)."""

from __future__ import annotations

import torch

from multiref.errors import ConfigError


def resolve_device(requested: str, setting: str = "device") -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; ``cuda`` (or ``cuda:N``) without that GPU is a
    :class:`ConfigError` naming ``setting``, the configuration key the value came from (e.g. ``train.device``)."""
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        index = requested.partition(":")[2]
        if not torch.cuda.is_available():
            raise ConfigError(
                f"{setting}: {requested!r} requested but no CUDA GPU is available (set {setting} to 'auto' or 'cpu')"
            )
        if index.isdigit() and int(index) >= torch.cuda.device_count():
            raise ConfigError(
                f"{setting}: {requested!r} requested but only {torch.cuda.device_count()} CUDA GPU(s) are visible"
            )
    return requested
