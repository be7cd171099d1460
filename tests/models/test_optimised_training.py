"""The optimised training path (fused additive attention, hand-differentiated GRUs) gives the plain formulation's
scores, outputs, losses and gradients."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from multiref.models.data import Example, collate
from multiref.models.fast_gru import gru
from multiref.models.fused_attention import additive_scores
from multiref.models.hred import HRED, HREDConfig
from multiref.models.layers import AdditiveAttention, set_optimised
from multiref.models.vhred import VHRED, VHREDConfig


def plain_scores(qp: torch.Tensor, p: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return torch.tanh(qp.unsqueeze(2) + p.unsqueeze(1)) @ w


@pytest.mark.parametrize("budget", [1, 50, 1 << 18])
def test_scores_and_their_gradients_match_the_formula(budget: int) -> None:
    """Chunks of one query (budget 1), of a few, or whole rows; rows cut to their lengths, 0 beyond."""
    torch.manual_seed(0)
    qp, p, w = torch.randn(3, 5, 4, dtype=torch.float64), torch.randn(3, 6, 4, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    q_len, k_len = [5, 2, 0], [6, 3, 4]
    expected = plain_scores(qp, p, w)
    got = additive_scores(qp, p, w, q_len, k_len, budget)
    for b in range(3):
        assert torch.allclose(got[b, : q_len[b], : k_len[b]], expected[b, : q_len[b], : k_len[b]])
        assert torch.all(got[b, q_len[b] :] == 0) and torch.all(got[b, :, k_len[b] :] == 0)
    inputs = tuple(t.clone().requires_grad_() for t in (qp, p, w))
    assert torch.autograd.gradcheck(lambda a, c, e: additive_scores(a, c, e, q_len, k_len, budget), inputs)


def attention_pair() -> tuple[AdditiveAttention, AdditiveAttention]:
    torch.manual_seed(0)
    fused = AdditiveAttention(6, 5, 7).double()
    plain = AdditiveAttention(6, 5, 7).double()
    plain.load_state_dict(fused.state_dict())
    plain.optimised = False
    return fused, plain


def test_attention_outputs_weights_and_gradients_match_the_plain_path() -> None:
    fused, plain = attention_pair()
    query, memory = torch.randn(3, 4, 6, dtype=torch.float64), torch.randn(3, 9, 5, dtype=torch.float64)
    mask = torch.rand(3, 9) < 0.5
    mask[0, 3] = True
    mask[2] = False  # nothing to attend: zero weights on both paths
    results = []
    for module in (fused, plain):
        q, m = query.clone().requires_grad_(), memory.clone().requires_grad_()
        out, weights = module(q, m, mask)
        (out.sin().sum() + (weights * torch.arange(9.0, dtype=torch.float64)).sum()).backward()
        results.append([out, weights, q.grad, m.grad, *(p.grad for p in module.parameters())])
    for a, b in zip(*results, strict=True):
        assert torch.allclose(a, b, atol=1e-12)
    assert torch.all(results[0][1][2] == 0)


def test_query_mask_skips_queries_after_the_last_needed_one() -> None:
    fused, plain = attention_pair()
    query, memory = torch.randn(2, 4, 6, dtype=torch.float64), torch.randn(2, 5, 5, dtype=torch.float64)
    mask = torch.ones(2, 5, dtype=torch.bool)
    needed = torch.tensor([[True, True, False, False], [False, False, False, False]])
    out, weights = fused(query, memory, mask, needed)
    reference, _ = plain(query, memory, mask, needed)  # the plain path ignores the hint
    assert torch.allclose(out[0, :2], reference[0, :2])
    assert torch.all(weights[0, 2:] == 0) and torch.all(weights[1] == 0)


def random_batch(g: torch.Generator, size: int, vocab: int) -> tuple[torch.Tensor, ...]:
    """Dialogues of 1-4 turns of 1-9 ids and responses of 2-9 ids: padding everywhere, as in training."""
    def utt(lo: int) -> tuple[int, ...]:
        return tuple(torch.randint(3, vocab, (int(torch.randint(lo, 10, (1,), generator=g)),), generator=g).tolist())

    examples = [Example(tuple(utt(1) for _ in range(int(torch.randint(1, 5, (1,), generator=g)))), (0, 1, 0, 1)[:4], (1, *utt(0), 2), 1)
                for _ in range(size)]
    return collate([Example(e.context, e.floors[: len(e.context)], e.response, e.response_floor) for e in examples], 0)


@pytest.mark.parametrize("model_cls", ["hred", "vhred"])
def test_models_train_to_the_same_loss_and_gradients_as_the_plain_formulation(model_cls: str) -> None:
    """Dropout on, the same random draws: loss to 1e-5, every gradient to 1e-4 (float32)."""
    def make() -> torch.nn.Module:
        torch.manual_seed(0)
        if model_cls == "hred":
            return HRED(HREDConfig(vocab_size=300, embedding_dim=24, floor_dim=5, hidden=48, dropout=0.2))
        return VHRED(VHREDConfig(vocab_size=300, embedding_dim=24, floor_dim=5, hidden=48, dropout=0.2, latent_dim=16, prior="lgm", components=3))

    fused, plain = make().train(), make().train()
    set_optimised(plain, False)
    tensors = random_batch(torch.Generator().manual_seed(3), 12, 300)
    losses, grads = [], []
    for model in (fused, plain):
        torch.manual_seed(1)
        loss = model(*tensors, step=500)["loss"]
        loss.backward()
        losses.append(loss.item())
        grads.append({n: p.grad for n, p in model.named_parameters()})
    assert abs(losses[0] - losses[1]) <= 1e-5
    for name, grad in grads[0].items():
        assert torch.allclose(grad, grads[1][name], rtol=0, atol=1e-4), name
    assert fused.state_dict().keys() == plain.state_dict().keys()


@pytest.mark.parametrize(("layers", "bidirectional", "with_h0"), [(1, True, False), (2, True, False), (2, False, True)])
def test_gru_matches_the_packed_nn_gru(layers: int, bidirectional: bool, with_h0: bool) -> None:
    """Outputs (0 after each end), final states and every gradient, against pack + nn.GRU + pad (float64)."""
    torch.manual_seed(0)
    rnn = torch.nn.GRU(5, 7, layers, batch_first=True, bidirectional=bidirectional).double()
    dirs = 2 if bidirectional else 1
    x = torch.randn(6, 8, 5, dtype=torch.float64)
    lengths = torch.tensor([3, 8, 1, 5, 5, 2])
    h0 = torch.randn(layers * dirs, 6, 7, dtype=torch.float64) if with_h0 else None
    results = []
    for fast in (True, False):
        rnn.zero_grad()
        xi = x.clone().requires_grad_()
        hi = None if h0 is None else h0.clone().requires_grad_()
        if fast:
            out, final = gru(rnn, xi, lengths, hi)
        else:
            packed = pack_padded_sequence(xi, lengths, batch_first=True, enforce_sorted=False)
            out, final = rnn(packed) if hi is None else rnn(packed, hi)
            out = pad_packed_sequence(out, batch_first=True, total_length=8)[0]
        (out.sin().sum() + final.cos().sum()).backward()
        results.append([out, final, xi.grad, *([] if hi is None else [hi.grad]), *(p.grad for p in rnn.parameters())])
    for a, b in zip(*results, strict=True):
        assert torch.allclose(a, b, atol=1e-10)


def test_under_cpu_autocast_the_plain_path_trains_in_bf16() -> None:
    """bf16 autocast on the CPU (bench_train --dtype bf16, gpu_check --cpu): the optimised path's explicit fp32
    products would mix dtypes, so the model falls back to the plain path and trains."""
    torch.manual_seed(0)
    model = HRED(HREDConfig(vocab_size=300, embedding_dim=24, floor_dim=5, hidden=48, dropout=0.2)).train()
    tensors = random_batch(torch.Generator().manual_seed(3), 8, 300)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(*tensors, step=0)["loss"]
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in model.parameters() if p.requires_grad)
