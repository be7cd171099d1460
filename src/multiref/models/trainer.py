"""Training a dialogue model with the paper's schedule (Appendix B.2), resumable after a kill.

Adam, lr 1e-3, gradient norm clipped at 1, batch 30, data reshuffled every epoch (a permutation fixed
by the seed and the epoch; ``batching="pooled"``: OpenNMT's length-pooled batches keyed by the length of
each example's last context turn, :func:`multiref.resumable.pooled_batches`), validation every 1,000 steps
with ``ReduceLROnPlateau`` (x0.75, patience 3) on the model's dev monitor (the authors': perplexity for the HRED family, reconstruction + KL for VHRED) (plus one final validation), and a stop when the learning rate falls to 1e-7 (checked at the start of an epoch, as
the authors do), at the epoch budget of the paper's Table 9, at an optional example budget, or (a control run) after exactly
``max_steps`` steps, which the learning-rate floor does not cut short. The
kept model is the best on the dev monitor (``keep="best"``) or the last one (``keep="last"``, the authors').
A non-finite loss stops training with the step number and the last finite losses; the checkpoint on
disk is the last good one. Besides the validations and epoch ends, the state is saved every
``checkpoint_seconds`` and on SIGTERM/SIGUSR1 (:mod:`multiref.preempt`), so a killed or preempted run
resumes where it was, with the same result as an uninterrupted one (bitwise on CPU).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from multiref.errors import MultirefError
from multiref.models.data import Example, collate
from multiref.preempt import Checkpointer, preemptible
from multiref.resumable import BATCHINGS, epoch_batches, load_state, pooled_batches, save_state


class TrainingDiverged(MultirefError):
    """The loss became NaN or infinite."""


@dataclass(frozen=True)
class Schedule:
    epochs: int = 100
    max_examples: int | None = None
    max_steps: int | None = None  # an exact step count (a control run); the learning-rate floor then does not stop it
    batch_size: int = 30
    eval_batch_size: int = 60
    lr: float = 1e-3
    max_grad_norm: float = 1.0
    decay: float = 0.75
    patience: int = 3
    validate_every: int = 1000
    min_lr: float = 1e-7
    seed: int = 42
    keep: str = "best"
    log_every: int = 100
    batching: str = "random"  # or "pooled" (multiref.resumable.pooled_batches)


@torch.no_grad()
def evaluate(model: torch.nn.Module, examples: Sequence[Example], batch_size: int, pad_id: int, device: str, step: int) -> dict[str, float]:
    """Dev loss (the model's objective), the model's dev monitor (both averaged over batches, as the
    authors' reporter does) and the token-level perplexity over the whole dev set."""
    was_training = model.training
    model.eval()
    losses, monitors, nll, tokens = [], [], 0.0, 0
    for start in range(0, len(examples), batch_size):
        out = model(*collate(examples[start : start + batch_size], pad_id, device), step=step)
        losses.append(float(out["loss"]))
        monitors.append(float(out.get("monitor", out["loss"])))
        nll += float(out["nll_sum"])
        tokens += int(out["n_tokens"])
    model.train(was_training)
    n = max(len(losses), 1)
    return {"dev_loss": sum(losses) / n, "dev_monitor": sum(monitors) / n, "dev_ppl": math.exp(nll / max(tokens, 1))}


def _check_can_train(n_train: int, n_dev: int, schedule: Schedule, checkpoint: Path) -> None:
    """Refuse a run that could not take one optimiser step, before anything is built."""
    if schedule.keep not in ("best", "last"):
        raise ValueError(f"keep must be 'best' or 'last', got {schedule.keep!r}")
    if schedule.batching not in BATCHINGS:
        raise ValueError(f"batching must be one of {list(BATCHINGS)}, got {schedule.batching!r}")
    if not n_train or not n_dev:
        raise MultirefError(
            f"nothing to train on: {n_train} training and {n_dev} dev examples "
            f"(checkpoint {checkpoint}); a model trained on no data is not written"
        )
    if schedule.lr <= schedule.min_lr or schedule.epochs < 1:
        raise MultirefError(
            f"the schedule allows no optimiser step: lr {schedule.lr}, min_lr {schedule.min_lr}, epochs {schedule.epochs} "
            "(training stops once the learning rate is at or below min_lr)"
        )


class _Run:
    """One training run: the model, Adam, the plateau scheduler and the resumable counters in ``state``."""

    def __init__(self, model: torch.nn.Module, train_examples: Sequence[Example], dev_examples: Sequence[Example],
                 schedule: Schedule, checkpoint: Path, pad_id: int, device: str, ckpt: Checkpointer,
                 inputs: Mapping[str, Any] | None) -> None:
        self.model, self.train_examples, self.dev_examples = model, train_examples, dev_examples
        self.schedule, self.checkpoint, self.pad_id, self.device, self.ckpt = schedule, checkpoint, pad_id, device, ckpt
        model.to(device).train()
        self.optimizer = torch.optim.Adam(model.parameters(), lr=schedule.lr)
        self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, factor=schedule.decay, patience=schedule.patience
        )
        self.fingerprint = {
            "schedule": asdict(schedule),
            "model": repr(getattr(model, "cfg", type(model).__name__)),
            "n_train": len(train_examples),
            "n_dev": len(dev_examples),
            "inputs": dict(inputs or {}),
        }
        fresh: dict[str, Any] = {
            "epoch": 0, "batch": 0, "step": 0, "examples": 0, "log": [], "best": math.inf, "best_weights": None,
            "recent": [], "stop": None,
        }
        self.state = load_state(checkpoint, self.fingerprint, model, self.optimizer, self.plateau, device) or fresh
        self.recent: deque[float] = deque(self.state["recent"], maxlen=5)

    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def batches(self, epoch: int) -> list[list[int]]:
        """The batches of an epoch; pooled batches are keyed by the length of each example's query, its last
        context turn (the ``x`` of a Mirror triple, as OpenNMT's ``sort_key`` is the source length)."""
        n, schedule = len(self.train_examples), self.schedule
        if schedule.batching == "pooled":
            lengths = [len(e.context[-1]) if e.context else 0 for e in self.train_examples]
            return pooled_batches(n, schedule.batch_size, schedule.seed, epoch, lengths)
        return epoch_batches(n, schedule.batch_size, schedule.seed, epoch)

    def save(self) -> None:
        save_state(self.checkpoint, self.fingerprint, self.model, self.optimizer, self.plateau, self.state)
        self.ckpt.saved(self.checkpoint)

    def validate(self) -> None:
        """Dev evaluation; the plateau scheduler steps on the dev monitor and the best weights are kept."""
        state = self.state
        dev = evaluate(self.model, self.dev_examples, self.schedule.eval_batch_size, self.pad_id, self.device, state["step"])
        self.plateau.step(dev["dev_monitor"])
        if dev["dev_monitor"] < state["best"]:
            state["best"] = dev["dev_monitor"]
            state["best_weights"] = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        state["log"].append({"step": state["step"], "epoch": state["epoch"], "lr": self.lr(), "train_loss": None, **dev})
        self.save()

    def step(self, chosen: Sequence[Example]) -> float:
        """One optimiser step on a batch: loss, backward, gradient clipping, Adam; returns the loss."""
        tick = time.perf_counter()
        loss = self.model(*collate(chosen, self.pad_id, self.device), step=self.state["step"])["loss"]
        if not torch.isfinite(loss):
            raise TrainingDiverged(
                f"non-finite loss ({loss.item()}) at step {self.state['step'] + 1}; last finite losses "
                f"{[round(v, 4) for v in self.recent]}; the last good checkpoint is {self.checkpoint}"
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.schedule.max_grad_norm)
        self.optimizer.step()
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        # Training time only (no validation, no start-up), kept across resumes: Trn Time of Tables 1/2.
        self.state["train_seconds"] = self.state.get("train_seconds", 0.0) + time.perf_counter() - tick
        return loss.item()

    def epoch(self, bar: tqdm, stop_after: int | None) -> bool:
        """The rest of the current epoch (from ``state["batch"]``); True when ``stop_after`` interrupts it."""
        state, schedule = self.state, self.schedule
        batches = self.batches(state["epoch"])
        while state["batch"] < len(batches):
            chosen = [self.train_examples[i] for i in batches[state["batch"]]]
            loss = self.step(chosen)
            state["batch"] += 1
            state["step"] += 1
            state["examples"] += len(chosen)
            self.recent.append(loss)
            state["recent"] = list(self.recent)
            bar.update(1)
            if state["step"] % schedule.log_every == 0:
                state["log"].append({"step": state["step"], "epoch": state["epoch"], "lr": self.lr(), "train_loss": loss,
                                     "dev_loss": None, "dev_monitor": None, "dev_ppl": None})
            if state["step"] % schedule.validate_every == 0:
                self.validate()
            elif self.ckpt.due():
                self.save()
            if schedule.max_steps is not None and state["step"] >= schedule.max_steps:
                state["stop"] = "step budget"
                return False
            if schedule.max_examples and state["examples"] >= schedule.max_examples:
                state["stop"] = "example budget"
                return False
            if stop_after is not None and state["step"] >= stop_after:
                return True
        return False


@preemptible
def train_model(
    model: torch.nn.Module,
    train_examples: Sequence[Example],
    dev_examples: Sequence[Example],
    schedule: Schedule,
    checkpoint: Path,
    pad_id: int,
    device: str = "cpu",
    progress: bool = True,
    stop_after: int | None = None,
    checkpoint_seconds: float | None = 600.0,
    inputs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Train in place; returns the log rows and the summary. The kept weights are loaded into ``model``.

    ``inputs`` (the content digests of the input files, :func:`multiref.io.content_digest`) join the
    checkpoint's fingerprint with the schedule and the model, so a checkpoint is resumed only by a run of the
    same configuration on the same data."""
    ckpt = Checkpointer(checkpoint_seconds)
    _check_can_train(len(train_examples), len(dev_examples), schedule, checkpoint)
    run = _Run(model, train_examples, dev_examples, schedule, checkpoint, pad_id, device, ckpt, inputs)
    state = run.state
    steps_per_epoch = math.ceil(len(train_examples) / schedule.batch_size)
    bar = tqdm(total=steps_per_epoch * schedule.epochs, initial=state["step"], desc="train", unit="step", disable=not progress, mininterval=5)
    while state["stop"] is None:
        if state["epoch"] >= schedule.epochs:
            state["stop"] = "epoch budget"
            break
        if state["batch"] == 0 and schedule.max_steps is None and run.lr() <= schedule.min_lr:
            state["stop"] = "learning rate below minimum"
            break
        if run.epoch(bar, stop_after):
            bar.close()
            return {"log": state["log"], "stopped": "interrupted"}
        if state["stop"] is None:
            state["epoch"] += 1
            state["batch"] = 0
            run.save()
    bar.close()
    if state["step"] == 0:
        raise MultirefError(f"the run stopped after 0 optimiser steps ({state['stop']}; checkpoint {checkpoint}); nothing is written")
    if not state["log"] or state["log"][-1]["step"] != state["step"] or state["log"][-1]["dev_loss"] is None:
        run.validate()  # a final validation, so that the best model is chosen among all validated states
    save_state(checkpoint, run.fingerprint, model, run.optimizer, run.plateau, state)
    if schedule.keep == "best" and state["best_weights"] is not None:
        model.load_state_dict(state["best_weights"])
    return {
        "log": state["log"], "stopped": state["stop"], "steps": state["step"], "examples": state["examples"],
        "best_dev_monitor": state["best"], "train_seconds": state.get("train_seconds", 0.0),
    }
