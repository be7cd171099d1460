"""VHRED-MBoW draws `references` of a context's references at each training step, as the authors' DataSource."""

import pytest
import torch

from multiref.models.vhred_mbow import VHREDMBoW, VHREDMBoWConfig, draw_references

PAD = 0


def references(b: int, k: int, t: int, empty: int = 0) -> torch.Tensor:
    """[b, k, t] distinct references (row j of context i starts with token 10 + i*k + j); the last ``empty`` rows
    of every context are all padding."""
    y = torch.full((b, k, t), PAD, dtype=torch.long)
    for i in range(b):
        for j in range(k - empty):
            y[i, j, :2] = torch.tensor([10 + i * k + j, 3])
    return y


def test_draws_n_distinct_present_references_uniformly() -> None:
    y = references(4, 6, 5, empty=2)
    torch.manual_seed(0)
    counts = torch.zeros(4, 6)
    for _ in range(400):
        got = draw_references(y, 2, PAD)
        assert got.shape == (4, 2, 5)
        first = got[..., 0]
        assert (first != PAD).all(), "an absent reference was drawn while present ones were left"
        for i in range(4):
            rows = first[i].tolist()
            assert len(set(rows)) == 2 and all(10 + i * 6 <= r < 10 + i * 6 + 4 for r in rows)
            for r in rows:
                counts[i, r - 10 - i * 6] += 1
    # each of the 4 present references is drawn half of the time (2 of 4)
    assert torch.allclose(counts[:, :4] / 400, torch.full((4, 4), 0.5), atol=0.1)
    assert counts[:, 4:].sum() == 0


def test_fewer_references_than_n_keeps_them_all() -> None:
    y = references(2, 3, 4)
    got = draw_references(y, 20, PAD)
    assert got.shape == y.shape
    assert sorted(got[0, :, 0].tolist()) == sorted(y[0, :, 0].tolist())


def small(references: int | None) -> VHREDMBoW:
    cfg = VHREDMBoWConfig(vocab_size=40, pad_id=PAD, bos_id=1, eos_id=2, embedding_dim=8, floor_dim=4, hidden=8,
                          latent_dim=4, references=references)
    return VHREDMBoW(cfg)


def test_training_uses_n_references_per_context_and_evaluation_all() -> None:
    torch.manual_seed(1)
    model = small(references=2)
    x = torch.randint(3, 40, (3, 2, 4))
    x_floor = torch.zeros(3, 2, dtype=torch.long)
    y = references(3, 5, 4)
    y_floor = torch.zeros(3, dtype=torch.long)
    seen = []
    model.decoder.register_forward_hook(lambda module, args, out: seen.append(args[0].shape[0]))
    model.train()(x, x_floor, y, y_floor)
    model.eval()(x, x_floor, y, y_floor)
    assert seen == [3 * 2, 3 * 5]  # 2 references per context in training; every reference when evaluating
    seen.clear()
    every = small(references=None)
    every.decoder.register_forward_hook(lambda module, args, out: seen.append(args[0].shape[0]))
    every.train()(x, x_floor, y, y_floor)
    assert seen == [3 * 5]


def test_references_must_be_positive() -> None:
    with pytest.raises(ValueError, match="references must be at least 1"):
        small(references=0)
