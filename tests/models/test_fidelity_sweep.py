"""The authors' choices of issue 17 (docs/fidelity.md, Models and Mirror): the sentence encoder's word-encoding
layout, dropout between encoder GRU layers, the initialisation of each module, and the beam's ban on <unk> as
the first token."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hred_helpers import batch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from multiref.errors import ConfigError
from multiref.models import registry
from multiref.models.beam import beam_search
from multiref.models.data import Example, collate
from multiref.models.hred import HRED, HREDConfig
from multiref.models.layers import DialogueEncoder, SentenceEncoder
from multiref.models.mhred import MHRED, MHREDConfig
from multiref.models.mirror import Mirror, MirrorConfig
from multiref.models.seq2seq_attn import Seq2SeqAttn, Seq2SeqAttnConfig

PAD, BOS, EOS, UNK = 0, 1, 2, 3


@pytest.fixture(autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


def tiny_hred(**kw: object) -> HRED:
    torch.manual_seed(0)
    return HRED(HREDConfig(vocab_size=30, embedding_dim=8, floor_dim=3, hidden=12, layers=1, dropout=0.0, **kw))  # type: ignore[arg-type]


# -- word-encoding layout (the authors' submodules.py:88-89) --------------------------------------------------------


def authors_average(outputs: torch.Tensor, hidden: int) -> torch.Tensor:
    """The authors' DynamicRNN: ``unpacked_outputs.view(B, -1, hidden_dim, 2).mean(3)``."""
    return outputs.view(outputs.size(0), -1, hidden, 2).mean(3)


def directions_average(outputs: torch.Tensor, hidden: int) -> torch.Tensor:
    return outputs.view(outputs.size(0), -1, 2, hidden).mean(2)


def reference_hred_loss(m: HRED, x, x_floor, y, y_floor, average) -> torch.Tensor:
    """HRED's teacher-forced loss (eval mode: no dropout) written out from the model's weights with torch
    primitives, with the word encodings averaged by ``average``."""
    pad, (b, turns, width) = m.cfg.pad_id, x.shape
    emb = m.embedding.weight
    words = x.reshape(b * turns, width)
    lengths = (words != pad).sum(-1).clamp(min=1)
    packed = pack_padded_sequence(F.embedding(words, emb), lengths, batch_first=True, enforce_sorted=False)
    out, h_n = m.sentence_encoder.rnn(packed)
    out, _ = pad_packed_sequence(out, batch_first=True)  # the authors pad to the longest sentence only
    word_enc = average(out, m.sentence_encoder.hidden)
    word_enc = F.pad(word_enc, (0, 0, 0, width - word_enc.size(1)))
    fl = m.floor_encoder
    same = (x_floor == y_floor.unsqueeze(1)).long()
    sent = F.linear(torch.cat([h_n.mean(0).view(b, turns, -1), F.embedding(same, fl.embedding.weight)], -1), fl.linear.weight, fl.linear.bias)
    n_turns = ((x != pad).sum(-1) > 0).sum(-1).clamp(min=1)
    _, d_n = m.dialogue_encoder.rnn(pack_padded_sequence(sent, n_turns, batch_first=True, enforce_sorted=False))
    ctx = d_n.mean(0)
    dec = m.decoder
    h0 = F.linear(ctx, m.enc2dec.weight, m.enc2dec.bias).view(b, dec.layers, dec.hidden).transpose(0, 1).contiguous()
    inp = y[:, :-1]
    e = F.linear(torch.cat([F.embedding(inp, emb), ctx.unsqueeze(1).expand(-1, inp.size(1), -1)], -1), dec.feat_fc.weight, dec.feat_fc.bias)
    q, _ = dec.rnn(e, h0)
    a = dec.attention
    memory, mask = word_enc.reshape(b, turns * width, -1), (x != pad).view(b, turns * width)
    hid = torch.tanh(F.linear(memory, a.w_context.weight, a.w_context.bias).unsqueeze(1) + F.linear(q, a.w_query.weight, a.w_query.bias).unsqueeze(2))
    scores = F.linear(hid, a.w_emit.weight, a.w_emit.bias).squeeze(-1).masked_fill(~mask.unsqueeze(1), float("-inf"))
    attn = torch.nan_to_num(scores.softmax(-1), nan=0.0)
    o = torch.tanh(F.linear(torch.cat([attn @ memory, q], -1), a.linear_out.weight, a.linear_out.bias))
    logits = F.linear(F.linear(o, dec.project_fc.weight, dec.project_fc.bias), emb, dec.classifier.bias)
    return F.cross_entropy(logits.transpose(1, 2), y[:, 1:], ignore_index=pad, reduction="none").sum(1).mean()


def test_hred_loss_under_the_authors_layout_equals_their_view_mean() -> None:
    x, x_floor, y, y_floor = batch()
    model = tiny_hred().eval()
    assert model.cfg.word_average == "adjacent"  # the authors' layout is the default
    with torch.no_grad():
        loss = model(x, x_floor, y, y_floor)["loss"]
        authors = reference_hred_loss(model, x, x_floor, y, y_floor, authors_average)
        directions = reference_hred_loss(model, x, x_floor, y, y_floor, directions_average)
        assert loss == pytest.approx(float(authors), abs=1e-5)
        assert abs(float(authors) - float(directions)) > 1e-3  # the two layouts are different models
        # The flag keeps the mean of the two directions, with the same weights.
        flagged = tiny_hred(word_average="directions").eval()
        flagged.load_state_dict(model.state_dict())
        assert flagged(x, x_floor, y, y_floor)["loss"] == pytest.approx(float(directions), abs=1e-5)


def test_adjacent_layout_keeps_forward_and_backward_halves_apart() -> None:
    """Unit i of the authors' word encoding averages units 2i and 2i+1 of [forward; backward]: the first H/2 units
    of the first word read only the forward direction, so they ignore every later word."""
    torch.manual_seed(0)
    emb = torch.nn.Embedding(20, 6)
    enc = SentenceEncoder(emb, 8, 1, 0.0).eval()
    words = torch.tensor([[5, 6, 7], [5, 9, 11]])
    with torch.no_grad():
        out, _ = enc(words, torch.tensor([3, 3]))
        raw, _ = enc.rnn(emb(words))
    assert torch.allclose(out, (raw[..., 0::2] + raw[..., 1::2]) / 2)
    assert torch.allclose(out[0, 0, :4], out[1, 0, :4]) and not torch.allclose(out[0, 0, 4:], out[1, 0, 4:])
    directions = SentenceEncoder(emb, 8, 1, 0.0, word_average="directions").eval()
    directions.load_state_dict(enc.state_dict())
    with torch.no_grad():
        mixed, _ = directions(words, torch.tensor([3, 3]))
    assert torch.allclose(mixed, (raw[..., :8] + raw[..., 8:]) / 2)
    assert not torch.allclose(mixed[0, 0, :4], mixed[1, 0, :4])


def test_unknown_word_average_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="word_average must be one of"):
        registry.build("h", {"kind": "hred", "word_average": "sum"}, 30, {"pad_id": 0, "bos_id": 1, "eos_id": 2})


# -- dropout between GRU layers (the authors' encoders.py:32-39, submodules.py:48-55, decoders.py:116-122) ----------


@pytest.mark.parametrize(("layers", "flag", "expected"), [(2, True, 0.2), (1, True, 0.0), (2, False, 0.0)])
def test_encoder_grus_have_the_models_dropout_between_layers(layers: int, flag: bool, expected: float) -> None:
    model = HRED(HREDConfig(vocab_size=30, embedding_dim=8, hidden=12, layers=layers, dropout=0.2, encoder_layer_dropout=flag))
    assert model.sentence_encoder.rnn.dropout == expected and model.dialogue_encoder.rnn.dropout == expected
    assert model.decoder.rnn.dropout == 0.0  # the authors' decoder GRU has none


def test_layer_dropout_acts_in_training_only() -> None:
    torch.manual_seed(0)
    sentences, turns = torch.randn(3, 4, 10), torch.tensor([4, 2, 3])
    for flag in (True, False):
        enc = DialogueEncoder(10, 16, 2, 0.5, layer_dropout=flag)
        enc.drop.p = 0.0  # only the GRU's own dropout between its layers is left
        trained = enc.train()(sentences, turns)
        evaluated = enc.eval()(sentences, turns)
        assert torch.allclose(evaluated, enc.eval()(sentences, turns))
        assert torch.allclose(trained, evaluated) is not flag


# -- initialisation (the authors' utils.py:93-122 init_module_weights) -------------------------------------------------


def bound(t: torch.Tensor) -> float:
    return float(t.detach().abs().max())


def test_hred_initialisation_is_the_authors() -> None:
    model = tiny_hred()
    assert 0.07 < bound(model.enc2dec.weight) <= 0.08 and bound(model.enc2dec.bias) == 0.0  # hred.py:142
    cls_bias = model.decoder.classifier.bias  # tied classifier: PyTorch's default U(+-1/sqrt(in)) (decoders.py:153-154)
    assert 0.8 / 8**0.5 < bound(cls_bias) <= 1 / 8**0.5
    a = model.decoder.attention  # submodules.py:134-137
    for layer in (a.w_query, a.w_context, a.linear_out, model.decoder.feat_fc, model.decoder.project_fc, model.floor_encoder.linear):
        assert bound(layer.weight) <= 0.1 and bound(layer.bias) == 0.0
    assert bound(a.w_emit.weight) <= 0.1
    assert 0.5 < bound(model.floor_encoder.embedding.weight) <= 1.0  # submodules.py:254-255


def test_mhred_initialisation_is_the_authors() -> None:
    torch.manual_seed(0)
    model = MHRED(MHREDConfig(vocab_size=30, embedding_dim=8, floor_dim=3, hidden=12, mechanisms=5, mechanism_dim=16))
    assert 0.8 < bound(model.mechanisms.weight) <= 1.0  # an Embedding: always U(-1, 1) (mhred.py:161)
    assert 0.07 < bound(model.bilinear) <= 0.08  # a Parameter: U(-0.08, 0.08) (mhred.py:163)
    for layer in (model.ctx_to_mech, model.combine, model.enc2dec):  # mhred.py:162, 164-165
        assert 0.07 < bound(layer.weight) <= 0.08 and bound(layer.bias) == 0.0


# -- <unk> never starts a response (mirror-sigir onmt/translate/Beam.py:415-433) ----------------------------------------


def unk_loving_step(tokens: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """<unk> is the best token at every step, then word 4, </s> (vocabulary of 6)."""
    logits = torch.tensor([-9.0, -9.0, -2.0, 0.0, -1.0, -3.0]).expand(tokens.size(0), -1)
    return logits.log_softmax(-1), state


def test_beam_bans_the_given_tokens_at_the_first_step_only() -> None:
    state = torch.zeros(2, 1)
    free = beam_search(unk_loving_step, state, 2, BOS, EOS, beam=3, max_len=3, min_len=0, n_best=3)
    assert all(h[0].ids[0] == UNK for h in free)
    banned = beam_search(unk_loving_step, state, 2, BOS, EOS, beam=3, max_len=3, min_len=0, n_best=3, ban_first=(UNK,))
    for hyps in banned:
        assert all(not h.ids or h.ids[0] != UNK for h in hyps)
        assert any(UNK in h.ids[1:] for h in hyps)  # later steps may still produce it
    assert banned[0][0].ids[:2] == (4, UNK)


def seq2seq(**kw: object) -> Seq2SeqAttn:
    torch.manual_seed(0)
    model = Seq2SeqAttn(Seq2SeqAttnConfig(vocab_size=14, embedding_dim=8, hidden=16, layers=1, dropout=0.0, beam=3, min_len=1, **kw)).eval()  # type: ignore[arg-type]
    with torch.no_grad():
        model.decoder.generator.bias[UNK] = 50.0  # <unk> is the best word at every step
    return model


def mirror(**kw: object) -> Mirror:
    torch.manual_seed(0)
    model = Mirror(MirrorConfig(vocab_size=14, embedding_dim=8, hidden=12, layers=1, latent_dim=4, dropout=0.0, beam=3, min_len=1, **kw)).eval()  # type: ignore[arg-type]
    with torch.no_grad():
        model.dec1.generator.bias[UNK] = 50.0
    return model


def contexts() -> tuple[torch.Tensor, ...]:
    examples = [Example(((BOS, 5, 6, EOS), (BOS, 7, EOS)), (0, 1), (BOS, 8, EOS), 0),
                Example(((BOS, 9, EOS), (BOS, 10, 11, EOS)), (0, 1), (BOS, 12, EOS), 0)]
    return collate(examples, PAD)


@pytest.mark.parametrize("make", [seq2seq, mirror])
def test_models_never_start_a_response_with_unk_by_default(make) -> None:
    x, x_floor, _, y_floor = contexts()
    model = make()
    assert model.cfg.ban_unk_first and model.cfg.unk_id == UNK
    for ids in (model.generate(x, x_floor, y_floor, max_len=4), model.greedy(x, x_floor, y_floor, max_len=4)):
        assert (ids[:, 0] != UNK).all() and (ids[:, 1] == UNK).all()
    assert all(h.ids[0] != UNK for hyps in model.n_best(x, x_floor, y_floor, 3, max_len=4) for h in hyps)
    free = make(ban_unk_first=False)
    for ids in (free.generate(x, x_floor, y_floor, max_len=4), free.greedy(x, x_floor, y_floor, max_len=4)):
        assert (ids[:, 0] == UNK).all()
