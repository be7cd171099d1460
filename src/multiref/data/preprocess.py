"""The data stage end to end: corpus files -> sessions, vocabulary and pairs per split (Parquet)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from tqdm import tqdm

from multiref.data.dailydialog import (
    SPLITS,
    Session,
    filter_dialogues,
    read_corpus,
    split_by_topic,
    subset_splits,
    to_sessions,
)
from multiref.data.pairs import SPECIAL_TOKENS, Vocabulary, build_pairs, build_vocabulary
from multiref.data.text import normalize_many
from multiref.errors import CorpusError
from multiref.io import write_json, write_parquet

SESSION_SCHEMA = pa.schema(
    [
        pa.field("session_id", pa.int32(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("topic_id", pa.int8(), nullable=False),
        pa.field("topic", pa.string(), nullable=False),
        pa.field("source_line", pa.int32(), nullable=False),
        pa.field("utterances", pa.list_(pa.string()), nullable=False),
        pa.field("raw_utterances", pa.list_(pa.string()), nullable=False),
        pa.field("floors", pa.list_(pa.string()), nullable=False),
        pa.field("acts", pa.list_(pa.string()), nullable=False),
        pa.field("emotions", pa.list_(pa.string()), nullable=False),
    ]
)


@dataclass(frozen=True)
class PreprocessConfig:
    """Parameters of the data stage (``data:`` in the configuration)."""

    history_len: int = 5
    max_utterance_tokens: int = 40
    vocab_size: int = 10000
    train_end: float = 0.8
    dev_end: float = 0.9
    duplicate_threshold: float = 0.5
    # Pilot runs (data.subset): sessions kept per split (None = the whole split) and the draw's seed.
    subset: Mapping[str, int | None] = field(default_factory=dict)
    subset_seed: int = 0

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any]) -> PreprocessConfig:
        subset = cfg.get("subset") or {}
        return cls(
            history_len=cfg["history_len"],
            max_utterance_tokens=cfg["max_utterance_tokens"],
            vocab_size=cfg["vocab_size"],
            train_end=cfg["split"]["train_end"],
            dev_end=cfg["split"]["dev_end"],
            duplicate_threshold=cfg["duplicate_threshold"],
            subset={name: subset.get(name) for name in SPLITS},
            subset_seed=subset.get("seed", 0),
        )

    @property
    def is_subset(self) -> bool:
        return any(self.subset.get(name) is not None for name in SPLITS)


def sessions_table(sessions: Sequence[Session]) -> pa.Table:
    """Sessions as an Arrow table with :data:`SESSION_SCHEMA`, ordered by ``session_id``."""
    ordered = sorted(sessions, key=lambda s: s.session_id)
    return pa.table(
        {
            "session_id": [s.session_id for s in ordered],
            "split": [s.split for s in ordered],
            "topic_id": [s.topic_id for s in ordered],
            "topic": [s.topic for s in ordered],
            "source_line": [s.line for s in ordered],
            "utterances": [s.utterances for s in ordered],
            "raw_utterances": [s.raw_utterances for s in ordered],
            "floors": [s.floors for s in ordered],
            "acts": [s.acts for s in ordered],
            "emotions": [s.emotions for s in ordered],
        },
        schema=SESSION_SCHEMA,
    )


def preprocess(
    corpus_dir: Path,
    sessions_path: Path,
    vocab_path: Path,
    pairs_paths: Mapping[str, Path],
    manifest_path: Path,
    cfg: PreprocessConfig = PreprocessConfig(),
    progress: bool = True,
) -> dict[str, Any]:
    """Run the whole data stage and write its outputs; returns the manifest (also written as JSON)."""
    raw = read_corpus(Path(corpus_dir))
    kept, report = filter_dialogues(raw, cfg.duplicate_threshold)
    if not kept:
        raise CorpusError(f"{corpus_dir}: no dialogues left ({report.n_read} read, {report.n_label_mismatch} with "
                          f"mismatched labels, {report.n_duplicate} duplicates)")
    full = split_by_topic(to_sessions(kept, Path(corpus_dir)), cfg.train_end, cfg.dev_end)
    _check_not_empty(full, "sessions", "data.split (train_end, dev_end)", corpus_dir)
    splits = subset_splits(full, dict(cfg.subset), cfg.subset_seed) if cfg.is_subset else full
    sessions = [s for name in SPLITS for s in splits[name]]
    # Only the kept sessions are normalised (a pilot on a subset skips the rest of the corpus).
    flat = [u for s in sessions for u in s.raw_utterances]
    normalised = list(
        tqdm(normalize_many(flat), total=len(flat), desc="normalise", unit="utt", disable=not progress, mininterval=5)
    )
    offset = 0
    for session in sessions:
        n = len(session.raw_utterances)
        session.utterances = normalised[offset : offset + n]
        offset += n
    vocab: Vocabulary = build_vocabulary((u for s in splits["train"] for u in s.utterances), cfg.vocab_size)
    if len(vocab) <= len(SPECIAL_TOKENS):
        n_utts = sum(len(s.utterances) for s in splits["train"])
        raise CorpusError(
            f"{corpus_dir}: the train split's {n_utts} utterances hold no word: the vocabulary would be its "
            f"{len(SPECIAL_TOKENS)} special tokens only"
        )

    meta = {"stage": "preprocess", "config": cfg.__dict__}
    counts: dict[str, dict[str, int]] = {}
    next_pair_id = 0
    pair_tables = {}
    for name in SPLITS:
        table = build_pairs(splits[name], vocab, cfg.history_len, cfg.max_utterance_tokens, next_pair_id)
        next_pair_id += table.num_rows
        pair_tables[name] = table
        counts[name] = {
            "sessions": len(splits[name]),
            "pairs": table.num_rows,
            "utterances": sum(len(s.utterances) for s in splits[name]),
        }
    _check_not_empty(pair_tables, "pairs", "data.subset" if cfg.is_subset else "data.split", corpus_dir)
    # Write only once everything has been computed, so an error leaves no output behind.
    write_parquet(sessions_table(sessions), sessions_path, meta)
    write_parquet(vocab.to_arrow(), vocab_path, meta)
    for name, table in pair_tables.items():
        write_parquet(table, pairs_paths[name], meta | {"split": name})
    train_tokens = sum(c for c in vocab.counts if c is not None)
    all_train = sum(len(u.split(" ")) for s in splits["train"] for u in s.utterances)
    manifest = {
        "dialogues_read": report.n_read,
        "dropped_label_mismatch": report.n_label_mismatch,
        "dropped_duplicate": report.n_duplicate,
        "dialogues_kept": report.n_kept,
        "label_mismatch_lines": report.label_mismatch_lines,
        "duplicate_lines": report.duplicate_lines,
        "empty_utterances": sum(1 for u in normalised if not u),
        "splits": counts,
        "subset": (
            {"seed": cfg.subset_seed, "sizes": dict(cfg.subset), "full_sessions": {n: len(full[n]) for n in SPLITS}}
            if cfg.is_subset
            else None
        ),
        "vocab_size": len(vocab),
        "train_token_coverage": round(train_tokens / all_train, 6) if all_train else None,
        "config": cfg.__dict__,
    }
    write_json(manifest, manifest_path)
    return manifest


def _check_not_empty(by_split: Mapping[str, Any], what: str, key: str, corpus_dir: Path) -> None:
    """An empty split stops the stage with the counts of every split and the key that decides them."""
    sizes = {name: (item.num_rows if isinstance(item, pa.Table) else len(item)) for name, item in by_split.items()}
    empty = [name for name in SPLITS if sizes[name] == 0]
    if empty:
        counts = ", ".join(f"{name} {sizes[name]}" for name in SPLITS)
        raise CorpusError(f"{corpus_dir}: the {'/'.join(empty)} split has no {what} ({what} per split: {counts}); check {key}")
