"""Reading DailyDialog's four top-level files and turning them into split sessions.

Faithful to the authors' ``build_response_gen_dataset.py`` (see ``docs/fidelity.md``):

1. read ``dialogues_{text,act,emotion,topic}.txt``; utterances are separated by ``__eou__`` and the
   text after the last separator is discarded; empty label lines are skipped;
2. drop a dialogue whose act or emotion count differs from its utterance count;
3. drop a dialogue as a duplicate when more than half of its utterances (exact stripped strings)
   were seen in the dialogues kept before it, in file order;
4. normalise and tokenise every utterance; floors alternate A/B from the first turn;
5. group sessions by topic in first-seen order and split each topic in file order
   ``[:int(.8n)]`` / ``[int(.8n):int(.9n)]`` / rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from multiref.errors import ConfigError, CorpusError

CORPUS_FILES = {
    "text": "dialogues_text.txt",
    "act": "dialogues_act.txt",
    "emotion": "dialogues_emotion.txt",
    "topic": "dialogues_topic.txt",
}
EOU = "__eou__"
SPLITS = ("train", "dev", "test")
FLOORS = ("A", "B")

DIALOG_ACTS = {1: "inform", 2: "question", 3: "directive", 4: "commissive"}
EMOTIONS = {
    0: "neutral",
    1: "anger",
    2: "disgust",
    3: "fear",
    4: "happiness",
    5: "sadness",
    6: "surprise",
}
TOPICS = {
    1: "Ordinary Life",
    2: "School Life",
    3: "Culture & Education",
    4: "Attitude & Emotion",
    5: "Relationship",
    6: "Tourism",
    7: "Health",
    8: "Work",
    9: "Politics",
    10: "Finance",
}


@dataclass
class RawDialogue:
    """One line of the corpus files, before any filtering."""

    line: int  # 1-based line number in dialogues_text.txt
    utterances: list[str]
    acts: list[str]
    emotions: list[str]
    topic: str


@dataclass
class Session:
    """A kept dialogue with decoded labels; ``utterances`` are normalised once set."""

    line: int
    topic_id: int
    topic: str
    raw_utterances: list[str]
    acts: list[str]
    emotions: list[str]
    floors: list[str] = field(default_factory=list)
    utterances: list[str] = field(default_factory=list)
    split: str = ""
    session_id: int = -1


@dataclass
class FilterReport:
    """What the filtering steps dropped (the paper's behaviour, not errors)."""

    n_read: int = 0
    n_label_mismatch: int = 0
    n_duplicate: int = 0
    label_mismatch_lines: list[int] = field(default_factory=list)
    duplicate_lines: list[int] = field(default_factory=list)

    @property
    def n_kept(self) -> int:
        return self.n_read - self.n_label_mismatch - self.n_duplicate


def _read_lines(path: Path) -> list[str]:
    """Lines of a UTF-8 file; a missing file or an undecodable line is named in the error."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise CorpusError(f"corpus file missing: {path}") from exc
    except OSError as exc:
        raise CorpusError(f"cannot read corpus file {path}: {exc.strerror}") from exc
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    decoded = []
    for number, line in enumerate(lines, start=1):
        try:
            decoded.append(line.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise CorpusError(
                f"{path}, line {number}: not valid UTF-8 (byte {exc.start}: {line[exc.start:exc.start + 1]!r})"
            ) from exc
    return decoded


def _label_lines(path: Path) -> list[tuple[int, list[str]]]:
    """Non-empty lines of a label file, split on single spaces, with their line numbers."""
    return [(n, line.strip().split(" ")) for n, line in enumerate(_read_lines(path), 1) if line.strip()]


def read_corpus(folder: Path) -> list[RawDialogue]:
    """Read the four corpus files in ``folder`` into dialogues, in file order.

    Raises :class:`CorpusError` naming the file and line of a missing file, a non-UTF-8 line, a
    non-empty text line without any ``__eou__`` marker, or files that disagree on the dialogue count
    (the authors' ``zip`` would silently drop the surplus lines).
    """
    folder = Path(folder)
    text_path = folder / CORPUS_FILES["text"]
    text_lines = _read_lines(text_path)
    dialogues_utts: list[list[str]] = []
    for number, line in enumerate(text_lines, start=1):
        line = line.strip()
        if line and EOU not in line:
            raise CorpusError(
                f"{text_path}, line {number}: malformed dialogue, no '{EOU}' marker in {line[:60]!r}"
            )
        dialogues_utts.append([u.strip() for u in line.split(EOU)[:-1]])

    labels = {key: _label_lines(folder / CORPUS_FILES[key]) for key in ("act", "emotion", "topic")}
    counts = {"text": len(dialogues_utts)} | {k: len(v) for k, v in labels.items()}
    if len(set(counts.values())) != 1:
        detail = ", ".join(f"{CORPUS_FILES[k]}: {n}" for k, n in counts.items())
        raise CorpusError(f"corpus files in {folder} disagree on the number of dialogues ({detail})")

    dialogues = []
    for i, utts in enumerate(dialogues_utts):
        topic_line, topic = labels["topic"][i]
        if len(topic) != 1:
            raise CorpusError(
                f"{folder / CORPUS_FILES['topic']}, line {topic_line}: expected one topic id, got {' '.join(topic)!r}"
            )
        dialogues.append(
            RawDialogue(
                line=i + 1,
                utterances=utts,
                acts=labels["act"][i][1],
                emotions=labels["emotion"][i][1],
                topic=topic[0],
            )
        )
    return dialogues


def filter_dialogues(
    dialogues: Sequence[RawDialogue], duplicate_threshold: float = 0.5
) -> tuple[list[RawDialogue], FilterReport]:
    """Drop label-mismatched dialogues, then near-duplicates, in file order.

    A dialogue is a duplicate when the share of its utterances already seen in *kept* dialogues is
    strictly greater than ``duplicate_threshold``. Its utterances are then not added to the seen set.
    """
    report = FilterReport(n_read=len(dialogues))
    seen: set[str] = set()
    kept = []
    for dialogue in dialogues:
        n = len(dialogue.utterances)
        if n != len(dialogue.acts) or n != len(dialogue.emotions):
            report.n_label_mismatch += 1
            report.label_mismatch_lines.append(dialogue.line)
            continue
        n_seen = sum(1 for u in dialogue.utterances if u in seen)
        if n_seen / n > duplicate_threshold:
            report.n_duplicate += 1
            report.duplicate_lines.append(dialogue.line)
            continue
        seen.update(dialogue.utterances)
        kept.append(dialogue)
    return kept, report


def _decode(value: str, table: dict[int, str], what: str, folder: Path | None, line: int) -> str:
    try:
        return table[int(value)]
    except (ValueError, KeyError) as exc:
        where = f"{folder / CORPUS_FILES[what]}" if folder else CORPUS_FILES[what]
        raise CorpusError(
            f"{where}, line {line}: unknown {what} label {value!r} (expected one of {sorted(table)})"
        ) from exc


def to_sessions(dialogues: Sequence[RawDialogue], folder: Path | None = None) -> list[Session]:
    """Decode labels and assign floors A/B alternately from the first turn (no normalisation yet)."""
    sessions = []
    for d in dialogues:
        topic_id = int(d.topic) if d.topic.isdigit() else -1
        sessions.append(
            Session(
                line=d.line,
                topic_id=topic_id,
                topic=_decode(d.topic, TOPICS, "topic", folder, d.line),
                raw_utterances=list(d.utterances),
                acts=[_decode(a, DIALOG_ACTS, "act", folder, d.line) for a in d.acts],
                emotions=[_decode(e, EMOTIONS, "emotion", folder, d.line) for e in d.emotions],
                floors=[FLOORS[i % 2] for i in range(len(d.utterances))],
            )
        )
    return sessions


def split_by_topic(
    sessions: Sequence[Session], train_end: float = 0.8, dev_end: float = 0.9
) -> dict[str, list[Session]]:
    """Split each topic (first-seen order) in file order into train/dev/test.

    With ``n`` sessions in a topic: ``[:int(train_end*n)]``, ``[int(train_end*n):int(dev_end*n)]`` and
    the rest, in floating point exactly as the authors' ``int(0.8*n)`` / ``int(0.9*n)`` (the bounds are
    cumulative so that ``0.8 + 0.1`` rounding never enters). Sessions get their ``split`` and a
    ``session_id`` numbered over train, then dev, then test.
    """
    if not 0 < train_end <= dev_end <= 1:
        raise ValueError(f"split bounds must satisfy 0 < train_end <= dev_end <= 1, got {train_end}, {dev_end}")
    by_topic: dict[str, list[Session]] = {}
    for session in sessions:
        by_topic.setdefault(session.topic, []).append(session)
    out: dict[str, list[Session]] = {name: [] for name in SPLITS}
    for topic_sessions in by_topic.values():
        n = len(topic_sessions)
        a, b = int(train_end * n), int(dev_end * n)
        out["train"] += topic_sessions[:a]
        out["dev"] += topic_sessions[a:b]
        out["test"] += topic_sessions[b:]
    next_id = 0
    for name in SPLITS:
        for session in out[name]:
            session.split = name
            session.session_id = next_id
            next_id += 1
    return out


def subset_splits(
    splits: dict[str, list[Session]], sizes: dict[str, int | None], seed: int = 0, key: str = "data.subset"
) -> dict[str, list[Session]]:
    """A pilot run's sessions: for each split with a size in ``sizes``, a seeded random draw of that many
    of its sessions, kept in session order (a split without a size, or with ``None``, stays whole).

    The draw of a split depends only on ``seed``, the split's name and its sessions, so the same
    configuration always keeps the same sessions, and a larger size for one split leaves the others
    unchanged. Sessions keep their full-corpus ``session_id``. A size larger than the split, or below 1,
    is an error naming ``<key>.<split>`` and the value.
    """
    import random

    out: dict[str, list[Session]] = {}
    for name in SPLITS:
        sessions = splits[name]
        n = sizes.get(name)
        if n is None:
            out[name] = list(sessions)
            continue
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"{key}.{name} must be a number of sessions >= 1 (or null for all), got {n!r}")
        if n > len(sessions):
            raise ConfigError(
                f"{key}.{name} is {n} but the {name} split has only {len(sessions)} sessions; "
                f"set it to at most {len(sessions)} (or null for the whole split)"
            )
        keep = sorted(random.Random(f"{seed}:{name}").sample(range(len(sessions)), n))
        out[name] = [sessions[i] for i in keep]
    return out
