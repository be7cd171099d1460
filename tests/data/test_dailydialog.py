"""Reading the corpus files, the label and duplicate filters, floors, and the topic-wise split."""

from pathlib import Path

import pytest
from conftest import dialogue, write_corpus

from multiref.data.dailydialog import (
    CORPUS_FILES,
    RawDialogue,
    Session,
    filter_dialogues,
    read_corpus,
    split_by_topic,
    subset_splits,
    to_sessions,
)
from multiref.errors import ConfigError, CorpusError


def raw(line: int, utts: list[str], topic: str = "1", n_labels: int | None = None) -> RawDialogue:
    n = len(utts) if n_labels is None else n_labels
    return RawDialogue(line, utts, ["1"] * n, ["0"] * n, topic)


def test_read_corpus_splits_on_eou_and_drops_the_tail(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path, [dialogue(["Hi .", "Hello !"]), dialogue(["One .", "Two .", "Three ."], topic=6)])
    text = folder / CORPUS_FILES["text"]
    text.write_text(text.read_text().replace("Hello ! __eou__", "Hello ! __eou__ trailing"), encoding="utf-8")
    dialogues = read_corpus(folder)
    assert [d.utterances for d in dialogues] == [["Hi .", "Hello !"], ["One .", "Two .", "Three ."]]
    assert [d.topic for d in dialogues] == ["1", "6"]
    assert [d.line for d in dialogues] == [1, 2]


def test_label_mismatch_is_dropped_and_counted() -> None:
    kept, report = filter_dialogues([raw(1, ["a", "b"]), raw(2, ["c", "d"], n_labels=3), raw(3, ["e"])])
    assert [d.line for d in kept] == [1, 3]
    assert (report.n_label_mismatch, report.label_mismatch_lines, report.n_kept) == (1, [2], 2)


def test_duplicate_rule_more_than_half_seen_in_kept_dialogues() -> None:
    dialogues = [
        raw(1, ["a", "b", "c", "d"]),
        raw(2, ["a", "b", "x", "y"]),  # exactly half seen: kept
        raw(3, ["a", "b", "x", "z"]),  # 3/4 seen: dropped
        raw(4, ["z", "w"]),  # z only appeared in the dropped dialogue: not seen, kept
        raw(5, ["A", "b "]),  # exact strings: case differs, "b " differs from "b" -> kept
    ]
    kept, report = filter_dialogues(dialogues)
    assert [d.line for d in kept] == [1, 2, 4, 5]
    assert report.duplicate_lines == [3]
    kept, report = filter_dialogues(dialogues, duplicate_threshold=1.0)
    assert report.n_duplicate == 0


def test_repeats_inside_one_dialogue_do_not_make_it_a_duplicate() -> None:
    kept, _ = filter_dialogues([raw(1, ["yes", "yes", "yes"])])
    assert len(kept) == 1


def test_floors_alternate_from_a_and_labels_decode() -> None:
    d = RawDialogue(1, ["a", "b", "c"], ["2", "1", "4"], ["0", "4", "6"], "8")
    (s,) = to_sessions([d])
    assert s.floors == ["A", "B", "A"]
    assert s.acts == ["question", "inform", "commissive"]
    assert s.emotions == ["neutral", "happiness", "surprise"]
    assert (s.topic_id, s.topic) == (8, "Work")


def test_unknown_label_names_file_and_line() -> None:
    with pytest.raises(CorpusError, match=r"dialogues_act.txt, line 7: unknown act label '9'"):
        to_sessions([RawDialogue(7, ["a"], ["9"], ["0"], "1")])


def sessions_for(topics: list[str]) -> list[Session]:
    return [Session(line=i, topic_id=0, topic=t, raw_utterances=["x"], acts=[], emotions=[]) for i, t in enumerate(topics)]


@pytest.mark.parametrize("n", [1, 2, 3, 7, 10, 11, 19, 47, 440, 1001, 3344])
def test_split_arithmetic_per_topic(n: int) -> None:
    splits = split_by_topic(sessions_for(["t"] * n))
    assert len(splits["train"]) == int(0.8 * n)
    assert len(splits["dev"]) == int(0.9 * n) - int(0.8 * n)
    assert len(splits["test"]) == n - int(0.9 * n)


def test_split_is_per_topic_in_file_order_and_ids_follow_train_dev_test() -> None:
    topics = ["b"] * 10 + ["a"] * 10
    topics[3], topics[15] = "a", "b"  # interleave: first-seen order is b, a
    sessions = sessions_for(topics)
    splits = split_by_topic(sessions)
    train_lines = [s.line for s in splits["train"]]
    b_lines = [s.line for s in sessions if s.topic == "b"]
    a_lines = [s.line for s in sessions if s.topic == "a"]
    assert train_lines == b_lines[:8] + a_lines[:8]
    assert [s.line for s in splits["dev"]] == [b_lines[8], a_lines[8]]
    assert [s.line for s in splits["test"]] == [b_lines[9], a_lines[9]]
    ids = [s.session_id for name in ("train", "dev", "test") for s in splits[name]]
    assert ids == list(range(20))


def test_split_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="train_end"):
        split_by_topic([], 0.9, 0.8)


def test_subset_is_a_seeded_draw_per_split_in_session_order() -> None:
    splits = split_by_topic(sessions_for(["a"] * 50 + ["b"] * 50))
    sizes = {"train": 7, "dev": 3, "test": None}
    kept = subset_splits(splits, sizes, seed=4)
    assert [len(kept[s]) for s in ("train", "dev", "test")] == [7, 3, len(splits["test"])]
    assert kept["test"] == splits["test"]  # null keeps the whole split
    for name in ("train", "dev"):
        ids = [s.session_id for s in kept[name]]
        assert ids == sorted(ids) and set(ids) <= {s.session_id for s in splits[name]}  # full-corpus ids, in order
    assert {s.topic for s in kept["train"]} == {"a", "b"}  # a draw, not the first sessions (all of topic a)
    again = subset_splits(split_by_topic(sessions_for(["a"] * 50 + ["b"] * 50)), sizes, seed=4)
    assert [s.line for s in again["train"]] == [s.line for s in kept["train"]]
    other = subset_splits(splits, sizes, seed=5)
    assert [s.line for s in other["train"]] != [s.line for s in kept["train"]]
    bigger_dev = subset_splits(splits, {**sizes, "dev": 5}, seed=4)
    assert [s.line for s in bigger_dev["train"]] == [s.line for s in kept["train"]]  # each split's draw is its own


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        ({"test": 11}, r"data.subset.test is 11 but the test split has only 10 sessions; set it to at most 10"),
        ({"dev": 0}, r"data.subset.dev must be a number of sessions >= 1 \(or null for all\), got 0"),
        ({"train": "5"}, r"data.subset.train must be a number of sessions >= 1"),
    ],
)
def test_impossible_subsets_name_the_key_and_value(sizes: dict, message: str) -> None:
    splits = split_by_topic(sessions_for(["a"] * 100))
    with pytest.raises(ConfigError, match=message):
        subset_splits(splits, sizes)


# --- bad input: each error names the file and what is wrong ---------------------------------------


def test_non_utf8_line_is_named(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path, [dialogue(["Hi .", "Yo ."]), dialogue(["A .", "B ."])])
    text = folder / CORPUS_FILES["text"]
    text.write_bytes(text.read_bytes().replace(b"B .", b"B \xff."))
    with pytest.raises(CorpusError, match=r"dialogues_text.txt, line 2: not valid UTF-8"):
        read_corpus(folder)


def test_malformed_dialogue_line_is_named(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path, [dialogue(["Hi .", "Yo ."])])
    (folder / CORPUS_FILES["text"]).write_text("Hi . Yo .\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"line 1: malformed dialogue, no '__eou__'"):
        read_corpus(folder)


def test_files_disagreeing_on_dialogue_count(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path, [dialogue(["Hi .", "Yo ."]), dialogue(["A .", "B ."])])
    (folder / CORPUS_FILES["topic"]).write_text("1\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"disagree on the number of dialogues.*dialogues_topic.txt: 1"):
        read_corpus(folder)


def test_missing_file_is_named(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path, [dialogue(["Hi .", "Yo ."])])
    (folder / CORPUS_FILES["emotion"]).unlink()
    with pytest.raises(CorpusError, match=r"corpus file missing: .*dialogues_emotion.txt"):
        read_corpus(folder)


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path, [dialogue(["Hi .", "Yo ."])])
    (folder / CORPUS_FILES["act"]).unlink()
    (folder / CORPUS_FILES["act"]).mkdir()  # exists but cannot be read as a file
    with pytest.raises(CorpusError, match=r"cannot read corpus file .*dialogues_act.txt"):
        read_corpus(folder)
