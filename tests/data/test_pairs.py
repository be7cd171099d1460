"""Vocabulary (specials, size, order) and pairs (history, truncation before specials, ids)."""

from multiref.data.dailydialog import Session
from multiref.data.pairs import BOS, EOS, SPECIAL_TOKENS, UNK, Vocabulary, build_pairs, build_vocabulary


def test_vocabulary_specials_first_then_by_count_ties_first_seen() -> None:
    vocab = build_vocabulary(["b a c", "a b", "a d"], size=12)
    assert vocab.tokens[: len(SPECIAL_TOKENS)] == SPECIAL_TOKENS
    assert len(SPECIAL_TOKENS) == 9
    assert vocab.tokens[9:] == ("a", "b", "c")  # a:3, b:2, then c (seen before d) fills the last slot
    assert vocab.counts[9:] == (3, 2, 1)
    assert len(vocab) == 12


def test_vocabulary_size_and_unknown_words() -> None:
    vocab = build_vocabulary([" ".join(f"w{i}" for i in range(50))], size=20)
    assert len(vocab) == 20
    assert vocab.id("never-seen") == vocab.id(UNK) == 3
    assert Vocabulary.from_arrow(vocab.to_arrow()) == vocab


def test_vocabulary_never_duplicates_a_special_seen_in_text() -> None:
    vocab = build_vocabulary(["<unk> x", "<unk>"], size=11)
    assert vocab.tokens.count("<unk>") == 1
    assert vocab.tokens[9:] == ("x",)


def session(utts: list[str], sid: int = 0) -> Session:
    return Session(
        line=1, topic_id=1, topic="t", raw_utterances=utts, acts=[], emotions=[],
        floors=["A" if i % 2 == 0 else "B" for i in range(len(utts))], utterances=utts, session_id=sid,
    )


def test_pairs_history_and_floors() -> None:
    utts = [f"u{i}" for i in range(8)]
    vocab = build_vocabulary(utts, size=30)
    table = build_pairs([session(utts, sid=4)], vocab, history_len=5, max_utterance_tokens=40, first_pair_id=100)
    rows = table.to_pylist()
    assert len(rows) == 7  # every utterance from index 1 is a response
    assert rows[0]["pair_id"] == 100 and rows[0]["session_id"] == 4 and rows[0]["turn"] == 1
    assert rows[0]["context"] == ["u0"] and rows[0]["response"] == "u1"
    assert rows[-1]["context"] == ["u2", "u3", "u4", "u5", "u6"]  # at most 5 previous utterances
    assert rows[-1]["context_floors"] == ["A", "B", "A", "B", "A"] and rows[-1]["response_floor"] == "B"


def test_truncation_happens_before_specials() -> None:
    long = " ".join(f"t{i}" for i in range(50))
    vocab = build_vocabulary([long, "short"], size=100)
    (row,) = build_pairs([session([long, long])], vocab, 5, 40).to_pylist()
    ids = row["response_ids"]
    assert len(ids) == 42  # 40 tokens + <s> + </s>
    assert ids[0] == vocab.id(BOS) and ids[-1] == vocab.id(EOS)
    assert row["response"].split(" ") == [f"t{i}" for i in range(40)]
    assert ids[1:-1] == [vocab.id(f"t{i}") for i in range(40)]
    assert row["context_ids"][0] == ids


def test_unknown_words_map_to_unk_ids_but_stay_in_text() -> None:
    vocab = build_vocabulary(["a"], size=10)
    (row,) = build_pairs([session(["a", "zzz"])], vocab, 5, 40).to_pylist()
    assert row["response"] == "zzz"
    assert row["response_ids"] == [vocab.id(BOS), vocab.id(UNK), vocab.id(EOS)]


def test_empty_utterance_encodes_to_nothing_as_in_the_authors_code() -> None:
    vocab = build_vocabulary(["a"], size=10)
    assert vocab.encode([]) == []
