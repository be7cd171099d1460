"""Mirror's (c, x, y) triples (multiref.mirror.triples): windows, filters, vocabulary, schema."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from multiref.data.dailydialog import Session
from multiref.data.pairs import PAIR_SCHEMA, SPECIAL_TOKENS
from multiref.data.preprocess import sessions_table
from multiref.errors import ConfigError
from multiref.io import read_parquet_metadata
from multiref.mirror.triples import TripleConfig, build_triples, write_triples
from multiref.models.data import collate, load_vocabulary, pair_examples
from multiref.models.hred import HRED, HREDConfig


def session(sid: int, split: str, utterances: list[str]) -> Session:
    n = len(utterances)
    return Session(line=sid + 1, topic_id=1, topic="Ordinary Life", raw_utterances=list(utterances), acts=["inform"] * n,
                   emotions=["neutral"] * n, floors=["AB"[i % 2] for i in range(n)], utterances=list(utterances),
                   split=split, session_id=sid)


FIVE = ["u0 hello", "u1 hi there", "u2 how are you", "u3 fine", "u4 bye now"]


def words(n: int, word: str = "w") -> str:
    return " ".join([word] * n)


def test_sliding_and_disjoint_windows() -> None:
    sessions = [session(0, "train", FIVE)]
    _, tables, counts = build_triples(sessions, TripleConfig(windows="sliding"))
    rows = tables["train"].to_pylist()
    assert [r["turn"] for r in rows] == [2, 3, 4]
    assert [r["context"] for r in rows] == [FIVE[0:2], FIVE[1:3], FIVE[2:4]]
    assert [r["response"] for r in rows] == FIVE[2:5]
    assert [r["context_floors"] for r in rows] == [["A", "B"], ["B", "A"], ["A", "B"]]
    assert [r["response_floor"] for r in rows] == ["A", "B", "A"]
    assert [r["session_id"] for r in rows] == [0, 0, 0] and [r["pair_id"] for r in rows] == [0, 1, 2]
    assert counts["train"]["candidates"] == 3 and counts["train"]["kept"] == 3
    _, tables, _ = build_triples(sessions, TripleConfig(windows="disjoint"))
    rows = tables["train"].to_pylist()
    assert [(r["turn"], r["context"], r["response"]) for r in rows] == [(2, FIVE[0:2], FIVE[2])]
    # a 6-turn session has two disjoint blocks: (0, 1, 2) and (3, 4, 5)
    _, tables, _ = build_triples([session(0, "train", [*FIVE, "u5"])], TripleConfig(windows="disjoint"))
    assert tables["train"].column("turn").to_pylist() == [2, 5]


def test_filters_on_train_and_dev_only() -> None:
    long_c = [words(101), "x ok", "y ok"]  # c over 100 tokens
    edge_c = [words(100), "x ok", "y ok"]  # exactly 100: kept
    long_x = ["c ok", words(46), "y ok"]
    long_y = ["c ok", "x ok", words(46)]
    long_xy = ["c ok", words(46), words(46)]
    fine = ["c ok", words(45), words(45)]
    utts = [long_c, edge_c, long_x, long_y, long_xy, fine]
    sessions = [session(i + 10 * j, split, u) for j, split in enumerate(("train", "dev", "test")) for i, u in enumerate(utts)]
    _, tables, counts = build_triples(sessions)
    for split in ("train", "dev"):
        assert tables[split].num_rows == 2
        assert counts[split]["failed_filter"] == {"context": 1, "query": 2, "response": 2}
        assert counts[split]["dropped"] == 4 and counts[split]["filtered"]
    assert tables["test"].num_rows == 6 and counts["test"]["dropped"] == 0 and not counts["test"]["filtered"]
    assert tables["test"].column("response").to_pylist()[3] == words(46)  # not truncated by default
    # the filters are configurable (None disables one), and truncation is separate
    _, tables, _ = build_triples(sessions, TripleConfig(max_query_tokens=None, max_utterance_tokens=10))
    assert tables["train"].num_rows == 3
    assert max(len(r) for r in tables["test"].column("response_ids").to_pylist()) == 12


@pytest.mark.parametrize("counting", ["opennmt", "once"])
def test_vocabulary_cap_and_ranking(counting: str) -> None:
    # word k occurs k times in one utterance, counted as c, x and y of the sliding triples (once: 3 times;
    # opennmt: 1 + 2 + 2 times); the test split's words never enter the vocabulary
    middle = [" ".join(f"w{k}" for _ in range(k)) for k in range(1, 30)]
    train = [session(0, "train", ["e1", "e2", *middle, "e2", "e1"])]
    test = [session(1, "test", ["zzz yyy", "zzz", "zzz"])]
    size = len(SPECIAL_TOKENS) + 5 if counting == "once" else 5  # once: the specials count in the size
    vocab, tables, _ = build_triples(train + test, TripleConfig(vocab_size=size, vocab_counting=counting))
    assert len(vocab) == len(SPECIAL_TOKENS) + 5 and vocab.tokens[: len(SPECIAL_TOKENS)] == SPECIAL_TOKENS
    assert vocab.tokens[len(SPECIAL_TOKENS):] == ("w29", "w28", "w27", "w26", "w25")
    assert vocab.counts[len(SPECIAL_TOKENS)] == 29 * (5 if counting == "opennmt" else 3)
    unk = vocab.id("<unk>")
    assert tables["test"].column("response_ids").to_pylist()[0] == [vocab.id("<s>"), unk, vocab.id("</s>")]
    with pytest.raises(ConfigError, match="vocab_size"):
        TripleConfig(vocab_size=3, vocab_counting="once")
    with pytest.raises(ConfigError, match="vocab_size: must be a positive integer"):
        TripleConfig(vocab_size=0)
    with pytest.raises(ConfigError, match="vocab_counting: unknown value 'twice'"):
        TripleConfig(vocab_counting="twice")


def test_opennmt_counting_weighs_query_and_response_twice() -> None:
    """The authors' OpenNMT preprocess counts five fields per triple (src = x, tgt = y, ctx = c, src_back = y,
    tgt_back = x), so x and y count twice and c once; ties go alphabetically (torchtext's Vocab); the specials
    come on top of vocab_size. Counting each turn once picks other words here."""
    # c = "ctx ctx ctx" (3 per triple), x = "qry qry" (2), y = "rsp" (1); one triple
    triple = [session(0, "train", ["ctx ctx ctx", "qry qry", "rsp zeta alpha"])]
    authors, _, _ = build_triples(triple, TripleConfig(vocab_size=1))
    once, _, _ = build_triples(triple, TripleConfig(vocab_size=len(SPECIAL_TOKENS) + 1, vocab_counting="once"))
    assert authors.tokens[len(SPECIAL_TOKENS):] == ("qry",) and authors.counts[-1] == 4  # 2 x 2 > 3
    assert once.tokens[len(SPECIAL_TOKENS):] == ("ctx",) and once.counts[-1] == 3
    authors, _, _ = build_triples(triple, TripleConfig(vocab_size=4))
    assert authors.tokens[len(SPECIAL_TOKENS):] == ("qry", "ctx", "alpha", "rsp")  # count 2 ties: alphabetical
    once, _, _ = build_triples(triple, TripleConfig(vocab_size=len(SPECIAL_TOKENS) + 4, vocab_counting="once"))
    assert once.tokens[len(SPECIAL_TOKENS):] == ("ctx", "qry", "rsp", "zeta")  # count 1 ties: first seen
    assert len(authors) == len(SPECIAL_TOKENS) + 4 == len(once)


def test_written_files_have_the_pairs_schema_and_train_hred(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    sessions = [session(0, "train", FIVE), session(1, "train", FIVE[::-1]), session(2, "dev", FIVE), session(3, "test", FIVE[:3])]
    sessions_path = tmp_path / "sessions.parquet"
    pq.write_table(sessions_table(sessions), sessions_path)
    paths = {s: tmp_path / "triples" / f"{s}.parquet" for s in ("train", "dev", "test")}
    manifest = write_triples(sessions_path, paths, tmp_path / "triples" / "vocab.parquet", tmp_path / "triples" / "manifest.json")
    assert manifest["splits"]["train"]["kept"] == 6 and manifest["splits"]["test"]["kept"] == 1
    for split, path in paths.items():
        schema = pq.read_schema(path)
        assert schema.remove_metadata().equals(PAIR_SCHEMA)
        meta = read_parquet_metadata(path)
        assert meta["kind"] == "triples" and meta["windows"] == "sliding" and meta["split"] == split
        assert meta["config"]["max_context_tokens"] == 100 and meta["config"]["max_utterance_tokens"] == 45
        assert set(meta["counts"]) >= {"candidates", "kept", "dropped", "failed_filter"}
    ids = pq.read_table(paths["dev"]).column("pair_id").to_pylist()
    assert ids == [6, 7, 8]  # numbered over the splits, train first
    examples = list(pair_examples(paths["train"]).values())
    assert len(examples) == 6 and all(len(e.context) == 2 for e in examples)
    vocab = load_vocabulary(tmp_path / "triples" / "vocab.parquet")
    model = HRED(HREDConfig(vocab_size=len(vocab), embedding_dim=8, floor_dim=4, hidden=8))
    out = model(*collate(examples, vocab.id("<pad>")))
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and int(out["n_tokens"]) > 0


def test_bad_configuration() -> None:
    with pytest.raises(ConfigError, match="windows.*'blocks'"):
        TripleConfig(windows="blocks")
    with pytest.raises(ConfigError, match="filter_splits.*'valid'"):
        TripleConfig(filter_splits=("train", "valid"))
    with pytest.raises(ConfigError, match="max_query_tokens"):
        TripleConfig(max_query_tokens=0)
    with pytest.raises(ConfigError, match="unknown key"):
        TripleConfig.from_mapping({"window": "sliding"})
    assert TripleConfig.from_mapping({"windows": "disjoint", "filter_splits": ["train"]}).filter_splits == ("train",)


def test_backward_examples_turn_each_triple_around(tmp_path: Path) -> None:
    sessions = [session(0, "train", FIVE), session(1, "dev", FIVE), session(2, "test", FIVE[:3])]
    sessions_path = tmp_path / "sessions.parquet"
    pq.write_table(sessions_table(sessions), sessions_path)
    paths = {s: tmp_path / f"{s}.parquet" for s in ("train", "dev", "test")}
    back = {s: tmp_path / f"backward_{s}.parquet" for s in ("train", "dev")}
    write_triples(sessions_path, paths, tmp_path / "vocab.parquet", backward_paths=back)
    fwd = pq.read_table(paths["train"]).to_pylist()
    bwd = pq.read_table(back["train"]).to_pylist()
    assert pq.read_schema(back["train"]).remove_metadata().equals(PAIR_SCHEMA)
    assert read_parquet_metadata(back["train"])["kind"] == "triples_backward"
    for f, b in zip(fwd, bwd, strict=True):  # p(x | y): the context is [y], the response is x
        assert b["pair_id"] == f["pair_id"] and b["context"] == [f["response"]] and b["response"] == f["context"][-1]
        assert b["context_ids"] == [f["response_ids"]] and b["response_ids"] == f["context_ids"][-1]
        assert b["response_floor"] == f["context_floors"][-1]


def test_teacher_hypotheses_follow_the_pair_of_the_same_turn(tmp_path: Path) -> None:
    from multiref.data.pairs import build_pairs, build_vocabulary
    from multiref.errors import MultirefError
    from multiref.mirror.triples import triple_hypotheses

    sessions = [session(0, "train", FIVE), session(1, "train", FIVE[::-1])]
    sessions_path = tmp_path / "sessions.parquet"
    pq.write_table(sessions_table(sessions), sessions_path)
    paths = {s: tmp_path / f"{s}.parquet" for s in ("train", "dev", "test")}
    write_triples(sessions_path, paths, tmp_path / "vocab.parquet")
    pairs = build_pairs(sessions, build_vocabulary(FIVE, 50), history_len=5, max_utterance_tokens=40, first_pair_id=100)
    pq.write_table(pairs, tmp_path / "pairs.parquet")
    rows = pairs.to_pylist()
    hyps = {(r["pair_id"], i): f"hyp {i} of s{r['session_id']} t{r['turn']}" for r in rows for i in range(2)}
    keyed = triple_hypotheses(hyps, paths["train"], tmp_path / "pairs.parquet")
    triples = pq.read_table(paths["train"]).to_pylist()
    assert len(keyed) == 2 * len(triples)  # the pairs of turn 1 have no triple and are left out
    for t in triples:
        assert keyed[(t["pair_id"], 1)] == f"hyp 1 of s{t['session_id']} t{t['turn']}"
    pq.write_table(pairs.slice(0, 2), tmp_path / "few.parquet")
    with pytest.raises(MultirefError, match="has no pair"):
        triple_hypotheses(hyps, paths["train"], tmp_path / "few.parquet")
