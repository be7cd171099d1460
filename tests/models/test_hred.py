"""HRED and its shared components: shapes, masking, decoding, learning, parameter arithmetic."""

import pytest
import torch
from hred_helpers import EOS, PAD, batch

from multiref.models.hred import HRED, HREDConfig, parameter_count
from multiref.models.layers import AdditiveAttention, LockedDropout


def tiny(dropout: float = 0.0) -> HRED:
    torch.manual_seed(0)
    return HRED(HREDConfig(vocab_size=30, embedding_dim=8, floor_dim=3, hidden=12, layers=1, dropout=dropout))


def test_authors_module_arithmetic() -> None:
    """Parameter count of the authors' modules at the paper's HRED dimensions with a 10,000 vocabulary.

    The paper reports 8.04 "M", which is 8,430,461 / 2^20 (docs/fidelity.md, M1)."""
    expected = (
        10000 * 200  # tied word embeddings
        + 2 * 3 * (500 * 200 + 500 * 500 + 2 * 500)  # biGRU sentence encoder
        + 2 * 30 + 530 * 500 + 500  # relative floor encoder
        + 3 * (500 * 500 + 500 * 500 + 2 * 500)  # dialogue GRU
        + 500 * 500 + 500  # enc2dec
        + 700 * 200 + 200  # decoder feat_fc
        + 3 * (500 * 200 + 500 * 500 + 2 * 500)  # decoder GRU
        + 2 * (500 * 500 + 500) + 500 + 1 + 1000 * 500 + 500  # additive attention
        + 500 * 200 + 200  # project_fc
        + 10000  # classifier bias
    )
    assert parameter_count(HRED(HREDConfig(vocab_size=10000))) == expected == 8_430_461


def test_loss_is_finite_and_ignores_padding() -> None:
    model = tiny().eval()
    x, x_floor, y, y_floor = batch()
    out = model(x, x_floor, y, y_floor)
    assert torch.isfinite(out["loss"]) and int(out["n_tokens"]) == 3 + 2
    # Whatever sits behind padding must not matter: change padded context words and response padding.
    x2, y2 = x.clone(), y.clone()
    x2[0, 2] = PAD
    y2[1, 3:] = PAD
    assert torch.allclose(model(x2, x_floor, y2, y_floor)["loss"], out["loss"])
    memory, mask, _ = model.encode(x, x_floor, y_floor)
    assert memory.shape == (2, 15, 12) and mask.sum() == (x != PAD).sum()


def test_floors_matter() -> None:
    model = tiny().eval()
    x, x_floor, y, y_floor = batch()
    swapped, kept = (model.encode(x, f, y_floor)[2] for f in (1 - x_floor, x_floor))
    assert not torch.allclose(swapped, kept)
    assert model(x, 1 - x_floor, y, y_floor)["loss"] != model(x, x_floor, y, y_floor)["loss"]


def test_greedy_decoding_shapes_and_padding_after_eos() -> None:
    model = tiny().eval()
    x, x_floor, _, y_floor = batch()
    ids = model.greedy(x, x_floor, y_floor, max_len=7)
    assert ids.shape[0] == 2 and ids.shape[1] <= 7
    for row in ids.tolist():
        if EOS in row:
            assert all(t == PAD for t in row[row.index(EOS) + 1 :])


def test_learns_a_toy_batch() -> None:
    model = tiny()
    x, x_floor, y, y_floor = batch()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = model(x, x_floor, y, y_floor)["loss"].item()
    for _ in range(60):
        loss = model(x, x_floor, y, y_floor)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first / 5
    model.eval()
    assert model.greedy(x, x_floor, y_floor, max_len=5)[0].tolist()[:3] == [14, 15, EOS]


def test_attention_ignores_masked_memory_and_survives_empty_rows() -> None:
    torch.manual_seed(0)
    attn = AdditiveAttention(4, 6, 5)
    query, memory = torch.randn(2, 3, 4), torch.randn(2, 7, 6)
    mask = torch.tensor([[True] * 4 + [False] * 3, [False] * 7])
    out, weights = attn(query, memory, mask)
    assert torch.all(weights[0, :, 4:] == 0) and torch.allclose(weights[0].sum(-1), torch.ones(3))
    assert torch.all(weights[1] == 0) and torch.isfinite(out).all()
    memory2 = memory.clone()
    memory2[0, 4:] = 100.0
    assert torch.allclose(attn(query, memory2, mask)[0][0], out[0])


def test_locked_dropout_shares_one_mask_over_batch_and_time() -> None:
    torch.manual_seed(0)
    drop = LockedDropout(0.5).train()
    y = drop(torch.ones(4, 6, 10))
    assert torch.all(y == y[0:1, 0:1])  # the same mask everywhere, as the authors' implementation
    assert torch.equal(drop.eval()(torch.ones(2, 3)), torch.ones(2, 3))


@pytest.mark.parametrize(("hidden", "layers"), [(12, 2), (16, 1)])
def test_sizes_are_parameters(hidden: int, layers: int) -> None:
    model = HRED(HREDConfig(vocab_size=30, embedding_dim=8, floor_dim=3, hidden=hidden, layers=layers, dropout=0.0))
    x, x_floor, y, y_floor = batch()
    assert torch.isfinite(model(x, x_floor, y, y_floor)["loss"])
    assert model.initial_state(torch.zeros(2, hidden)).shape == (layers, 2, hidden)
