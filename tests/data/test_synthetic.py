"""The synthetic corpus: determinism, a valid known distribution, and samples that follow it."""

import itertools
import math
import random
import zipfile
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from multiref.data.dailydialog import filter_dialogues, read_corpus
from multiref.data.synthetic import SyntheticGrammar, generate, write_archive


def test_same_seed_same_bytes_other_seed_other_corpus(tmp_path: Path) -> None:
    a = write_archive(tmp_path / "a.zip", tmp_path / "a.parquet", 50, seed=1)
    b = write_archive(tmp_path / "b.zip", tmp_path / "b.parquet", 50, seed=1)
    c = write_archive(tmp_path / "c.zip", tmp_path / "c.parquet", 50, seed=2)
    assert a == b
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert (tmp_path / "a.zip").read_bytes() != (tmp_path / "c.zip").read_bytes()
    assert c["n_dialogues"] == 50


def test_archive_is_read_by_the_dailydialog_reader(tmp_path: Path) -> None:
    write_archive(tmp_path / "s.zip", tmp_path / "s.parquet", 40, seed=3)
    with zipfile.ZipFile(tmp_path / "s.zip") as zf:
        zf.extractall(tmp_path)
    dialogues = read_corpus(tmp_path / "ijcnlp_dailydialog")
    kept, report = filter_dialogues(dialogues, duplicate_threshold=1.0)
    assert len(kept) == 40 and report.n_label_mismatch == 0
    assert all(len(d.utterances) >= 2 for d in dialogues)


def test_distribution_is_normalised_and_one_to_many(tmp_path: Path) -> None:
    write_archive(tmp_path / "s.zip", tmp_path / "s.parquet", 10, seed=0)
    table = pq.read_table(tmp_path / "s.parquet").to_pandas()
    keys = [table["topic_id"], table["context"].fillna("<opening>")]
    sums = table.groupby(keys)["prob"].sum()
    assert ((sums - 1.0).abs() < 1e-9).all()
    support = table.groupby(keys)["response"].nunique()
    assert (support >= 2).mean() > 0.6  # most contexts admit several responses
    assert table["prob"].between(0, 1, inclusive="right").all()


def test_every_utterance_parses_to_one_template() -> None:
    grammar = SyntheticGrammar()
    texts = [text for t in grammar.templates.values() for text, _ in grammar.realisations(t)]
    assert len(texts) == len(set(texts)) == len(grammar.parse_table)


def test_samples_match_the_saved_distribution() -> None:
    """Empirical next-utterance frequencies agree with the saved probabilities (G-test per context)."""
    grammar = SyntheticGrammar()
    dialogues = generate(4000, seed=7, max_turns=40, grammar=grammar)
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for _, turns in dialogues:
        for (_, prev), (_, nxt) in itertools.pairwise(turns):
            counts[prev][nxt] += 1
    # Contexts seen fewer than 200 times are skipped (too few samples for the test to have power).
    checked = 0
    for prev, observed in counts.items():
        n = sum(observed.values())
        if n < 200:
            continue
        expected = grammar.next_distribution(prev)
        assert set(observed) <= set(expected), f"unexpected response after {prev!r}"
        g = 2 * sum(o * math.log(o / (n * expected[y])) for y, o in observed.items())
        dof = len(expected) - 1
        # generous bound (~p < 1e-4 for chi-square with dof degrees of freedom)
        assert g < dof + 6 * math.sqrt(2 * dof) + 15, f"samples after {prev!r} do not follow the distribution"
        checked += 1
    assert checked >= 10


def test_generator_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="n_dialogues"):
        generate(0, seed=1)
    with pytest.raises(ValueError, match="max_turns"):
        generate(5, seed=1, max_turns=1)


def test_grammar_rejects_bad_probabilities() -> None:
    graphs = {1: ([("a", 1.0)], {"a": ("Hi.", 1, 0, [("b", 0.7)]), "b": ("Bye.", 1, 0, [])})}
    with pytest.raises(ValueError, match="sum to 0.7"):
        SyntheticGrammar(graphs)


def test_sampling_uses_only_its_rng() -> None:
    random.seed(0)
    a = generate(20, seed=5)
    random.seed(1)
    b = generate(20, seed=5)
    assert [[u for _, u in t] for _, t in a] == [[u for _, u in t] for _, t in b]
