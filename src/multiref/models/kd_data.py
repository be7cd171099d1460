"""Data for the token-level distillation baseline (HRED tok-KD, paper §5.2): the student in the teacher's vocabulary.

The student reads and writes GPT-2 BPE ids, as in the authors' ``hred_student``: every utterance of a
pair (context turns and response) becomes ``<s> bpe(u)[:40] </s>`` with the teacher's tokenizer, the
same BPE and the same truncation as the teacher's input format (:class:`multiref.teacher.format.TeacherFormat`),
so that the teacher can be run on exactly the student's batch. Floors use :data:`multiref.models.data.FLOOR_ID`.

Its 200-d word embeddings start from the teacher's token embeddings reduced by PCA
(:func:`pca_embeddings`), or from the embeddings themselves when the dimensions agree (:func:`student_embeddings`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.parquet as pq
import torch
from torch import Tensor

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

from multiref.errors import ConfigError
from multiref.models.data import FLOOR_ID, Example
from multiref.teacher.format import TeacherFormat
from multiref.teacher.tokenizer import BOS, EOS, PAD, SPEAKER1, SPEAKER2


def _token_id(tokenizer: PreTrainedTokenizerBase, token: str) -> int:
    vocab = tokenizer.get_vocab()
    if token not in vocab:
        raise ConfigError(f"the teacher tokenizer has no {token!r} token; the tok-KD student needs it")
    return int(vocab[token])


def student_specials(tokenizer: PreTrainedTokenizerBase) -> dict[str, int]:
    """``pad_id``, ``bos_id`` and ``eos_id`` of the student (the teacher tokenizer's ``<pad> <s> </s>``)."""
    return {"pad_id": _token_id(tokenizer, PAD), "bos_id": _token_id(tokenizer, BOS), "eos_id": _token_id(tokenizer, EOS)}


def speaker_ids(tokenizer: PreTrainedTokenizerBase) -> dict[str, int]:
    """``speaker1_id`` and ``speaker2_id``: the keyword arguments of ``HREDTokKD.attach_teacher``."""
    return {"speaker1_id": _token_id(tokenizer, SPEAKER1), "speaker2_id": _token_id(tokenizer, SPEAKER2)}


def tokkd_example(
    fmt: TeacherFormat, context: Sequence[str], floors: Sequence[str], response: str, response_floor: str
) -> Example:
    """One student example: each utterance ``<s> bpe(u)[:limit] </s>`` (an empty one is ``<s> </s>``, as
    the teacher sees it), floors ``A``/``B`` as 0/1."""

    def wrap(text: str) -> tuple[int, ...]:
        return (fmt.bos, *fmt.bpe(text), fmt.eos)

    try:
        return Example(
            tuple(wrap(u) for u in context), tuple(FLOOR_ID[f] for f in floors), wrap(response), FLOOR_ID[response_floor]
        )
    except KeyError as exc:
        raise ConfigError(f"unknown floor {exc.args[0]!r} (expected one of {sorted(FLOOR_ID)})") from exc


def tokkd_pair_examples(pairs_path: Path, tokenizer: PreTrainedTokenizerBase, max_utterance_tokens: int = 40) -> dict[int, Example]:
    """Student examples keyed by pair id, in file order."""
    cols = pq.read_table(pairs_path, columns=["pair_id", "context", "context_floors", "response", "response_floor"]).to_pydict()
    fmt = TeacherFormat(tokenizer, max_utterance_tokens)
    out: dict[int, Example] = {}
    for pid, ctx, floors, resp, rf in zip(
        cols["pair_id"], cols["context"], cols["context_floors"], cols["response"], cols["response_floor"], strict=True
    ):
        if len(ctx) != len(floors):
            raise ConfigError(f"{pairs_path}: pair {pid} has {len(ctx)} context utterances but {len(floors)} floors")
        out[int(pid)] = tokkd_example(fmt, ctx, floors, resp, rf)
    return out


def tokkd_examples(pairs_path: Path, tokenizer: PreTrainedTokenizerBase, max_utterance_tokens: int = 40) -> list[Example]:
    """Ground-truth student examples of a pairs file in the teacher's BPE vocabulary, in file order.

    The text columns (``context``, ``response``) are used, already truncated to ``max_utterance_tokens``
    words by the data stage; their BPE ids are truncated again to ``max_utterance_tokens`` tokens, as
    the teacher's input format does (:func:`multiref.teacher.format.utterance_limit` reads the value the
    data stage used)."""
    return list(tokkd_pair_examples(pairs_path, tokenizer, max_utterance_tokens).values())


def pca_embeddings(weight: Tensor, dim: int) -> Tensor:
    """The first ``dim`` principal-component scores of the rows of ``weight`` [N, D] -> [N, dim].

    Equals scikit-learn's ``PCA(n_components=dim).fit_transform(weight)`` (what the authors call) up
    to the sign of each component: rows are centred, ``W - mean = U S V^T`` (SVD in float64 on the
    CPU), and the scores are ``U[:, :dim] S[:dim]``, components in decreasing order of variance.
    Sign convention (deterministic): each component's loading vector (row of ``V^T``) is flipped so that
    its entry of largest absolute value (the first one on ties) is positive. This is scikit-learn's
    convention since 1.5 (``svd_flip(..., u_based_decision=False)``); earlier releases fixed the sign
    on the scores instead, so single components may come out negated relative to the authors'. The
    result has ``weight``'s dtype and device.
    """
    n, d = weight.shape
    if not 0 < dim <= min(n, d):
        raise ConfigError(f"PCA to {dim} components needs 0 < dim <= min(rows, columns) = {min(n, d)}")
    w = weight.detach().to("cpu", torch.float64)
    centred = w - w.mean(dim=0, keepdim=True)
    u, s, vh = torch.linalg.svd(centred, full_matrices=False)
    u, s, vh = u[:, :dim], s[:dim], vh[:dim]
    pivot = vh.abs().argmax(dim=1)
    signs = torch.sign(vh.gather(1, pivot.unsqueeze(1)).squeeze(1))
    signs[signs == 0] = 1.0
    return (u * (s * signs)).to(weight.device, weight.dtype)


def student_embeddings(teacher_weight: Tensor, dim: int) -> Tensor:
    """The student's initial word embeddings from the teacher's token embeddings [N, D], as the authors
    do: the embeddings themselves when ``dim == D``, their first ``dim`` principal components when
    ``dim < D``; a larger ``dim`` is an error."""
    if dim == teacher_weight.size(1):
        return teacher_weight.detach().clone()
    if dim > teacher_weight.size(1):
        raise ConfigError(f"the student's embedding size {dim} exceeds the teacher's {teacher_weight.size(1)}")
    return pca_embeddings(teacher_weight, dim)
