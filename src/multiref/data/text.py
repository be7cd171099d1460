"""Text normalisation and tokenisation, as in the authors' DailyDialog preprocessing.

The steps follow ``standardize_english_text`` and ``clean_dd_text`` of ZHAOTING/dialog-processing
(see ``docs/fidelity.md``): ftfy repair, dash/ellipsis/backtick mapping, a character filter,
contraction splitting, punctuation padding, whitespace collapsing, lower-casing, two repairs for
contractions written with spaces around the apostrophe, and finally spaCy's English tokenizer rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import Any

import ftfy

_DASHES = re.compile(r"—|–|―")
_ELLIPSIS_CHAR = re.compile(r"…")
_BACKTICKS = re.compile(r"[`´]")
# Everything outside this set becomes a space (note: '-' , ':' and ';' are *not* kept).
_OUTSIDE_CHARSET = re.compile(r"[^A-Za-z0-9,!?/()'.<>\"]")
_THREE_DOTS = re.compile(r"\.{3}")
_CONTRACTIONS = ("'m", "'s", "'re", "n't", "'ve", "'d", "'ll")
_PADDED = ('"', ",", "!", "?")
_MULTISPACE = re.compile(r"\s{2,}")
# Repairs for contractions whose apostrophe was surrounded by spaces in the corpus ("don ' t").
_SPACED_NT = re.compile(r"(\w)n ' (t\W)")
_SPACED_CLITIC = re.compile(r" ' (m|s|re|ve|d|ll)(\W)")


def standardize(text: str) -> str:
    """Return ``text`` repaired, filtered, with contractions split, padded and lower-cased."""
    text = ftfy.fix_text(text)
    text = _DASHES.sub("-", text)
    text = _ELLIPSIS_CHAR.sub("...", text)
    text = _BACKTICKS.sub("'", text)
    text = _OUTSIDE_CHARSET.sub(" ", text)
    text = _THREE_DOTS.sub(" ...", text)
    for clitic in _CONTRACTIONS:
        text = text.replace(clitic, " " + clitic)
    for mark in _PADDED:
        text = text.replace(mark, f" {mark} ")
    text = _MULTISPACE.sub(" ", text)
    return text.strip().lower()


def clean(text: str) -> str:
    """:func:`standardize`, then rejoin contractions written as ``n ' t`` or ``' s``."""
    text = standardize(text)
    text = _SPACED_NT.sub(r"\1 n'\2", text)
    return _SPACED_CLITIC.sub(r" '\1\2", text)


@lru_cache(maxsize=1)
def _spacy_tokenizer() -> Any:
    """spaCy's rule-based English tokenizer (the same rules as ``en_core_web_sm``; no download)."""
    import spacy

    return spacy.blank("en").tokenizer


def tokenize(text: str) -> list[str]:
    """Normalise ``text`` with :func:`clean` and split it into spaCy tokens."""
    return [token.text for token in _spacy_tokenizer()(clean(text))]


def normalize(text: str) -> str:
    """The corpus form of an utterance: its tokens joined by single spaces."""
    return " ".join(tokenize(text))


def normalize_many(texts: Iterable[str], batch_size: int = 1000) -> Iterator[str]:
    """:func:`normalize` over many utterances, using spaCy's batched ``pipe`` for speed."""
    tokenizer = _spacy_tokenizer()
    cleaned = (clean(text) for text in texts)
    for doc in tokenizer.pipe(cleaned, batch_size=batch_size):
        yield " ".join(token.text for token in doc)
