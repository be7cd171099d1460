"""Models by name: the configuration declares them, this module builds, saves and reloads them."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from multiref.errors import ConfigError, MultirefError
from multiref.io import atomic_path
from multiref.models.hred import HRED, HREDConfig, parameter_count
from multiref.models.hred_cvar import HREDCVaR, HREDCVaRConfig
from multiref.models.hred_tokkd import HREDTokKD, HREDTokKDConfig
from multiref.models.mhred import MHRED, MHREDConfig
from multiref.models.mirror import Mirror, MirrorConfig
from multiref.models.seq2seq_attn import Seq2SeqAttn, Seq2SeqAttnConfig
from multiref.models.vhred import VHRED, VHREDConfig
from multiref.models.vhred_mbow import VHREDMBoW, VHREDMBoWConfig

# A model kind is one file: its module and its config dataclass. A new kind is one more entry here.
KINDS: dict[str, tuple[type[torch.nn.Module], type]] = {
    "hred": (HRED, HREDConfig),
    "vhred": (VHRED, VHREDConfig),
    "mhred": (MHRED, MHREDConfig),
    "hred_cvar": (HREDCVaR, HREDCVaRConfig),
    "vhred_mbow": (VHREDMBoW, VHREDMBoWConfig),
    "hred_tokkd": (HREDTokKD, HREDTokKDConfig),  # built from the teacher: multiref.models.run.tokkd_inputs
    "seq2seq_attn": (Seq2SeqAttn, Seq2SeqAttnConfig),
    "mirror": (Mirror, MirrorConfig),  # trains on triples (multiref.mirror.triples)
}


def is_nested(spec: Mapping[str, Any]) -> bool:
    """Whether the model of this configuration entry trains on one example per context with all its references."""
    cls, _ = KINDS.get(spec.get("kind"), (None, None))
    return bool(getattr(cls, "nested", False))


def build(name: str, spec: Mapping[str, Any], vocab_size: int, special_ids: Mapping[str, int]) -> torch.nn.Module:
    """A model from its configuration entry (``kind`` plus the dimensions of its config class)."""
    try:
        return _construct(spec, vocab_size=vocab_size, **special_ids)
    except ConfigError as exc:
        raise ConfigError(f"model {name!r}: {exc}") from exc


def check_spec(name: str, spec: Mapping[str, Any]) -> None:
    """Build a configuration entry's model on the ``meta`` device (shapes only, no memory, no arithmetic), so
    that every constraint of its config and its layers (an even hidden size for Mirror, two or more mixture
    components, ...) is checked before any job runs."""
    with torch.device("meta"):
        _construct(spec, vocab_size=1000, pad_id=0, bos_id=1, eos_id=2)


def _construct(spec: Mapping[str, Any], **sizes: int) -> torch.nn.Module:
    """The model of a configuration entry with the given vocabulary size and special ids; a wrong kind, field or
    value is a :class:`ConfigError`."""
    kind = spec.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"unknown kind {kind!r} (known: {sorted(KINDS)})")
    cls, config_cls = KINDS[kind]
    fields = {k: v for k, v in spec.items() if k != "kind"}
    try:
        return cls(config_cls(**sizes, **fields))
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from exc


def save(model: torch.nn.Module, name: str, path: Path, info: Mapping[str, Any]) -> None:
    """The weights with everything needed to rebuild the model alone (kind, config, vocabulary hash)."""
    kind = next(k for k, (cls, _) in KINDS.items() if type(model) is cls)
    with atomic_path(path) as tmp:
        torch.save({"name": name, "kind": kind, "config": asdict(model.cfg), "state_dict": model.state_dict(),
                    "parameters": parameter_count(model), **info}, tmp)


def load(path: Path, vocab_sha256: str | None = None, device: str = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild a saved model; with ``vocab_sha256``, refuse one trained on another vocabulary."""
    try:
        saved = torch.load(path, map_location=device, weights_only=False)
        cls, config_cls = KINDS[saved["kind"]]
    except (OSError, KeyError, TypeError, RuntimeError, pickle.UnpicklingError, EOFError) as exc:
        raise MultirefError(f"{path}: not a multiref model checkpoint ({exc})") from exc
    if vocab_sha256 is not None and saved.get("vocab_sha256") != vocab_sha256:
        raise MultirefError(f"{path}: trained with another vocabulary (sha256 {saved.get('vocab_sha256')}, expected {vocab_sha256})")
    model = cls(config_cls(**saved["config"]))
    model.load_state_dict(saved["state_dict"])
    return model.to(device).eval(), saved
