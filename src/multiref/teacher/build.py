"""The teacher rule end to end: tokenizer, examples, model, fine-tuning, saved directory."""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import torch
from transformers import GPT2LMHeadModel, PreTrainedTokenizerBase

from multiref.io import content_digest, write_json
from multiref.resumable import write_log
from multiref.teacher.finetune import Example, TrainConfig, save_teacher, token_nll, train
from multiref.teacher.format import TeacherFormat
from multiref.teacher.model import pretrained_model, resolve_device, scratch_model
from multiref.teacher.tokenizer import check_special_tokens, load_tokenizer, pretrained_tokenizer, train_bpe


def pair_examples(pairs_path: Path, fmt: TeacherFormat, max_len: int) -> list[Example]:
    """Training examples of a pairs Parquet file, in file order."""
    cols = pq.read_table(pairs_path, columns=["context", "context_floors", "response", "response_floor"]).to_pydict()
    return [
        fmt.example(c, f, rf, r, max_len)
        for c, f, rf, r in zip(cols["context"], cols["context_floors"], cols["response_floor"], cols["response"], strict=True)
    ]


def teacher_tokenizer(cfg: Mapping[str, Any], sessions_path: Path, work_dir: Path, key: str = "") -> PreTrainedTokenizerBase:
    """The tokenizer: cached in ``work_dir`` (under ``key``, a digest of what it is made from) so a resumed run
    reuses exactly the same one and a run on other data or another model never does."""
    cached = work_dir / (f"tokenizer-{key}" if key else "tokenizer")
    if (cached / "tokenizer_config.json").is_file():
        return load_tokenizer(cached)
    if cfg["init"] == "scratch":
        table = pq.read_table(sessions_path, columns=["split", "utterances"]).to_pydict()
        texts = [u for split, utts in zip(table["split"], table["utterances"], strict=True) if split == "train" for u in utts]
        tokenizer = train_bpe(texts, cfg["scratch"]["vocab_size"])
    else:
        tokenizer = pretrained_tokenizer(cfg["model"])
    check_special_tokens(tokenizer, "teacher tokenizer")
    tokenizer.save_pretrained(cached)
    return tokenizer


def build_teacher(
    cfg: Mapping[str, Any],
    sessions_path: Path,
    train_path: Path,
    dev_path: Path,
    out_dir: Path,
    curve_path: Path,
    metrics_path: Path,
    work_dir: Path,
    max_utterance_tokens: int,
    progress: bool = True,
    checkpoint_seconds: float | None = 600.0,
) -> dict[str, Any]:
    """Fine-tune (or train from scratch) the teacher and save it with its curve and dev perplexity."""
    device = resolve_device(cfg["device"], "teacher.device")
    work_dir.mkdir(parents=True, exist_ok=True)
    scratch = cfg["init"] == "scratch"
    # What the teacher is made from, by content (a local model folder's files; a hub name stands for itself).
    inputs = content_digest({
        "train": train_path, "dev": dev_path, "sessions": sessions_path if scratch else None,
        "model": None if scratch else cfg["model"],
    })
    made_from = {k: v for k, v in cfg.items() if k in ("init", "model", "scratch")} | {"inputs": inputs}
    key = hashlib.sha256(json.dumps(made_from, sort_keys=True, default=str).encode()).hexdigest()[:16]
    tokenizer = teacher_tokenizer(cfg, sessions_path, work_dir, key)
    train_cfg = TrainConfig(**cfg["train"])
    if cfg["init"] == "scratch":
        model: GPT2LMHeadModel = scratch_model(tokenizer, cfg["scratch"], train_cfg.seed)
    else:
        model = pretrained_model(cfg["model"], tokenizer, train_cfg.seed)
    max_len = model.config.n_positions
    fmt = TeacherFormat(tokenizer, max_utterance_tokens)
    train_examples = pair_examples(train_path, fmt, max_len)
    dev_examples = pair_examples(dev_path, fmt, max_len)
    torch.manual_seed(train_cfg.seed)
    start = time.perf_counter()
    curve = train(model, train_examples, dev_examples, train_cfg, work_dir / "checkpoint.pt", tokenizer.pad_token_id, device, progress,
                  checkpoint_seconds=checkpoint_seconds, inputs=made_from)
    seconds = time.perf_counter() - start
    nll, count = token_nll(model, dev_examples, train_cfg.eval_batch_size, tokenizer.pad_token_id, device)
    metrics = {
        "dev_loss": nll / count,
        "dev_ppl": math.exp(nll / count),
        "dev_tokens": count,
        "train_examples": len(train_examples),
        "parameters": sum(p.numel() for p in model.parameters()),
        "init": cfg["init"],
        "model": cfg["model"] if cfg["init"] == "pretrained" else "scratch",
        "device": device,
        "train_seconds_this_run": round(seconds, 3),
    }
    info = {"teacher": dict(cfg), "max_utterance_tokens": max_utterance_tokens, "metrics": metrics}
    write_log(curve, curve_path)
    save_teacher(model.cpu(), tokenizer, out_dir, info)
    write_json(metrics, metrics_path)
    return metrics
