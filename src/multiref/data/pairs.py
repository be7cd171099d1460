"""Vocabulary and (context, response) pairs, as the authors' ``WhiteSpaceTokenizer`` and ``DataSource``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pyarrow as pa

from multiref.data.dailydialog import Session

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK, "<sep>", "<cls>", "<mask>", "<speaker1>", "<speaker2>")


@dataclass(frozen=True)
class Vocabulary:
    """Token list with ids by position; the first entries are :data:`SPECIAL_TOKENS`."""

    tokens: tuple[str, ...]
    counts: tuple[int | None, ...]  # train count of each word; None for specials

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {t: i for i, t in enumerate(self.tokens)})

    def __len__(self) -> int:
        return len(self.tokens)

    def id(self, token: str) -> int:
        return self._index.get(token, self._index[UNK])  # type: ignore[attr-defined]

    def encode(self, tokens: Sequence[str], bos_and_eos: bool = True) -> list[int]:
        """Ids of ``tokens`` with unknown words as ``<unk>``, wrapped in ``<s>``/``</s>``.

        As in the authors' tokenizer, an empty token list encodes to an empty list (no specials).
        """
        if not tokens:
            return []
        if bos_and_eos:
            tokens = [BOS, *tokens, EOS]
        return [self.id(t) for t in tokens]

    def to_arrow(self) -> pa.Table:
        return pa.table(
            {
                "id": pa.array(range(len(self.tokens)), pa.int32()),
                "token": pa.array(self.tokens, pa.string()),
                "count": pa.array(self.counts, pa.int64()),
                "special": pa.array([c is None for c in self.counts], pa.bool_()),
            }
        )

    @classmethod
    def from_arrow(cls, table: pa.Table) -> Vocabulary:
        rows = table.sort_by("id").to_pydict()
        return cls(tokens=tuple(rows["token"]), counts=tuple(rows["count"]))


def split_tokens(text: str) -> list[str]:
    """Tokens of a normalised utterance (an empty string has none)."""
    return text.split(" ") if text else []


def build_vocabulary(train_utterances: Iterable[str], size: int) -> Vocabulary:
    """Specials, then the most frequent train words (ties in first-seen order) up to ``size`` entries.

    Counting follows the authors' word-count file: ``text.split(" ")`` on every train utterance, except that
    an empty utterance has no word (the authors' split would count the empty string; DailyDialog has none).
    """
    if size <= len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size must exceed the {len(SPECIAL_TOKENS)} special tokens, got {size}")
    counts: Counter[str] = Counter()
    for text in train_utterances:
        counts.update(split_tokens(text))
    ranked = sorted(counts.items(), key=lambda item: item[1], reverse=True)  # stable: first-seen ties
    tokens = list(SPECIAL_TOKENS)
    word_counts: list[int | None] = [None] * len(tokens)
    present = set(tokens)
    for word, count in ranked[:size]:  # the authors read only the first `size` lines of the counts
        if len(tokens) == size:
            break
        if word not in present:
            tokens.append(word)
            word_counts.append(count)
            present.add(word)
    return Vocabulary(tuple(tokens), tuple(word_counts))


PAIR_SCHEMA = pa.schema(
    [
        pa.field("pair_id", pa.int64(), nullable=False),
        pa.field("session_id", pa.int32(), nullable=False),
        pa.field("turn", pa.int16(), nullable=False),
        pa.field("context", pa.list_(pa.string()), nullable=False),
        pa.field("context_floors", pa.list_(pa.string()), nullable=False),
        pa.field("context_ids", pa.list_(pa.list_(pa.int32())), nullable=False),
        pa.field("response", pa.string(), nullable=False),
        pa.field("response_floor", pa.string(), nullable=False),
        pa.field("response_ids", pa.list_(pa.int32()), nullable=False),
    ]
)


def build_pairs(
    sessions: Sequence[Session],
    vocab: Vocabulary,
    history_len: int,
    max_utterance_tokens: int,
    first_pair_id: int = 0,
) -> pa.Table:
    """One row per response: every utterance from index 1, with up to ``history_len`` previous ones.

    Each utterance is truncated to ``max_utterance_tokens`` tokens *before* ``<s>``/``</s>`` are added,
    so an encoded utterance has at most ``max_utterance_tokens + 2`` ids. Text columns hold the
    truncated tokens joined by spaces (unknown words kept as words; ids map them to ``<unk>``).
    """
    columns: dict[str, list] = {name: [] for name in PAIR_SCHEMA.names}
    pair_id = first_pair_id
    for session in sessions:
        tokens = [split_tokens(u)[:max_utterance_tokens] for u in session.utterances]
        ids = [vocab.encode(t) for t in tokens]
        texts = [" ".join(t) for t in tokens]
        for end in range(1, len(tokens)):
            start = max(0, end - history_len)
            columns["pair_id"].append(pair_id)
            columns["session_id"].append(session.session_id)
            columns["turn"].append(end)
            columns["context"].append(texts[start:end])
            columns["context_floors"].append(session.floors[start:end])
            columns["context_ids"].append(ids[start:end])
            columns["response"].append(texts[end])
            columns["response_floor"].append(session.floors[end])
            columns["response_ids"].append(ids[end])
            pair_id += 1
    return pa.table(columns, schema=PAIR_SCHEMA)
