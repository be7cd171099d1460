"""Mirror's (context, query, response) triples (Li, Kiseleva & de Rijke, 2021, §3.1 and §4.1).

For a response at turn t of a session, the context c is turn t-2, the query x turn t-1 and the
response y turn t (the paper's m = 2, as in its DailyDialog and MovieTriples setups). Triples are
written in **the pairs' schema** (:data:`multiref.data.pairs.PAIR_SCHEMA`): ``context`` is ``[c, x]``
(two turns, oldest first) and ``response`` is y, so :func:`multiref.models.data.pair_examples` reads a
triples file as it reads a pairs file and every model of the pipeline trains on it unchanged. The
columns ``session_id`` and ``turn`` (the index t of y in its session) match a triple with the pair whose
response is the same turn (the pair with the same ``session_id`` and ``turn``), e.g. to attach that
pair's teacher hypotheses. ``pair_id`` numbers the triples over train, dev and test (train first); it
is not the id of that pair.

Choices (``TripleConfig``):

- ``windows="sliding"`` (default): one triple for every t >= 2 of every session. The paper's
  "65k, 6k, 6k" DailyDialog triples are sliding windows over the official train / validation / test
  files (64,934 / 6,069 / 5,740 before the length filters; disjoint blocks would give 25,405 / 2,367 /
  2,248), although its wording ("we split the dialogues ... by every three turns") reads like
  ``windows="disjoint"``: turns (0, 1, 2), (3, 4, 5), ... (t = 2, 5, 8, ...; an incomplete last block is
  dropped). On this pipeline's sessions (deduplicated, split 0.8 / 0.1 / 0.1 by topic) sliding windows
  give 50,093 / 8,737 / 8,557 triples, 48,153 / 8,451 / 8,557 after the filters.
- The authors' length filters, on ``filter_splits`` (train and dev; never the test set): a triple is
  dropped when x or y has more than 45 tokens or c more than 100 (``max_query_tokens``,
  ``max_response_tokens``, ``max_context_tokens``; ``None`` disables one). Tokens are the data stage's
  (``utterance.split(" ")``), counted before any truncation. The metadata counts the triples that
  fail each filter (a triple can fail several) and the triples dropped.
- ``max_utterance_tokens``: truncation of every kept utterance before ``<s>``/``</s>`` are added, as the
  pairs do; ``None`` (default) keeps them whole, as the authors (whose filters already bound train and
  dev). The metadata's ``config.max_utterance_tokens``, which the model stage reads to cut teacher
  hypotheses, is this truncation when set, otherwise ``max_response_tokens`` (the longest training
  response), otherwise 40.
- One word vocabulary shared by c, x and y (the authors' OpenNMT ``-share_vocab``), counted over the kept
  training triples (OpenNMT counts the examples that pass its length filter). ``vocab_counting="opennmt"``
  (default) counts as the authors' code: ``preprocess.py`` builds five fields per triple, src = x,
  tgt = y, ctx = c, src_back = y and tgt_back = x, and ``merge_vocabs`` sums their counts, so x and y
  count twice and c once; the ``vocab_size`` most frequent words (20,000 in the paper) are kept, ties in
  alphabetical order (torchtext's ``Vocab``), and the specials come on top of them (torchtext adds its own
  four on top of ``max_size``; here the pairs' specials). ``vocab_counting="once"`` counts c, x and y once
  each, ties in first-seen order, and the specials count in ``vocab_size``, as the pairs' vocabulary.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from multiref.data.dailydialog import SPLITS, Session
from multiref.data.pairs import PAIR_SCHEMA, SPECIAL_TOKENS, Vocabulary, build_vocabulary, split_tokens
from multiref.errors import ConfigError, MultirefError
from multiref.io import read_table, write_json, write_parquet

WINDOWS = ("sliding", "disjoint")
VOCAB_COUNTINGS = ("opennmt", "once")
FILTERS = ("context", "query", "response")  # c, x, y


@dataclass(frozen=True)
class TripleConfig:
    windows: str = "sliding"
    vocab_size: int = 20000
    max_context_tokens: int | None = 100
    max_query_tokens: int | None = 45
    max_response_tokens: int | None = 45
    filter_splits: tuple[str, ...] = ("train", "dev")
    max_utterance_tokens: int | None = None
    vocab_counting: str = "opennmt"

    def __post_init__(self) -> None:
        if self.windows not in WINDOWS:
            raise ConfigError(f"triples.windows: unknown value {self.windows!r} (expected one of {list(WINDOWS)})")
        if self.vocab_counting not in VOCAB_COUNTINGS:
            raise ConfigError(f"triples.vocab_counting: unknown value {self.vocab_counting!r} (expected one of {list(VOCAB_COUNTINGS)})")
        object.__setattr__(self, "filter_splits", tuple(self.filter_splits))
        for split in self.filter_splits:
            if split not in SPLITS:
                raise ConfigError(f"triples.filter_splits: unknown split {split!r} (expected some of {list(SPLITS)})")
        if self.vocab_counting == "once" and (not isinstance(self.vocab_size, int) or self.vocab_size <= len(SPECIAL_TOKENS)):
            raise ConfigError(f"triples.vocab_size: must be an integer above the {len(SPECIAL_TOKENS)} special tokens, got {self.vocab_size!r}")
        if not isinstance(self.vocab_size, int) or self.vocab_size < 1:
            raise ConfigError(f"triples.vocab_size: must be a positive integer (words besides the specials), got {self.vocab_size!r}")
        for name in ("max_context_tokens", "max_query_tokens", "max_response_tokens", "max_utterance_tokens"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"triples.{name}: must be a positive integer or null, got {value!r}")

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any]) -> TripleConfig:
        unknown = set(cfg) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"triples: unknown key(s) {sorted(unknown)} (known: {sorted(cls.__dataclass_fields__)})")
        return cls(**cfg)

    @property
    def hypothesis_limit(self) -> int:
        """What the metadata's ``config.max_utterance_tokens`` says (see the module docstring)."""
        if self.max_utterance_tokens is not None:
            return self.max_utterance_tokens
        return self.max_response_tokens if self.max_response_tokens is not None else 40


def response_turns(n_turns: int, windows: str) -> range:
    """Indices t of the responses of a session of ``n_turns`` turns (c = t-2, x = t-1, y = t)."""
    return range(2, n_turns) if windows == "sliding" else range(2, n_turns, 3)


def read_sessions(path: Path) -> list[Session]:
    """The sessions of ``data/sessions.parquet`` (ordered by ``session_id``)."""
    cols = read_table(path).to_pydict()
    return [
        Session(line=line, topic_id=tid, topic=topic, raw_utterances=raw, acts=acts, emotions=emos, floors=floors,
                utterances=utts, split=split, session_id=sid)
        for sid, split, tid, topic, line, utts, raw, floors, acts, emos in zip(
            cols["session_id"], cols["split"], cols["topic_id"], cols["topic"], cols["source_line"], cols["utterances"],
            cols["raw_utterances"], cols["floors"], cols["acts"], cols["emotions"], strict=True)
    ]


@dataclass(frozen=True)
class _Triple:
    session: Session
    turn: int  # index of y


def _failures(session: Session, t: int, cfg: TripleConfig) -> list[str]:
    """The length filters that the triple ending at turn t fails."""
    limits = (cfg.max_context_tokens, cfg.max_query_tokens, cfg.max_response_tokens)
    out = []
    for name, turn, limit in zip(FILTERS, (t - 2, t - 1, t), limits, strict=True):
        if limit is not None and len(split_tokens(session.utterances[turn])) > limit:
            out.append(name)
    return out


def select_triples(sessions: Sequence[Session], split: str, cfg: TripleConfig) -> tuple[list[_Triple], dict[str, Any]]:
    """The kept triples of one split's sessions, and what the filters did."""
    filtered = split in cfg.filter_splits
    kept, failed, dropped, candidates = [], dict.fromkeys(FILTERS, 0), 0, 0
    for session in sessions:
        if len(session.floors) != len(session.utterances):
            raise MultirefError(f"session {session.session_id}: {len(session.utterances)} utterances but {len(session.floors)} floors")
        for t in response_turns(len(session.utterances), cfg.windows):
            candidates += 1
            fails = _failures(session, t, cfg) if filtered else []
            for name in fails:
                failed[name] += 1
            if fails:
                dropped += 1
            else:
                kept.append(_Triple(session, t))
    counts = {"sessions": len(sessions), "candidates": candidates, "kept": len(kept), "dropped": dropped,
              "failed_filter": failed, "filtered": filtered}
    return kept, counts


def _tokens(session: Session, turn: int, cfg: TripleConfig) -> list[str]:
    tokens = split_tokens(session.utterances[turn])
    return tokens if cfg.max_utterance_tokens is None else tokens[: cfg.max_utterance_tokens]


def _training_texts(triples: Sequence[_Triple], cfg: TripleConfig) -> Iterator[str]:
    for tr in triples:
        for turn in (tr.turn - 2, tr.turn - 1, tr.turn):
            yield " ".join(_tokens(tr.session, turn, cfg))


def opennmt_vocabulary(triples: Sequence[_Triple], cfg: TripleConfig) -> Vocabulary:
    """The authors' shared vocabulary (``vocab_counting="opennmt"``, see the module docstring): the specials,
    then the ``vocab_size`` words of the highest count c + 2x + 2y, ties in alphabetical order."""
    counts: Counter[str] = Counter()
    for tr in triples:
        for turn, weight in ((tr.turn - 2, 1), (tr.turn - 1, 2), (tr.turn, 2)):  # ctx; src, tgt_back; tgt, src_back
            for word in _tokens(tr.session, turn, cfg):
                counts[word] += weight
    ranked = sorted(((w, n) for w, n in counts.items() if w not in SPECIAL_TOKENS), key=lambda item: (-item[1], item[0]))
    kept = ranked[: cfg.vocab_size]
    return Vocabulary((*SPECIAL_TOKENS, *(w for w, _ in kept)), (*[None] * len(SPECIAL_TOKENS), *(n for _, n in kept)))


def triples_table(triples: Sequence[_Triple], vocab: Vocabulary, cfg: TripleConfig, first_id: int = 0) -> pa.Table:
    """Triples as rows of :data:`PAIR_SCHEMA`: context [c, x], response y."""
    columns: dict[str, list] = {name: [] for name in PAIR_SCHEMA.names}
    for i, tr in enumerate(triples):
        s, t = tr.session, tr.turn
        tokens = [_tokens(s, j, cfg) for j in (t - 2, t - 1, t)]
        columns["pair_id"].append(first_id + i)
        columns["session_id"].append(s.session_id)
        columns["turn"].append(t)
        columns["context"].append([" ".join(tokens[0]), " ".join(tokens[1])])
        columns["context_floors"].append([s.floors[t - 2], s.floors[t - 1]])
        columns["context_ids"].append([vocab.encode(tokens[0]), vocab.encode(tokens[1])])
        columns["response"].append(" ".join(tokens[2]))
        columns["response_floor"].append(s.floors[t])
        columns["response_ids"].append(vocab.encode(tokens[2]))
    return pa.table(columns, schema=PAIR_SCHEMA)


def build_triples(sessions: Sequence[Session], cfg: TripleConfig = TripleConfig()) -> tuple[Vocabulary, dict[str, pa.Table], dict[str, Any]]:
    """The vocabulary, one triples table per split, and per split the counts of the filters."""
    by_split: dict[str, list[Session]] = {name: [] for name in SPLITS}
    for s in sessions:
        if s.split not in by_split:
            raise MultirefError(f"session {s.session_id}: unknown split {s.split!r} (expected one of {list(SPLITS)})")
        by_split[s.split].append(s)
    selected, counts = {}, {}
    for name in SPLITS:
        selected[name], counts[name] = select_triples(by_split[name], name, cfg)
    if cfg.vocab_counting == "opennmt":
        vocab = opennmt_vocabulary(selected["train"], cfg)
    else:
        vocab = build_vocabulary(_training_texts(selected["train"], cfg), cfg.vocab_size)
    tables, next_id = {}, 0
    for name in SPLITS:
        tables[name] = triples_table(selected[name], vocab, cfg, next_id)
        next_id += tables[name].num_rows
    return vocab, tables, counts


def metadata(cfg: TripleConfig, split: str, counts: Mapping[str, Any]) -> dict[str, Any]:
    """The Parquet metadata of a triples file: what it is, how it was built, what the filters dropped."""
    config = {**asdict(cfg), "filter_splits": list(cfg.filter_splits), "max_utterance_tokens": cfg.hypothesis_limit,
              "truncation": cfg.max_utterance_tokens}
    return {"stage": "triples", "kind": "triples", "split": split, "windows": cfg.windows, "config": config,
            "counts": dict(counts)}


def backward_table(triples: pa.Table) -> pa.Table:
    """The backward examples of MMI's p(x | y) (Li et al., 2016): context [y], response x, same ``pair_id``."""
    cols = triples.to_pydict()
    out = {
        "pair_id": cols["pair_id"], "session_id": cols["session_id"], "turn": cols["turn"],
        "context": [[y] for y in cols["response"]], "context_floors": [[f] for f in cols["response_floor"]],
        "context_ids": [[y] for y in cols["response_ids"]], "response": [c[-1] for c in cols["context"]],
        "response_floor": [f[-1] for f in cols["context_floors"]], "response_ids": [c[-1] for c in cols["context_ids"]],
    }
    return pa.table(out, schema=PAIR_SCHEMA)


def triple_hypotheses(hypotheses: Mapping[tuple[int, int], str], triples_path: Path, pairs_path: Path) -> dict[tuple[int, int], str]:
    """Teacher hypotheses re-keyed from the pairs' ids to the triples': the hypotheses of the pair whose
    response is the same turn of the same session (the teacher saw that pair's longer history)."""
    pairs = read_table(pairs_path, columns=["pair_id", "session_id", "turn"]).to_pydict()
    by_turn = {(s, t): p for p, s, t in zip(pairs["pair_id"], pairs["session_id"], pairs["turn"], strict=True)}
    triples = read_table(triples_path, columns=["pair_id", "session_id", "turn"]).to_pydict()
    pair_of = {}
    for tid, s, t in zip(triples["pair_id"], triples["session_id"], triples["turn"], strict=True):
        if (s, t) not in by_turn:
            raise MultirefError(f"{triples_path}: triple {tid} (session {s}, turn {t}) has no pair in {pairs_path}")
        pair_of[by_turn[(s, t)]] = tid
    return {(pair_of[p], i): text for (p, i), text in hypotheses.items() if p in pair_of}


def write_triples(
    sessions_path: Path, triples_paths: Mapping[str, Path], vocab_path: Path, manifest_path: Path | None = None,
    cfg: TripleConfig = TripleConfig(), backward_paths: Mapping[str, Path] | None = None,
) -> dict[str, Any]:
    """Build the triples from ``data/sessions.parquet`` and write them (per split), their vocabulary and a
    manifest; returns the manifest. ``backward_paths`` (split -> path): also MMI's backward examples."""
    missing = [name for name in SPLITS if name not in triples_paths]
    if missing:
        raise ConfigError(f"triples: no output path for split(s) {missing}")
    vocab, tables, counts = build_triples(read_sessions(Path(sessions_path)), cfg)
    backward = {name: backward_table(tables[name]) for name in (backward_paths or {})}
    # Write only once everything has been computed, so an error leaves no output behind.
    write_parquet(vocab.to_arrow(), vocab_path, {"stage": "triples", "kind": "triples", "config": metadata(cfg, "", {})["config"]})
    for name in SPLITS:
        write_parquet(tables[name], triples_paths[name], metadata(cfg, name, counts[name]))
    for name, path in (backward_paths or {}).items():
        write_parquet(backward[name], path, {**metadata(cfg, name, counts[name]), "kind": "triples_backward"})
    manifest = {"splits": counts, "vocab_size": len(vocab), "config": metadata(cfg, "", {})["config"]}
    if manifest_path is not None:
        write_json(manifest, manifest_path)
    return manifest
