"""HRED tok-KD (Zhao, Lala & Kawahara, 2021, §5.2): token-level knowledge distillation from the GPT-2 teacher.

The student is :class:`multiref.models.hred.HRED` over the teacher's BPE vocabulary
(:mod:`multiref.models.kd_data`); its tied word embeddings start from the teacher's token embeddings
reduced to ``embedding_dim`` by PCA. For a batch of B responses y (``<s>`` y_1 .. y_n ``</s>``) with
targets y_t (t = 1 .. n+1, ``</s>`` included) and a frozen teacher q (run on the same context and response
in its own input format, :class:`multiref.teacher.format.TeacherFormat`):

    NLL = (1/B) sum_b sum_t -log p(y_t | y_<t, x)
    KD  = (1/B) sum_b sum_t sum_v -q(v | y_<t, x) log p(v | y_<t, x)        guidance = "all"
    KD  = (1/B) sum_b sum_t -q(y_t | y_<t, x) log p(y_t | y_<t, x)           guidance = "target"
    L   = (1 - kd_weight) NLL + kd_weight KD                                 kd_weight = 0.5

as the authors' ``HREDStudent.train_step``. Padded positions add nothing. The teacher is attached with
:meth:`HREDTokKD.attach_teacher` and is not a submodule: it is absent from ``parameters()`` and
``state_dict()``, gets no gradient and stays in eval mode. Without a teacher, and in eval mode, the loss
is HRED's NLL (dev monitoring, the authors' dev perplexity, and decoding need no teacher).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

from multiref.errors import ConfigError
from multiref.models.hred import HRED, HREDConfig
from multiref.models.kd_data import speaker_ids, student_embeddings, student_specials
from multiref.models.layers import token_nll

GUIDANCE = ("all", "target")


@dataclass(frozen=True)
class HREDTokKDConfig(HREDConfig):
    kd_weight: float = 0.5  # weight of the soft cross-entropy; the NLL gets 1 - kd_weight
    guidance: str = "all"  # all: the teacher's full distribution | target: only its probability of the gold token
    teacher_embeddings: bool = True  # start from the teacher's token embeddings (PCA-reduced), as the authors


@dataclass(frozen=True)
class TeacherBatch:
    """The teacher's inputs for a student batch and where its predictions of the student's targets are.

    ``input_ids``/``attention_mask`` [B, L] (right-padded); for each of the N targets, ``rows`` [N] is its
    example, ``teacher_pos`` [N] the input position whose logits predict it, and ``target_pos`` [N] its
    index in the student's targets ``Y[:, 1:]``."""

    input_ids: Tensor
    attention_mask: Tensor
    rows: Tensor
    teacher_pos: Tensor
    target_pos: Tensor


@dataclass
class AttachedTeacher:
    """A plain holder (not an ``nn.Module``), so the teacher is never registered as a submodule."""

    model: PreTrainedModel
    speaker1_id: int
    speaker2_id: int
    max_positions: int | None


def teacher_vocab_size(teacher: PreTrainedModel) -> int:
    """The size of the teacher's output distribution (rows of its LM head)."""
    head = teacher.get_output_embeddings()
    if head is None:
        raise ConfigError("the teacher has no language-model head (get_output_embeddings() is None)")
    return int(head.weight.size(0))


def _truncate(turns: list[list[int]], tail: list[int], budget: int) -> list[int]:
    """``TeacherFormat.prefix`` on ids: oldest turns dropped first (one always kept), then ids from the left."""
    turns = list(turns)
    while len(turns) > 1 and sum(map(len, turns)) + len(tail) > budget:
        turns.pop(0)
    ids = [i for turn in turns for i in turn] + tail
    return ids[-budget:]


def teacher_batch(
    x: Tensor,
    x_floor: Tensor,
    y: Tensor,
    y_floor: Tensor,
    pad_id: int,
    speaker1_id: int,
    speaker2_id: int,
    max_positions: int | None = None,
) -> TeacherBatch:
    """The teacher's input for a student batch X [B, C, T], X_floor [B, C], Y [B, Ty], Y_floor [B].

    Each context turn's non-padding ids (``<s> bpe </s>``; turns with none are skipped, wherever they are,
    and the padding may be on either side) become ``<speakerX> <s> bpe </s>``, ``<speaker1>`` when the turn's
    floor is the response's. The response's non-padding ids ``<s> y_1 .. y_n </s>`` follow ``<speaker1>``.
    Input position ``len(prefix) - 1 + m`` (the prefix ending in ``<speaker1> <s>``) predicts the response's
    (m+1)-th id after ``<s>``, which is the student's target at ``Y[:, 1:]`` index ``k - 1`` for its column k
    in Y. Sequences longer than ``max_positions`` lose context as in :class:`TeacherFormat`.
    """
    xs, floors, ys, y_floors = x.tolist(), x_floor.tolist(), y.tolist(), y_floor.tolist()
    seqs: list[list[int]] = []
    rows: list[int] = []
    teacher_pos: list[int] = []
    target_pos: list[int] = []
    for b, (turn_ids, turn_floors, resp, resp_floor) in enumerate(zip(xs, floors, ys, y_floors, strict=True)):
        turns = []
        for ids, floor in zip(turn_ids, turn_floors, strict=True):
            kept = [i for i in ids if i != pad_id]
            if kept:
                turns.append([speaker1_id if floor == resp_floor else speaker2_id, *kept])
        columns = [k for k, i in enumerate(resp) if i != pad_id]
        if len(columns) < 2:  # no target: nothing to predict
            seqs.append([speaker1_id])
            continue
        tail = [speaker1_id, resp[columns[0]]]
        target = [resp[k] for k in columns[1:]]
        budget = sum(map(len, turns)) + len(tail) if max_positions is None else max_positions - len(target)
        if budget < len(tail):
            raise ConfigError(f"a response of {len(target)} target tokens does not fit the teacher's {max_positions} positions")
        prefix = _truncate(turns, tail, budget)
        seqs.append(prefix + target)
        for m, k in enumerate(columns[1:]):
            rows.append(b)
            teacher_pos.append(len(prefix) - 1 + m)
            target_pos.append(k - 1)
    width = max(map(len, seqs))
    input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for b, seq in enumerate(seqs):
        input_ids[b, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        attention_mask[b, : len(seq)] = 1

    def index(values: list[int]) -> Tensor:
        return torch.tensor(values, dtype=torch.long, device=y.device)

    return TeacherBatch(input_ids.to(y.device), attention_mask.to(y.device), index(rows), index(teacher_pos), index(target_pos))


@torch.no_grad()
def teacher_target_logits(teacher: PreTrainedModel, batch: TeacherBatch) -> Tensor:
    """The teacher's logits [N, V] (float32) at ``batch.teacher_pos``: its predictions of the N student targets.
    Only those positions go through the LM head."""
    positions = torch.arange(batch.input_ids.size(1), device=batch.input_ids.device).unsqueeze(0).expand_as(batch.input_ids)
    hidden = teacher.base_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=positions).last_hidden_state
    return teacher.get_output_embeddings()(hidden[batch.rows, batch.teacher_pos]).float()


def aligned_teacher_logits(
    teacher: PreTrainedModel,
    x: Tensor,
    x_floor: Tensor,
    y: Tensor,
    y_floor: Tensor,
    pad_id: int,
    speaker1_id: int,
    speaker2_id: int,
    max_positions: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Teacher logits aligned with the student's targets: ([B, Ty-1, V], mask [B, Ty-1]).

    ``logits[b, t]`` is the teacher's prediction of ``Y[b, t+1]`` (zeros where ``mask`` is False: padding)."""
    batch = teacher_batch(x, x_floor, y, y_floor, pad_id, speaker1_id, speaker2_id, max_positions)
    picked = teacher_target_logits(teacher, batch)
    out = picked.new_zeros((y.size(0), y.size(1) - 1, picked.size(-1)))
    mask = torch.zeros((y.size(0), y.size(1) - 1), dtype=torch.bool, device=y.device)
    out[batch.rows, batch.target_pos] = picked
    mask[batch.rows, batch.target_pos] = True
    return out, mask


class HREDTokKD(HRED):
    def __init__(self, cfg: HREDTokKDConfig) -> None:
        if cfg.guidance not in GUIDANCE:
            raise ConfigError(f"tok-KD guidance must be one of {GUIDANCE}, got {cfg.guidance!r}")
        if not 0.0 <= cfg.kd_weight <= 1.0:
            raise ConfigError(f"tok-KD kd_weight must lie in [0, 1], got {cfg.kd_weight}")
        super().__init__(cfg)
        self.cfg: HREDTokKDConfig = cfg
        self._teacher: AttachedTeacher | None = None

    @property
    def teacher(self) -> PreTrainedModel | None:
        return None if self._teacher is None else self._teacher.model

    def attach_teacher(self, teacher: PreTrainedModel, speaker1_id: int, speaker2_id: int, max_positions: int | None = None) -> None:
        """Use ``teacher`` (a GPT-2 LM in the same vocabulary) for the KD term; it is put in eval mode and
        kept out of this module's parameters and state. ``max_positions`` defaults to the teacher's
        ``n_positions``. The teacher follows the batch's device on first use."""
        size = teacher_vocab_size(teacher)
        if size != self.cfg.vocab_size:
            raise ConfigError(
                f"the teacher's vocabulary has {size} entries but the tok-KD student's has {self.cfg.vocab_size}; "
                "build the student from the teacher's tokenizer (multiref.models.kd_data)"
            )
        for name, token in (("speaker1_id", speaker1_id), ("speaker2_id", speaker2_id)):
            if not 0 <= token < size:
                raise ConfigError(f"{name} {token} is outside the teacher's vocabulary of {size}")
        if max_positions is None:
            max_positions = getattr(teacher.config, "n_positions", None) or getattr(teacher.config, "max_position_embeddings", None)
        teacher.eval()
        self._teacher = AttachedTeacher(teacher, int(speaker1_id), int(speaker2_id), max_positions)

    def detach_teacher(self) -> None:
        self._teacher = None

    def init_embeddings_from_teacher(self, teacher: PreTrainedModel) -> None:
        """Word embeddings (tied to the classifier) := the teacher's token embeddings, PCA-reduced to
        ``embedding_dim`` when smaller (:func:`multiref.models.kd_data.student_embeddings`)."""
        weight = teacher.get_input_embeddings().weight
        if weight.size(0) != self.cfg.vocab_size:
            raise ConfigError(
                f"the teacher has {weight.size(0)} token embeddings but the tok-KD student's vocabulary has {self.cfg.vocab_size}"
            )
        with torch.no_grad():
            self.embedding.weight.copy_(student_embeddings(weight, self.cfg.embedding_dim).to(self.embedding.weight))

    def forward(self, x: Tensor, x_floor: Tensor, y: Tensor, y_floor: Tensor, step: int = 0) -> dict[str, Tensor]:
        """HRED's keys plus ``nll`` and ``kd`` (both per response, averaged over the batch). With a teacher in
        training mode ``loss`` is the interpolated objective; otherwise it is HRED's NLL and ``kd`` is NaN."""
        batch_size = y.size(0)
        if self._teacher is None or not self.training:
            out = super().forward(x, x_floor, y, y_floor, step)
            return {**out, "nll": out["nll_sum"].detach() / batch_size, "kd": out["loss"].new_tensor(float("nan"))}
        memory, mask, context = self.encode(x, x_floor, y_floor)
        logits, _ = self.decoder(y[:, :-1], self.initial_state(context), context, memory, mask)
        target = y[:, 1:]
        nll_y = token_nll(logits, y, self.cfg.pad_id)
        nll_sum = nll_y.sum()
        n_tokens = (target != self.cfg.pad_id).sum()
        kd_sum = self._soft_cross_entropy(logits, x, x_floor, y, y_floor)
        nll, kd = nll_sum / batch_size, kd_sum / batch_size
        loss = (1.0 - self.cfg.kd_weight) * nll + self.cfg.kd_weight * kd
        return {"loss": loss, "nll_sum": nll_sum, "n_tokens": n_tokens, "token_nll": nll_y, "nll": nll.detach(), "kd": kd.detach(),
                "monitor": (nll_sum / n_tokens.clamp(min=1)).exp().detach()}

    def _soft_cross_entropy(self, logits: Tensor, x: Tensor, x_floor: Tensor, y: Tensor, y_floor: Tensor) -> Tensor:
        """Summed over the batch's target positions: -sum_v q(v) log p(v) (``all``) or -q(y_t) log p(y_t) (``target``)."""
        assert self._teacher is not None
        held = self._teacher
        teacher = held.model
        param = next(teacher.parameters(), None)
        if param is not None and param.device != y.device:
            teacher.to(y.device)
        if teacher.training:
            teacher.eval()
        batch = teacher_batch(x, x_floor, y, y_floor, self.cfg.pad_id, held.speaker1_id, held.speaker2_id, held.max_positions)
        if batch.rows.numel() == 0:
            return logits.sum() * 0.0
        q = teacher_target_logits(teacher, batch).softmax(-1)
        log_p = logits[batch.rows, batch.target_pos].float().log_softmax(-1)
        if self.cfg.guidance == "all":
            return -(q * log_p).sum()
        gold = y[batch.rows, batch.target_pos + 1].unsqueeze(1)
        return -(q.gather(1, gold) * log_p.gather(1, gold)).sum()


def tokkd_student(
    teacher: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    fields: Mapping[str, Any] | None = None,
    init_embeddings: bool = True,
) -> HREDTokKD:
    """A tok-KD student for ``teacher``: vocabulary size and special ids from the teacher and its tokenizer,
    dimensions from ``fields`` (HREDTokKDConfig fields), embeddings from the teacher's, teacher attached.
    Seed the RNG before calling for a reproducible initialisation."""
    try:
        cfg = HREDTokKDConfig(vocab_size=teacher_vocab_size(teacher), **student_specials(tokenizer), **dict(fields or {}))
    except TypeError as exc:
        raise ConfigError(f"tok-KD student: {exc}") from exc
    model = HREDTokKD(cfg)
    if init_embeddings and cfg.teacher_embeddings:
        model.init_embeddings_from_teacher(teacher)
    model.attach_teacher(teacher, **speaker_ids(tokenizer))
    return model


def load_tokkd_student(
    teacher_dir: Path, fields: Mapping[str, Any] | None = None, device: str = "cpu"
) -> tuple[HREDTokKD, PreTrainedTokenizerBase]:
    """:func:`tokkd_student` for the teacher saved in ``teacher_dir`` (the teacher rule's output), both on ``device``."""
    from multiref.teacher.model import load_teacher

    teacher, tokenizer = load_teacher(teacher_dir, device)
    return tokkd_student(teacher, tokenizer, fields).to(device), tokenizer
