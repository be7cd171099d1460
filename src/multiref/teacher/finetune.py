"""Fine-tuning the GPT-2 teacher on the 1-GT training pairs, with exact resume after a kill.

Schedule (paper, Appendix B: "hyperparameters of Wolf et al. (2019)"): AdamW, lr 6.25e-5, weight
decay 0.01, linear decay to zero, gradient clipping at 1.0, batch 10, 2 epochs. The batch order of
epoch ``e`` is a permutation drawn from ``seed`` and ``e`` alone, so a resumed run sees the same
batches; the checkpoint holds model, optimiser, scheduler, the RNG state (dropout) and the position
in the epoch, so resuming gives the same weights as an uninterrupted run (bitwise on CPU).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm
from transformers import GPT2LMHeadModel, PreTrainedTokenizerBase

from multiref.io import atomic_dir, write_json
from multiref.preempt import Checkpointer, preemptible
from multiref.resumable import epoch_batches, load_state, save_state
from multiref.teacher.format import IGNORE

Example = tuple[list[int], list[int]]


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 2
    batch_size: int = 10
    lr: float = 6.25e-5
    weight_decay: float = 0.01
    warmup_steps: int = 0
    max_grad_norm: float = 1.0
    seed: int = 42
    checkpoint_every: int = 500
    log_every: int = 50
    eval_batch_size: int = 32


def collate(examples: Sequence[Example], pad_id: int, device: str) -> dict[str, torch.Tensor]:
    """Right-padded input ids, attention mask and labels (``IGNORE`` on padding)."""
    width = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, (x, y) in enumerate(examples):
        ids[row, : len(x)] = torch.tensor(x)
        labels[row, : len(y)] = torch.tensor(y)
        mask[row, : len(x)] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "labels": labels.to(device)}


@torch.no_grad()
def token_nll(model: GPT2LMHeadModel, examples: Sequence[Example], batch_size: int, pad_id: int, device: str) -> tuple[float, int]:
    """Summed negative log-likelihood of the label tokens and their number (for perplexity)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(examples), batch_size):
        batch = collate(examples[start : start + batch_size], pad_id, device)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        target = batch["labels"][:, 1:]
        nll = torch.nn.functional.cross_entropy(
            logits.float().reshape(-1, logits.size(-1)), target.reshape(-1), ignore_index=IGNORE, reduction="sum"
        )
        total += nll.item()
        count += int((target != IGNORE).sum())
    model.train(was_training)
    return total, count


def _linear_schedule(warmup: int, total: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


@preemptible
def _log_row(state: dict[str, Any], epoch: float, lr: float, dev_loss: float | None = None) -> None:
    """Append a row of the training curve (the mean training loss since the last row) and restart that mean."""
    state["curve"].append(
        {
            "step": state["step"],
            "epoch": epoch,
            "lr": lr,
            "train_loss": state["loss_sum"] / state["loss_n"] if state["loss_n"] else None,
            "dev_loss": dev_loss,
            "dev_ppl": None if dev_loss is None else math.exp(dev_loss),
        }
    )
    state["loss_sum"], state["loss_n"] = 0.0, 0


def train(
    model: GPT2LMHeadModel,
    train_examples: Sequence[Example],
    dev_examples: Sequence[Example],
    cfg: TrainConfig,
    checkpoint: Path,
    pad_id: int,
    device: str = "cpu",
    progress: bool = True,
    stop_after: int | None = None,
    checkpoint_seconds: float | None = 600.0,
    inputs: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Train ``model`` in place; returns the training curve (one dict per logged step or epoch end).

    ``checkpoint`` is written every ``cfg.checkpoint_every`` steps and at each epoch end, and read
    back on start when it exists and was made with the same configuration and ``inputs`` (the content
    digest of what the teacher is made from, :func:`multiref.io.content_digest`).
    It is also written every ``checkpoint_seconds`` and on SIGTERM/SIGUSR1, after which the run stops
    (:class:`multiref.preempt.Preempted`) to be resumed by the next attempt.
    ``stop_after`` ends the run after that many steps in total (used by tests to simulate a kill).
    """
    ckpt = Checkpointer(checkpoint_seconds)
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(train_examples) / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _linear_schedule(cfg.warmup_steps, total_steps))
    fingerprint = {"config": asdict(cfg), "n_train": len(train_examples), "n_dev": len(dev_examples), "inputs": dict(inputs or {})}
    state: dict[str, Any] = {"epoch": 0, "batch": 0, "step": 0, "curve": [], "loss_sum": 0.0, "loss_n": 0}
    state = load_state(checkpoint, fingerprint, model, optimizer, scheduler, device) or state

    def save() -> None:
        save_state(checkpoint, fingerprint, model, optimizer, scheduler, state)
        ckpt.saved(checkpoint)

    bar = tqdm(total=total_steps, initial=state["step"], desc="teacher", unit="step", disable=not progress, mininterval=5)
    while state["epoch"] < cfg.epochs:
        batches = epoch_batches(len(train_examples), cfg.batch_size, cfg.seed, state["epoch"])
        while state["batch"] < len(batches):
            batch = collate([train_examples[i] for i in batches[state["batch"]]], pad_id, device)
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state["batch"] += 1
            state["step"] += 1
            state["loss_sum"] += loss.item()
            state["loss_n"] += 1
            bar.update(1)
            if state["step"] % cfg.log_every == 0:
                _log_row(state, state["epoch"] + state["batch"] / len(batches), scheduler.get_last_lr()[0])
            if state["step"] % cfg.checkpoint_every == 0 or ckpt.due():
                save()
            if stop_after is not None and state["step"] >= stop_after:
                bar.close()
                return state["curve"]
        nll, count = token_nll(model, dev_examples, cfg.eval_batch_size, pad_id, device)
        dev_loss = nll / max(count, 1)
        _log_row(state, state["epoch"] + 1, scheduler.get_last_lr()[0], dev_loss)
        state["epoch"] += 1
        state["batch"] = 0
        save()
    bar.close()
    return state["curve"]


def save_teacher(model: GPT2LMHeadModel, tokenizer: PreTrainedTokenizerBase, out_dir: Path, info: dict[str, Any]) -> None:
    """``save_pretrained`` of model and tokenizer plus ``multiref.json``, moved into place atomically."""
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json(info, tmp / "multiref.json")
