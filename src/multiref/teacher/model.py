"""Building and loading the GPT-2 teacher (pretrained from the hub / a local path, or from scratch)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerBase

from multiref.device import resolve_device  # noqa: F401 (kept importable from here)
from multiref.teacher.tokenizer import TeacherError, load_tokenizer, unavailable


def scratch_model(tokenizer: PreTrainedTokenizerBase, arch: Mapping[str, Any], seed: int) -> GPT2LMHeadModel:
    """A randomly initialised GPT-2 of the given shape (``n_layer``, ``n_embd``, ``n_head``, ``n_positions``)."""
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=arch["n_positions"],
        n_embd=arch["n_embd"],
        n_layer=arch["n_layer"],
        n_head=arch["n_head"],
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return GPT2LMHeadModel(config)


def pretrained_model(name_or_path: str, tokenizer: PreTrainedTokenizerBase, seed: int = 42) -> GPT2LMHeadModel:
    """GPT-2 weights from the hub or a local directory, embeddings resized to the added specials.

    The rows of the added specials are drawn at random (``transformers`` samples them around the mean of the
    pretrained rows), so the draw is seeded: two builds of the same configuration give the same teacher."""
    try:
        model = GPT2LMHeadModel.from_pretrained(name_or_path)
    except (OSError, ValueError) as exc:
        raise unavailable("teacher model", name_or_path, exc) from exc
    torch.manual_seed(seed)
    model.resize_token_embeddings(len(tokenizer))
    model.config.bos_token_id = tokenizer.bos_token_id
    model.config.eos_token_id = tokenizer.eos_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    return model


def load_teacher(path: str | Path, device: str = "cpu") -> tuple[GPT2LMHeadModel, PreTrainedTokenizerBase]:
    """A fine-tuned teacher saved by the teacher rule (model + tokenizer in one directory)."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise TeacherError(f"no teacher model in {path} (config.json missing); rerun the teacher rule")
    tokenizer = load_tokenizer(path)
    try:
        model = GPT2LMHeadModel.from_pretrained(str(path))
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
        raise TeacherError(f"cannot load the teacher model in {path} (corrupt or incomplete weights?): {exc}") from exc
    if model.get_input_embeddings().num_embeddings < len(tokenizer):
        raise TeacherError(f"{path}: the model's vocabulary is smaller than its tokenizer's")
    return model.to(device).eval(), tokenizer
