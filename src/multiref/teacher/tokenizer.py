"""Tokenizers of the GPT-2 teacher: the pretrained GPT-2 BPE, or a byte-level BPE trained from scratch.

Either way the tokenizer carries the special tokens of the authors' input format: ``<pad>``, ``<s>``,
``</s>``, ``<unk>``, ``<mask>``, ``<speaker1>`` and ``<speaker2>``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from multiref.errors import MultirefError

PAD, BOS, EOS, UNK, MASK = "<pad>", "<s>", "</s>", "<unk>", "<mask>"
SPEAKER1, SPEAKER2 = "<speaker1>", "<speaker2>"
TEACHER_SPECIALS = (PAD, BOS, EOS, UNK, MASK, SPEAKER1, SPEAKER2)


class TeacherError(MultirefError):
    """The teacher model or its tokenizer is missing, unloadable or unsuitable."""


def unavailable(what: str, name_or_path: str, exc: Exception) -> TeacherError:
    """The error for a teacher (or its tokenizer) that cannot be loaded, with the offline remedy."""
    return TeacherError(
        f"cannot load {what} {name_or_path!r} ({exc}). Without internet, set 'teacher.model' to a local "
        "directory holding a saved GPT-2 (save_pretrained)"
    )


def add_special_tokens(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Register the format's special tokens (as the authors' ``ModGPT2Tokenizer`` does)."""
    tokenizer.add_special_tokens(
        {
            "pad_token": PAD,
            "bos_token": BOS,
            "eos_token": EOS,
            "unk_token": UNK,
            "mask_token": MASK,
            "additional_special_tokens": [SPEAKER1, SPEAKER2],
        }
    )
    return tokenizer


def check_special_tokens(tokenizer: PreTrainedTokenizerBase, where: str) -> None:
    """Raise :class:`TeacherError` naming the tokens that ``tokenizer`` lacks as single ids."""
    vocab = tokenizer.get_vocab()
    missing = [t for t in TEACHER_SPECIALS if t not in vocab]
    if missing:
        raise TeacherError(f"{where}: the teacher tokenizer lacks the special tokens {missing}")


def pretrained_tokenizer(name_or_path: str) -> PreTrainedTokenizerBase:
    """The GPT-2 BPE of a hub model name or a local directory, with the special tokens added."""
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    except (OSError, ValueError) as exc:
        raise unavailable("the tokenizer of teacher model", name_or_path, exc) from exc
    return add_special_tokens(tokenizer)


def train_bpe(texts: Iterable[str], vocab_size: int, min_frequency: int = 2) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on ``texts`` (GPT-2's pre-tokenisation), with the special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(TEACHER_SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    from transformers import PreTrainedTokenizerFast

    return add_special_tokens(PreTrainedTokenizerFast(tokenizer_object=tok))  # type: ignore[return-value]


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """A teacher tokenizer saved by this package; checks the special tokens."""
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as exc:
        raise TeacherError(f"cannot load the teacher tokenizer from {path}: {exc}") from exc
    check_special_tokens(tokenizer, str(path))
    return tokenizer
