"""The authors' GPT-2 input format for (context, response) pairs.

Each context utterance becomes ``<speakerX> <s> bpe(u)[:40] </s>``, where ``<speaker1>`` marks the
speaker of the response and ``<speaker2>`` the other one (the authors' "relative" floor encoding).
The response follows as ``<speaker1> <s> bpe(y)[:40] </s>``; the loss covers ``bpe(y)`` and ``</s>``
only. A sequence longer than the model's positions loses its *oldest* context utterances first,
then tokens from the left (documented in docs/fidelity.md); it is never cut on the right.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

from multiref.teacher.tokenizer import BOS, EOS, MASK, PAD, SPEAKER1, SPEAKER2, UNK

IGNORE = -100


@dataclass
class TeacherFormat:
    tokenizer: PreTrainedTokenizerBase
    max_utterance_tokens: int = 40

    def __post_init__(self) -> None:
        ids = self.tokenizer.convert_tokens_to_ids
        self.bos, self.eos = ids(BOS), ids(EOS)
        self.speaker1, self.speaker2 = ids(SPEAKER1), ids(SPEAKER2)
        self._cache: dict[str, list[int]] = {}
        self._dropped = {ids(BOS), ids(PAD)}  # trimmed from a hypothesis, as the authors' trim_bos / trim_pad
        self._kept_specials = {ids(t): t for t in (UNK, MASK, SPEAKER1, SPEAKER2)}  # kept as words of their own

    def bpe(self, text: str) -> list[int]:
        """BPE ids of a normalised utterance, truncated to ``max_utterance_tokens``."""
        if text not in self._cache:
            ids = self.tokenizer.encode(text, add_special_tokens=False) if text else []
            self._cache[text] = ids[: self.max_utterance_tokens]
        return self._cache[text]

    def prefix(self, context: Sequence[str], floors: Sequence[str], response_floor: str, max_len: int) -> list[int]:
        """Context ids followed by ``<speaker1> <s>``, at most ``max_len`` ids (oldest dropped first)."""
        turns = [
            [self.speaker1 if floor == response_floor else self.speaker2, self.bos, *self.bpe(u), self.eos]
            for u, floor in zip(context, floors, strict=True)
        ]
        tail = [self.speaker1, self.bos]
        while len(turns) > 1 and sum(map(len, turns)) + len(tail) > max_len:
            turns.pop(0)
        ids = [i for turn in turns for i in turn] + tail
        return ids[-max_len:]

    def example(
        self, context: Sequence[str], floors: Sequence[str], response_floor: str, response: str, max_len: int
    ) -> tuple[list[int], list[int]]:
        """(input ids, labels) of a training pair; labels are ``IGNORE`` outside the response."""
        target = [*self.bpe(response), self.eos]
        prefix = self.prefix(context, floors, response_floor, max_len - len(target))
        return prefix + target, [IGNORE] * len(prefix) + target

    def decode(self, ids: Sequence[int]) -> str:
        """Text of generated response ids, as the authors write a hypothesis (docs/fidelity.md T13).

        ``<s>`` and ``<pad>`` are dropped and the text ends before ``</s>`` (``convert_ids_to_tokens(trim_bos,
        trim_pad, trim_from_eos)``); ``<unk>``, ``<mask>``, ``<speaker1>`` and ``<speaker2>`` stay in the text
        as words of their own, which the student's vocabulary maps to its own special ids. Runs of other
        tokens are decoded with ``clean_up_tokenization_spaces=False`` (the authors' ``decode`` call), so the
        text keeps the data stage's tokens ("do n't", "know .") whatever the installed ``transformers``
        version defaults to; the whitespace is then normalised (their ``strip``, and single spaces).
        """
        words: list[str] = []
        run: list[int] = []
        for i in ids:
            if i == self.eos:
                break
            if i in self._dropped:
                continue
            if i in self._kept_specials:
                words.append(self._decode_run(run))
                words.append(self._kept_specials[i])
                run = []
            else:
                run.append(i)
        words.append(self._decode_run(run))
        return " ".join(" ".join(words).split())

    def _decode_run(self, ids: list[int]) -> str:
        if not ids:
            return ""
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def utterance_limit(pairs_path: str) -> int:
    """``max_utterance_tokens`` the data stage used for a pairs file (from its Parquet metadata)."""
    from multiref.io import read_parquet_metadata

    return int((read_parquet_metadata(pairs_path).get("config") or {}).get("max_utterance_tokens", 40))
