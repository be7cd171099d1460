"""Training the evaluator: next-utterance pre-training, then supervised training on the human scores, resumable."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import math
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from multiref.errors import ConfigError
from multiref.io import content_digest
from multiref.preempt import Checkpointer, stop_signals
from multiref.resumable import Plateau, read_state, restore_rng, write_state
from multiref.reval.model import (
    Context,
    PretrainConfig,
    RevalConfig,
    RevalModel,
    build_reval,
    device_of,
    load_reval,
    resolve_encoder,
    save_reval,
)
from multiref.reval.scoring import correlations, encode_all, eval_batches, pad_batch, score_ids

CHECKPOINT_FORMAT = 1  # of train_reval's checkpoint file; part of its fingerprint


def next_utterance_examples(pairs: pd.DataFrame, max_pairs: int | None = None, seed: int = 10) -> pd.DataFrame:
    """Pre-training examples from (context, response) pairs: for each pair used, (context, its response, 1.0)
    and (context, the response of another pair drawn at random, 0.0).

    ``pairs`` needs the columns ``context`` (list of turns, oldest first) and ``response`` (text), as the
    pipeline's ``data/pairs/train.parquet``. Up to ``max_pairs`` pairs are drawn without replacement with
    ``numpy.random.default_rng(seed)`` (in file order when all are used); a negative is redrawn (at most 10
    times) while it equals the true response. Pairs with an empty context are skipped. Columns of the result:
    ``context``, ``response``, ``label`` (float), ``kind`` ("true" / "random"), ``pair`` (row index in ``pairs``).
    """
    for col in ("context", "response"):
        if col not in pairs.columns:
            raise ConfigError(f"pre-training pairs lack the column '{col}' (have {sorted(pairs.columns)})")
    contexts = [list(c) if not isinstance(c, str) else c.split("\n") for c in pairs["context"]]
    responses = [str(r) for r in pairs["response"]]
    usable = [i for i, c in enumerate(contexts) if len(c) > 0]
    if len(responses) < 2 or not usable:
        raise ConfigError(f"pre-training needs at least 2 pairs with a context, got {len(usable)} of {len(responses)}")
    rng = np.random.default_rng(seed)
    if max_pairs is not None and max_pairs < len(usable):
        chosen = sorted(int(i) for i in rng.choice(usable, size=max_pairs, replace=False))
    else:
        chosen = usable
    rows: list[dict[str, Any]] = []
    for i in chosen:
        negative = responses[int(rng.integers(len(responses)))]
        for _ in range(10):
            if negative != responses[i]:
                break
            negative = responses[int(rng.integers(len(responses)))]
        rows.append({"context": contexts[i], "response": responses[i], "label": 1.0, "kind": "true", "pair": i})
        rows.append({"context": contexts[i], "response": negative, "label": 0.0, "kind": "random", "pair": i})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------------------
# Checkpoints: a killed or preempted training resumes where it was, with the result of an uninterrupted run


class _Stopped(Exception):
    def __init__(self, total_steps: int) -> None:
        self.total_steps = total_steps
        super().__init__(f"stopped after {total_steps} steps")


def _plain(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float, np.integer, np.floating)):
        return float(value)
    return [str(t) for t in value]


def _data_digest(*parts: tuple[str, pd.DataFrame | None, Sequence[str]]) -> dict[str, Any]:
    """Rows and sha256 of the training data (each named frame's ``columns``, row by row), for the fingerprint."""
    out: dict[str, Any] = {}
    for name, df, columns in parts:
        if df is None:
            out[name] = None
            continue
        h = hashlib.sha256()
        for row in zip(*(df[c] for c in columns), strict=True):
            h.update(json.dumps([_plain(v) for v in row]).encode())
            h.update(b"\n")
        out[name] = {"rows": len(df), "sha256": h.hexdigest()}
    return out


class _Run:
    """The training state of one evaluator (both phases) on disk, on :mod:`multiref.resumable`: when it is saved
    (every ``every_seconds``, at each epoch end, on SIGTERM/SIGUSR1 via :class:`multiref.preempt.Checkpointer`,
    after ``stop_after`` optimizer steps of both phases), and its loading. ``path`` None: nothing is saved."""

    def __init__(
        self, path: Path | None, fingerprint: dict[str, Any], every_seconds: float | None, stop_after: int | None
    ) -> None:
        self.path = path
        self.fingerprint = fingerprint
        self.timer = Checkpointer(every_seconds) if path is not None else None
        self.stop_after = stop_after
        self.total_steps = 0  # optimizer steps of both phases, over all attempts
        self.pretrain_summary: dict[str, Any] | None = None
        self.started = time.time()
        self.before = 0.0  # seconds of the earlier attempts

    def elapsed(self) -> float:
        return self.before + time.time() - self.started

    def load(self) -> dict[str, Any] | None:
        """The saved state if there is one made with the same fingerprint; it is applied by the caller."""
        saved = read_state(self.path, self.fingerprint) if self.path is not None else None
        if saved is None:
            return None
        self.total_steps = int(saved["total_steps"])
        self.pretrain_summary = saved["pretrain_summary"]
        self.before = float(saved["seconds"])
        loop = saved["loop"]
        logging.getLogger("multiref").info(
            "resuming from the checkpoint %s (phase %s, epoch %d, batch %d, step %d of the phase, %d in all)",
            self.path, saved["phase"], loop["epoch"], loop["batch"], loop["step"], self.total_steps,
        )
        return saved

    def save(self, phase: str, model: nn.Module, optimizer: torch.optim.Optimizer, loop: dict[str, Any]) -> None:
        """Write the state atomically; then :meth:`Checkpointer.saved` (raises Preempted after a stop signal)."""
        if self.path is None or self.timer is None:
            return
        write_state(self.path, self.fingerprint, model, optimizer, phase=phase, total_steps=self.total_steps,
                    seconds=self.elapsed(), pretrain_summary=self.pretrain_summary, loop=loop)
        self.timer.saved(self.path)

    def stepped(self, save: Callable[[], None]) -> None:
        """After each optimizer step: save when due (interval or stop signal), or stop after ``stop_after``."""
        self.total_steps += 1
        if self.timer is None:
            return
        if self.stop_after is not None and self.total_steps >= self.stop_after:
            save()
            raise _Stopped(self.total_steps)
        if self.timer.due():
            save()


def _restore(saved: dict[str, Any], optimizer: torch.optim.Optimizer) -> None:
    """The optimizer and the torch RNG (dropout) of a saved state; the model's weights are loaded earlier."""
    optimizer.load_state_dict(saved["optimizer"])
    restore_rng(saved)


# --------------------------------------------------------------------------------------------------------------
# Training


def _frame_inputs(df: pd.DataFrame, name: str) -> tuple[list[Context], list[str], list[float]]:
    for col in ("context", "response", "score"):
        if col not in df.columns:
            raise ConfigError(f"{name} data frame lacks the column '{col}'")
    return list(df["context"]), [str(r) for r in df["response"]], [float(s) for s in df["score"]]


def _first_token_vectors(model: RevalModel, seqs: Sequence[list[int]], pad_id: int, batch_size: int) -> torch.Tensor:
    """The encoder's first-token vectors of ``seqs`` (eval mode, no gradient), in the order of ``seqs``."""
    device = next(model.parameters()).device
    out = torch.zeros((len(seqs), model.dense.in_features), device=device)

    def run(idx: list[int], ids: torch.Tensor, mask: torch.Tensor) -> None:
        out[torch.tensor(idx, device=device)] = model.first_token(ids, mask)

    eval_batches(model, seqs, pad_id, batch_size, run)
    return out


def _param_groups(model: RevalModel, head_lr_scale: float) -> tuple[list[nn.Parameter], list[dict[str, Any]]]:
    params = [q for q in model.parameters() if q.requires_grad]
    head_params = [q for m in model.head().values() for q in m.parameters()]
    head_ids = {id(q) for q in head_params}
    groups = [
        {"params": [q for q in params if id(q) not in head_ids], "lr_scale": 1.0},
        {"params": head_params, "lr_scale": head_lr_scale},
    ]
    return params, [g for g in groups if g["params"]]


def _optimise(loss: torch.Tensor, params: list[nn.Parameter], optimizer: torch.optim.Optimizer, grad_clip: float) -> None:
    """One update: backward, gradient-norm clipping (0: none), step, zeroed gradients."""
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    optimizer.zero_grad()


def _progress(start: float, text: str) -> None:
    print(f"[reval] {time.time() - start:.1f}s {text}", file=sys.stderr, flush=True)


def _pretrain(
    model: RevalModel,
    tokenizer: Any,
    examples: pd.DataFrame,
    cfg: RevalConfig,
    pcfg: PretrainConfig,
    progress: bool,
    start: float,
    run: _Run,
    resume: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Next-utterance pre-training: MSE between the head's probability p and the 0/1 ``label`` of ``examples``.

    ``resume``: a saved state of this phase (:meth:`_Run.load`, model weights already loaded) to continue."""
    for col in ("context", "response", "label"):
        if col not in examples.columns:
            raise ConfigError(f"pre-training examples lack the column '{col}'")
    t0 = time.time()
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id
    seqs = encode_all(list(examples["context"]), [str(r) for r in examples["response"]], tokenizer, cfg)
    labels = torch.tensor([float(x) for x in examples["label"]], dtype=torch.float, device=device)
    frozen = _first_token_vectors(model, seqs, pad_id, cfg.eval_batch_size) if cfg.freeze_encoder else None
    params, groups = _param_groups(model, cfg.head_lr_scale)
    optimizer = torch.optim.AdamW(groups, lr=pcfg.lr, weight_decay=cfg.weight_decay)
    for group in optimizer.param_groups:
        group["lr"] = pcfg.lr * group["lr_scale"]
    rng = random.Random(pcfg.seed)
    # epoch (1-based) and batch: the next batch to run; order: this epoch's shuffled order (None at an epoch's start)
    st: dict[str, Any] = {"epoch": 1, "batch": 0, "step": 0, "order": None, "rng": None, "losses": [],
                          "epoch_mse": [], "seconds": 0.0}
    if resume is not None:
        st = resume["loop"]
        _restore(resume, optimizer)
        rng.setstate(st["rng"])
    before = float(st["seconds"])

    def save() -> None:
        st["rng"] = rng.getstate()
        st["seconds"] = before + time.time() - t0
        run.save("pretrain", model, optimizer, st)

    n_batches = math.ceil(len(seqs) / pcfg.batch_size)
    while st["epoch"] <= pcfg.epochs:
        if st["order"] is None:
            order = list(range(len(seqs)))
            rng.shuffle(order)
            st.update(order=order, batch=0, losses=[])
        while st["batch"] < n_batches:
            s = st["batch"] * pcfg.batch_size
            idx = st["order"][s:s + pcfg.batch_size]
            model.train()
            rows = torch.tensor(idx, device=device)
            if frozen is not None:
                prob = model.head_probability(frozen[rows])
            else:
                ids, mask = pad_batch([seqs[i] for i in idx], pad_id, device)
                prob = model.head_probability(model.first_token(ids, mask))
            loss = torch.mean((prob - labels[rows]) ** 2)
            _optimise(loss, params, optimizer, cfg.grad_clip)
            st["losses"].append(loss.item())
            st["batch"] += 1
            st["step"] += 1
            run.stepped(save)
        st["epoch_mse"].append(float(np.mean(st["losses"])))
        if progress:
            _progress(start, f"pre-training epoch {st['epoch']} done, {st['step']} steps, mse {st['epoch_mse'][-1]:.4f}")
        st.update(epoch=st["epoch"] + 1, order=None, batch=0, losses=[])
        save()
    return {"examples": len(seqs), "pairs": int(examples["pair"].nunique()) if "pair" in examples else None,
            "epochs": pcfg.epochs, "steps": st["step"], "epoch_mse": list(st["epoch_mse"]),
            "seconds": before + time.time() - t0, "config": pcfg.to_dict()}


def pretrain_reval(
    examples: pd.DataFrame,
    cfg: RevalConfig,
    pcfg: PretrainConfig,
    out_dir: str | os.PathLike[str],
    progress: bool = False,
) -> dict[str, Any]:
    """Next-utterance pre-training alone (:func:`next_utterance_examples` -> ``examples``); the model is saved to
    ``out_dir`` for ``train_reval(..., init=out_dir)``. Returns the pre-training summary. (Not resumable:
    ``train_reval(pretrain=...)``, which the pipeline runs, is.)"""
    _seed(cfg.seed)
    start = time.time()
    model, tokenizer = build_reval(cfg)
    model.to(device_of(cfg))
    summary = _pretrain(model, tokenizer, examples, cfg, pcfg, progress, start, _Run(None, {}, None, None))
    model.cfg = cfg
    summary["out_dir"] = str(save_reval(model, tokenizer, out_dir, info={"pretrain": summary}))
    return summary


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train_reval(
    train_df: pd.DataFrame,
    dev_df: pd.DataFrame | None,
    cfg: RevalConfig,
    out_dir: str | os.PathLike[str],
    progress: bool = False,
    pretrain: PretrainConfig | None = None,
    pretrain_examples: pd.DataFrame | None = None,
    init: str | os.PathLike[str] | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_seconds: float | None = 600.0,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Fine-tune encoder and head by MSE on the 1..5 ``score`` of ``train_df``; save to ``out_dir``.

    ``init``: start from a saved evaluator (e.g. one written by :func:`pretrain_reval`), encoder and head,
    instead of ``cfg.encoder`` with a fresh head.

    With ``pretrain`` (``epochs`` > 0) and ``pretrain_examples`` (:func:`next_utterance_examples`), the model is
    first trained on next-utterance prediction (the authors' semi-supervised evaluator), then on the scores.
    ``dev_df`` (may be None or empty: then no validation, no lr decay, and the last model is kept) is scored
    every ``cfg.validate_every`` steps (0: after each epoch) for the lr plateau rule and ``keep="best"``.
    Returns a summary: steps, epochs run, seconds (over all attempts), final lr, the dev history and the dev
    correlations of the saved model (``dev``), the pre-training summary (``pretrain``, or None) and ``out_dir``.

    ``checkpoint`` (a file; None: not resumable): the training state of both phases is saved there atomically
    at each epoch end, every ``checkpoint_seconds`` (None: not on time) and on SIGTERM/SIGUSR1, after which
    :class:`multiref.preempt.Preempted` is raised. A later call with the same arguments resumes from it and
    saves bitwise the same model as an uninterrupted run (on CPU); a checkpoint made with another
    configuration, ``init`` or data is ignored with a warning. The file is kept after the model is saved.
    ``stop_after`` (tests): save and return ``{"stopped": "interrupted", ...}`` once this many optimizer
    steps of both phases together have run.
    """
    if pretrain is not None and pretrain.epochs > 0 and (pretrain_examples is None or pretrain_examples.empty):
        raise ConfigError("pre-training is configured (epochs > 0) but no pre-training examples were given")
    if stop_after is not None and checkpoint is None:
        raise ConfigError("train_reval: stop_after needs a checkpoint file")
    path = Path(checkpoint) if checkpoint is not None else None
    signals = stop_signals() if path is not None else contextlib.nullcontext()
    try:
        with signals:
            return _train_reval(train_df, dev_df, cfg, out_dir, progress, pretrain, pretrain_examples, init, path,
                                checkpoint_seconds, stop_after)
    except _Stopped as stopped:
        return {"stopped": "interrupted", "checkpoint": str(path), "total_steps": stopped.total_steps}


class _Data:
    """The encoded training and dev inputs of the supervised phase; with a frozen encoder, also their fixed
    first-token vectors (then only the head trains)."""

    def __init__(self, model: RevalModel, tokenizer: Any, train_df: pd.DataFrame, dev_df: pd.DataFrame | None,
                 cfg: RevalConfig) -> None:
        contexts, responses, self.targets = _frame_inputs(train_df, "train")
        if not self.targets:
            raise ConfigError("the training data frame is empty")
        self.pad_id = tokenizer.pad_token_id
        self.train = encode_all(contexts, responses, tokenizer, cfg)
        self.dev: list[list[int]] = []
        self.dev_gold: list[float] = []
        if dev_df is not None and len(dev_df):
            dc, dr, self.dev_gold = _frame_inputs(dev_df, "dev")
            self.dev = encode_all(dc, dr, tokenizer, cfg)
        self.train_h: torch.Tensor | None = None
        self.dev_h: torch.Tensor | None = None

    def freeze(self, model: RevalModel, batch_size: int) -> None:
        for param in model.encoder.parameters():
            param.requires_grad_(False)
        self.train_h = _first_token_vectors(model, self.train, self.pad_id, batch_size)
        self.dev_h = _first_token_vectors(model, self.dev, self.pad_id, batch_size) if self.dev else None


def _fingerprint(cfg: RevalConfig, pretrain: PretrainConfig | None, init: str | os.PathLike[str] | None,
                 train_df: pd.DataFrame, dev_df: pd.DataFrame | None, pretrain_examples: pd.DataFrame | None,
                 has_dev: bool) -> dict[str, Any]:
    """What a checkpoint must share with this training to be resumed: the configurations, the starting weights
    (by content) and the data (row by row)."""
    return {
        "format": CHECKPOINT_FORMAT,
        "config": {k: v for k, v in cfg.to_dict().items() if k != "device"},
        "pretrain": pretrain.to_dict() if pretrain is not None else None,
        "init": str(Path(init).resolve()) if init is not None else None,
        # the encoder's (or the init evaluator's) files by content: another model at the same path is not resumed
        "weights": content_digest({"init": init, "encoder": resolve_encoder(cfg.encoder)}),
        "data": _data_digest(
            ("train", train_df, ("context", "response", "score")),
            ("dev", dev_df if has_dev else None, ("context", "response", "score")),
            ("pretrain", pretrain_examples if pretrain is not None else None, ("context", "response", "label")),
        ),
    }


def _train_reval(
    train_df: pd.DataFrame,
    dev_df: pd.DataFrame | None,
    cfg: RevalConfig,
    out_dir: str | os.PathLike[str],
    progress: bool,
    pretrain: PretrainConfig | None,
    pretrain_examples: pd.DataFrame | None,
    init: str | os.PathLike[str] | None,
    checkpoint: Path | None,
    checkpoint_seconds: float | None,
    stop_after: int | None,
) -> dict[str, Any]:
    _seed(cfg.seed)
    start = time.time()
    if init is not None:
        model, tokenizer = load_reval(init, device=str(device_of(cfg)))
        model.cfg = cfg
    else:
        model, tokenizer = build_reval(cfg)
    model.to(device_of(cfg))
    data = _Data(model, tokenizer, train_df, dev_df, cfg)
    pretraining = pretrain is not None and pretrain.epochs > 0 and pretrain_examples is not None
    fingerprint = _fingerprint(cfg, pretrain if pretraining else None, init, train_df, dev_df,
                               pretrain_examples if pretraining else None, bool(data.dev))
    run = _Run(checkpoint, fingerprint, checkpoint_seconds, stop_after)
    run.started = start  # this attempt's seconds count from the model's loading, as before
    saved = run.load()
    if saved is not None:
        model.load_state_dict(saved["model"])
    if cfg.freeze_encoder:
        data.freeze(model, cfg.eval_batch_size)
        if progress:
            _progress(start, f"encoded {len(data.train) + len(data.dev)} inputs (frozen encoder)")
    if saved is not None and saved["phase"] == "train":
        pretrain_summary = run.pretrain_summary
    elif pretraining and pretrain is not None and pretrain_examples is not None:
        pretrain_summary = _pretrain(model, tokenizer, pretrain_examples, cfg, pretrain, progress, start, run, saved)
        run.pretrain_summary = pretrain_summary
    else:
        pretrain_summary = None
    loop = _Supervised(model, data, cfg, run, start, progress)
    if saved is not None and saved["phase"] == "train":
        loop.resume(saved)
    loop.train()
    summary = loop.finish() | {"pretrain": pretrain_summary}
    model.cfg = cfg
    info = {k: v for k, v in summary.items() if k != "history"}
    summary["out_dir"] = str(save_reval(model, tokenizer, out_dir, info=info))
    return summary


class _Supervised:
    """The supervised phase's loop: AdamW on the MSE to the human scores, the dev correlations every
    ``validate_every`` steps (0: each epoch end) for the plateau rule and ``keep``, the authors' stopping rule
    (an epoch starts only while the lr is above ``min_lr``), its state saved through :class:`_Run`."""

    def __init__(self, model: RevalModel, data: _Data, cfg: RevalConfig, run: _Run, start: float, progress: bool) -> None:
        self.model, self.data, self.cfg, self.run, self.start, self.progress = model, data, cfg, run, start, progress
        self.device = next(model.parameters()).device
        self.params, groups = _param_groups(model, cfg.head_lr_scale)
        self.optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.plateau = Plateau(cfg.plateau_mode, cfg.plateau_factor, cfg.plateau_patience)
        self.rng = random.Random(cfg.seed)
        # epoch (1-based) and batch: the next batch to run; order: this epoch's shuffled order (None at its start)
        self.st: dict[str, Any] = {
            "epoch": 1, "epochs_run": 0, "batch": 0, "step": 0, "order": None, "rng": None, "losses": [],
            "base_lr": cfg.lr, "plateau": self.plateau.state_dict(), "history": [], "best": None, "best_state": None,
        }
        self.targets = torch.tensor(data.targets, dtype=torch.float, device=self.device)

    def resume(self, saved: dict[str, Any]) -> None:
        self.st = saved["loop"]
        _restore(saved, self.optimizer)
        self.rng.setstate(self.st["rng"])
        self.plateau.load_state_dict(self.st["plateau"])

    def save(self) -> None:
        self.st["rng"] = self.rng.getstate()
        self.st["plateau"] = self.plateau.state_dict()
        self.run.save("train", self.model, self.optimizer, self.st)

    def dev_scores(self) -> list[float]:
        if self.data.dev_h is None:
            return score_ids(self.model, self.data.dev, self.data.pad_id, self.cfg.eval_batch_size)
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            pred = self.model.head_score(self.data.dev_h).tolist()
        self.model.train(was_training)
        return [float(x) for x in pred]

    def validate(self, epoch: int) -> None:
        st, cfg = self.st, self.cfg
        pred = self.dev_scores()
        c = correlations(pred, self.data.dev_gold)
        mse = float(np.mean((np.array(pred) - np.array(self.data.dev_gold)) ** 2))
        row = {"step": st["step"], "epoch": epoch, "lr": st["base_lr"], **c, "mse": mse}
        st["history"].append(row)
        if self.plateau.step(c["pearson"] + c["spearman"]):  # the authors' monitor
            st["base_lr"] *= cfg.plateau_factor
        if cfg.keep == "best" and not math.isnan(c["pearson"]) and (st["best"] is None or c["pearson"] > st["best"]["pearson"]):
            st["best"] = row
            st["best_state"] = {
                k: v.detach().to("cpu", copy=True)
                for k, v in self.model.state_dict().items()
                if not (cfg.freeze_encoder and k.startswith("encoder."))
            }
        if self.progress:
            _progress(self.start, f"epoch {epoch} step {st['step']} lr {row['lr']:.3g} dev pearson {c['pearson']:.3f} "
                                  f"spearman {c['spearman']:.3f} mse {row['mse']:.3f}")

    def step(self, epoch: int, idx: list[int]) -> None:
        st, cfg = self.st, self.cfg
        step = st["step"]
        lr_now = st["base_lr"] * (min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0)
        for group in self.optimizer.param_groups:
            group["lr"] = lr_now * group["lr_scale"]
        self.model.train()
        rows = torch.tensor(idx, device=self.device)
        if self.data.train_h is not None:
            pred = self.model.head_score(self.data.train_h[rows])
        else:
            ids, mask = pad_batch([self.data.train[i] for i in idx], self.data.pad_id, self.device)
            pred = self.model(ids, mask)
        loss = nn.MSELoss()(pred, self.targets[rows])
        _optimise(loss, self.params, self.optimizer, cfg.grad_clip)
        st["losses"].append(loss.item())
        if self.data.dev and cfg.validate_every and step > 0 and step % cfg.validate_every == 0:
            self.validate(epoch)  # as the authors: checked before the step counter moves on
        st["step"] += 1
        st["batch"] += 1
        self.run.stepped(self.save)

    def train(self) -> None:
        st, cfg = self.st, self.cfg
        n_batches = math.ceil(len(self.data.train) / cfg.batch_size)
        while st["epoch"] <= cfg.epochs:
            epoch = st["epoch"]
            if st["order"] is None:
                if st["base_lr"] <= cfg.min_lr:  # the authors' stopping rule, checked at the start of an epoch
                    break
                st["epochs_run"] = epoch
                order = list(range(len(self.data.train)))
                self.rng.shuffle(order)
                st.update(order=order, batch=0, losses=[])
            while st["batch"] < n_batches:
                s = st["batch"] * cfg.batch_size
                self.step(epoch, st["order"][s:s + cfg.batch_size])
            if self.progress and (self.data.train_h is None or epoch == cfg.epochs or epoch % 10 == 0):
                _progress(self.start, f"epoch {epoch} done, {st['step']} steps, train mse {np.mean(st['losses']):.3f}")
            if self.data.dev and not cfg.validate_every:
                self.validate(epoch)
            st.update(epoch=epoch + 1, order=None, batch=0, losses=[])
            self.save()

    def finish(self) -> dict[str, Any]:
        """Keep the best model when asked (a last validation first), and the summary of the phase."""
        st, cfg = self.st, self.cfg
        history = st["history"]
        if cfg.keep == "best" and self.data.dev and (not history or history[-1]["step"] != st["step"]):
            self.validate(st["epochs_run"])
        if cfg.keep == "best" and st["best_state"] is not None:
            self.model.load_state_dict(st["best_state"], strict=not cfg.freeze_encoder)
        kept = copy.deepcopy(st["best"]) if cfg.keep == "best" and st["best"] is not None else None
        final_dev = correlations(self.dev_scores(), self.data.dev_gold) if self.data.dev else None
        return {
            "steps": st["step"], "epochs_run": st["epochs_run"], "final_lr": st["base_lr"], "seconds": self.run.elapsed(),
            "n_train": len(self.data.train), "n_dev": len(self.data.dev), "keep": cfg.keep, "kept_validation": kept,
            "dev": final_dev, "history": history,
        }
