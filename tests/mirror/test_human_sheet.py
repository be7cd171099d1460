"""Tests of the pairwise human evaluation sheet (multiref.mirror.human_sheet): sampling per method pair, hidden and
randomised response order, seeding, HTML escaping, atomic writing, and scoring annotators' answers."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from multiref.errors import ConfigError, MultirefError
from multiref.mirror import human_sheet as H

LABELS = ["Mirror", "HRED", "VHRED"]
WORDS = {"Mirror": "alpha", "HRED": "beta", "VHRED": "gamma"}  # hypothesis text carries no label
PAIRS = [("Mirror", "HRED"), ("Mirror", "VHRED")]


def write_test(path: Path, n: int) -> Path:
    """A triples test file of ``n`` dialogues, pair ids 100, 101, ..."""
    ids = [100 + i for i in range(n)]
    table = pa.table(
        {
            "pair_id": pa.array(ids, pa.int64()),
            "context": pa.array([[f"first turn {p}", f"second turn {p}"] for p in ids], pa.list_(pa.string())),
            "context_floors": pa.array([["A", "B"] if p % 2 else ["B", "A"] for p in ids], pa.list_(pa.string())),
            "response": pa.array([f"reference {p}" for p in ids], pa.string()),
            "response_floor": pa.array(["A" if p % 2 else "B" for p in ids], pa.string()),
        }
    )
    pq.write_table(table, path)
    return path


def hypothesis(label: str, pid: int) -> str:
    return f"response {WORDS[label]} {pid}"


def write_decode(path: Path, label: str, ids: list[int], text: dict[int, str] | None = None) -> Path:
    hyps = [(text or {}).get(p, hypothesis(label, p)) for p in ids]
    table = pa.table(
        {
            "pair_id": pa.array(ids, pa.int64()),
            "hypothesis": pa.array(hyps, pa.string()),
            "n_tokens": pa.array([len(h.split()) for h in hyps], pa.int32()),
        }
    )
    pq.write_table(table, path)
    return path


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    """A test set of 60 dialogues and a decode file per system."""
    test = write_test(tmp_path / "test.parquet", 60)
    ids = [100 + i for i in range(60)]
    decodes = {label: write_decode(tmp_path / f"{label}.parquet", label, ids) for label in LABELS}
    return test, decodes


def test_sheet_hides_systems_and_samples_each_pair(corpus: tuple[Path, dict[str, Path]]) -> None:
    test, decodes = corpus
    sheet, key = H.make_sheet(test, decodes, PAIRS, dialogues=40, seed=3)
    assert list(sheet.columns) == H.SHEET_COLUMNS
    assert list(key.columns) == H.KEY_COLUMNS
    assert list(sheet["item"]) == [f"q{i:04d}" for i in range(1, 81)]
    assert (sheet["answer"] == "").all()
    cells = [str(c) for c in sheet.columns] + [str(v) for v in sheet.to_numpy().ravel()]
    for label in LABELS:
        assert not any(label.lower() in cell.lower() for cell in cells), label
    for system, baseline in PAIRS:
        mine = key[key["method_pair"] == f"{system} vs. {baseline}"]
        assert len(mine) == 40 and mine["pair_id"].nunique() == 40
        assert set(mine["system"]) == {system} and set(mine["baseline"]) == {baseline}
    assert set(key["item"]) == set(sheet["item"])
    # the pairs are interleaved in sheet order, not one block after the other
    order = sheet.merge(key, on="item")["method_pair"].tolist()
    assert order != sorted(order) and order != sorted(order, reverse=True)


def test_response_order_is_random_and_key_maps_back(corpus: tuple[Path, dict[str, Path]]) -> None:
    test, decodes = corpus
    sheet, key = H.make_sheet(test, decodes, [("Mirror", "HRED")], dialogues=40, seed=0)
    merged = sheet.merge(key, on="item")
    assert set(merged["first"]) == {"Mirror", "HRED"}
    for row in merged.itertuples(index=False):
        assert row.response_1 == hypothesis(row.first, row.pair_id)
        assert row.response_2 == hypothesis(row.second, row.pair_id)
        assert {row.first, row.second} == {"Mirror", "HRED"}
        a, b = ("A", "B") if row.pair_id % 2 else ("B", "A")
        assert row.context == f"{a}: first turn {row.pair_id}\n{b}: second turn {row.pair_id}"


def test_seed_determines_sheet(corpus: tuple[Path, dict[str, Path]]) -> None:
    test, decodes = corpus
    sheet1, key1 = H.make_sheet(test, decodes, PAIRS, dialogues=20, seed=7)
    sheet2, key2 = H.make_sheet(test, decodes, PAIRS, dialogues=20, seed=7)
    pd.testing.assert_frame_equal(sheet1, sheet2)
    pd.testing.assert_frame_equal(key1, key2)
    sheet3, _ = H.make_sheet(test, decodes, PAIRS, dialogues=20, seed=8)
    assert not sheet1.equals(sheet3)


def test_fewer_dialogues_than_requested_uses_all(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    test = write_test(tmp_path / "test.parquet", 5)
    ids = [100 + i for i in range(5)]
    decodes = {label: write_decode(tmp_path / f"{label}.parquet", label, ids) for label in LABELS}
    with caplog.at_level(logging.WARNING, logger=H.__name__):
        sheet, key = H.make_sheet(test, decodes, PAIRS, dialogues=200)
    assert len(sheet) == 10
    for _, group in key.groupby("method_pair"):
        assert sorted(group["pair_id"]) == ids
    assert "fewer than the 200 requested" in caplog.text


def test_write_sheet_csv_html_key(tmp_path: Path) -> None:
    test = write_test(tmp_path / "test.parquet", 3)
    ids = [100, 101, 102]
    evil = {101: "<script>alert('x')</script> & more"}
    decodes = {
        "Mirror": write_decode(tmp_path / "m.parquet", "Mirror", ids, evil),
        "HRED": write_decode(tmp_path / "h.parquet", "HRED", ids),
    }
    sheet, key = H.make_sheet(test, decodes, [("Mirror", "HRED")], dialogues=3)
    out = tmp_path / "out"
    H.write_sheet(sheet, key, out / "sheet.csv", out / "sheet.html", out / "key.csv")
    assert sorted(p.name for p in out.iterdir()) == ["key.csv", "sheet.csv", "sheet.html"]
    page = (out / "sheet.html").read_text(encoding="utf-8")
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in page
    assert "Which response is more appropriate given the context? Answer 1, 2 or tie" in page
    assert page.count('<div class="item"') == 3 and "A: first turn 101" in page
    back = pd.read_csv(out / "sheet.csv", dtype=str, keep_default_na=False)
    assert back["response_1"].tolist() == sheet["response_1"].tolist()
    assert back["context"].tolist() == sheet["context"].tolist()
    assert pd.read_csv(out / "key.csv")["pair_id"].tolist() == key["pair_id"].tolist()


def test_failing_write_leaves_no_files(corpus: tuple[Path, dict[str, Path]], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    test, decodes = corpus
    sheet, key = H.make_sheet(test, decodes, PAIRS, dialogues=5)
    out = tmp_path / "out"
    out.mkdir()
    calls = []

    def failing_to_csv(self: pd.DataFrame, path: Path, **kwargs: object) -> None:
        calls.append(path)
        Path(path).write_text("partial", encoding="utf-8")
        if len(calls) == 2:  # the key, after the sheet CSV and the HTML page were written
            raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", failing_to_csv)
    with pytest.raises(OSError, match="disk full"):
        H.write_sheet(sheet, key, out / "sheet.csv", out / "sheet.html", out / "key.csv")
    assert list(out.iterdir()) == []
    monkeypatch.undo()
    # a key path that cannot be placed (its folder is a file) fails before anything is written
    (tmp_path / "blocker").write_text("", encoding="utf-8")
    with pytest.raises(MultirefError, match="blocker"):
        H.write_sheet(sheet, key, out / "sheet.csv", out / "sheet.html", tmp_path / "blocker" / "key.csv")
    assert list(out.iterdir()) == []


KEY_CSV = """item,method_pair,system,baseline,pair_id,first,second
q1,Mirror vs. HRED,Mirror,HRED,100,Mirror,HRED
q2,Mirror vs. HRED,Mirror,HRED,101,HRED,Mirror
q3,Mirror vs. VHRED,Mirror,VHRED,100,VHRED,Mirror
q4,Mirror vs. VHRED,Mirror,VHRED,102,Mirror,VHRED
"""


def test_score_answers_known_outcomes(tmp_path: Path) -> None:
    key = tmp_path / "key.csv"
    key.write_text(KEY_CSV, encoding="utf-8")
    answers = tmp_path / "answers.csv"
    answers.write_text(
        "item,answer,annotator\n"
        "q1,1,ann1\n"     # Mirror shown first: win
        "q1,2,ann2\n"     # loss
        "q1, TIE ,ann3\n"  # tie
        "q2,1,ann1\n"     # HRED shown first: loss
        "q2, 2,ann2\n"    # win
        "q3,2,ann1\n"     # Mirror shown second: win
        "q4,1,ann1\n"     # win
        "q4,Tie,ann2\n",  # tie
        encoding="utf-8",
    )
    scores = H.score_answers(answers, key)
    assert list(scores.columns) == H.SCORE_COLUMNS
    hred, vhred = scores.iloc[0], scores.iloc[1]
    assert (hred["method_pair"], hred["system"], hred["baseline"]) == ("Mirror vs. HRED", "Mirror", "HRED")
    assert (hred["wins"], hred["losses"], hred["ties"]) == pytest.approx((0.4, 0.4, 0.2))
    assert (hred["judgements"], hred["items"], hred["annotators"]) == (5, 2, 3)
    assert vhred["method_pair"] == "Mirror vs. VHRED"
    assert (vhred["wins"], vhred["losses"], vhred["ties"]) == pytest.approx((2 / 3, 0.0, 1 / 3))
    assert (vhred["judgements"], vhred["items"], vhred["annotators"]) == (3, 2, 2)

    plain = tmp_path / "plain.csv"
    plain.write_text("item,answer\nq2,2\nq2,tie\n", encoding="utf-8")
    scores = H.score_answers(plain, key)
    assert scores.iloc[0]["wins"] == pytest.approx(0.5) and scores.iloc[0]["annotators"] == 1
    assert scores.iloc[1]["judgements"] == 0


def test_score_answers_errors(tmp_path: Path) -> None:
    key = tmp_path / "key.csv"
    key.write_text(KEY_CSV, encoding="utf-8")
    bad = tmp_path / "bad.csv"
    bad.write_text("item,answer\nq1,1\nq2,3\n", encoding="utf-8")
    with pytest.raises(MultirefError, match=r"bad\.csv, row 2: bad answer '3'"):
        H.score_answers(bad, key)
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("item,answer\nq9,1\n", encoding="utf-8")
    with pytest.raises(MultirefError, match=r"unknown\.csv, row 1: unknown item 'q9'"):
        H.score_answers(unknown, key)
    nocol = tmp_path / "nocol.csv"
    nocol.write_text("item,choice\nq1,1\n", encoding="utf-8")
    with pytest.raises(MultirefError, match=r"nocol\.csv lacks column\(s\) \['answer'\]"):
        H.score_answers(nocol, key)


def test_make_sheet_errors(corpus: tuple[Path, dict[str, Path]], tmp_path: Path) -> None:
    test, decodes = corpus
    with pytest.raises(ConfigError, match="'Seq2Seq'"):
        H.make_sheet(test, decodes, [("Mirror", "Seq2Seq")])
    with pytest.raises(ConfigError, match="dialogues"):
        H.make_sheet(test, decodes, PAIRS, dialogues=0)
    short = write_decode(tmp_path / "short.parquet", "HRED", [100, 101])
    with pytest.raises(MultirefError, match=r"short\.parquet: no hypothesis for 58 .*pair_id 102, 103"):
        H.make_sheet(test, {**decodes, "HRED": short}, [("Mirror", "HRED")], dialogues=60)
    with pytest.raises(ConfigError, match="2 system labels"):
        H.label_decodes(["Mirror", "HRED"], [decodes["Mirror"]])


def test_command_line_scores_answers(tmp_path: Path, capsys) -> None:
    from multiref.mirror.human_sheet import main

    key = tmp_path / "key.csv"
    key.write_text("item,method_pair,system,baseline,pair_id,first,second\n"
                   "q0001,Mirror vs. HRED,Mirror,HRED,7,Mirror,HRED\nq0002,Mirror vs. HRED,Mirror,HRED,8,HRED,Mirror\n")
    answers = tmp_path / "answers.csv"
    answers.write_text("item,answer\nq0001,1\nq0002,1\n")
    assert main([str(answers), str(key), "--out", str(tmp_path / "scores.csv")]) == 0
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert (scores["wins"].iloc[0], scores["losses"].iloc[0]) == (0.5, 0.5)
    answers.write_text("item,answer\nq0001,maybe\n")
    assert main([str(answers), str(key)]) == 2 and "maybe" in capsys.readouterr().err
