"""Beam search (multiref.models.beam) against exhaustive search on a tiny table-driven model."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from multiref.models.beam import Hypothesis, beam_search

BOS, EOS, V = 0, 1, 5


def make_model(seed: int, vocab: int = V, rows: int = 3) -> tuple[torch.Tensor, object]:
    """log p(next | last token, (offset + sum of the earlier inputs) mod rows, position parity) from a
    fixed random table. The state is a nested structure (the inputs so far and a per-entry offset) that
    the distribution depends on, so a wrong reordering of the state changes the scores."""
    g = torch.Generator().manual_seed(seed)
    table = (torch.randn((rows, 2, vocab, vocab), generator=g) * 2).log_softmax(-1)

    def step(tokens: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        hist, (offset,) = state["hist"], state["extra"]
        parity = hist.size(1) % 2
        out = table[(offset + hist.sum(1)) % rows, parity, tokens]
        return out, {"hist": torch.cat([hist, tokens.unsqueeze(1)], 1), "extra": (offset,)}

    return table, step


def init_state(offsets: list[int]) -> dict:
    return {"hist": torch.zeros((len(offsets), 0), dtype=torch.long), "extra": (torch.tensor(offsets),)}


def score(step, offset: int, ids: tuple[int, ...], with_eos: bool) -> float:
    state, token, total = init_state([offset]), torch.tensor([BOS]), 0.0
    for tok in (*ids, EOS) if with_eos else ids:
        lp, state = step(token, state)
        total += float(lp[0, tok])
        token = torch.tensor([tok])
    return total


def exhaustive(step, offset: int, max_len: int, min_len: int) -> list[Hypothesis]:
    """Every candidate: a prefix without </s> then </s> (>= min_len tokens, <= max_len steps), or
    max_len tokens without </s>; best first."""
    words = [w for w in range(V) if w != EOS]
    out = []
    for n in range(min_len, max_len):
        for ids in itertools.product(words, repeat=n):
            out.append(Hypothesis(ids, score(step, offset, ids, True), True))
    for ids in itertools.product(words, repeat=max_len):
        out.append(Hypothesis(ids, score(step, offset, ids, False), False))
    return sorted(out, key=lambda h: -h.logprob)


@pytest.fixture(autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wide_beam_is_exhaustive_search(seed: int) -> None:
    _, step = make_model(seed)
    max_len, min_len = 3, 1
    truth = exhaustive(step, 1, max_len, min_len)
    got = beam_search(step, init_state([1]), 1, BOS, EOS, beam=V**max_len, max_len=max_len, min_len=min_len, n_best=10)[0]
    assert [h.ids for h in got] == [h.ids for h in truth[:10]]  # n_best in order, best first
    assert [h.finished for h in got] == [h.finished for h in truth[:10]]
    for h, t in zip(got, truth, strict=False):
        assert h.logprob == pytest.approx(t.logprob, abs=1e-5)
    assert all(a.logprob >= b.logprob for a, b in itertools.pairwise(got))


def test_narrow_beam_is_valid_and_not_above_optimum() -> None:
    for seed in range(5):
        _, step = make_model(seed)
        best = exhaustive(step, 2, 4, 1)[0]
        for h in beam_search(step, init_state([2]), 1, BOS, EOS, beam=2, max_len=4, min_len=1, n_best=2)[0]:
            assert EOS not in h.ids and len(h.ids) <= 4
            assert (len(h.ids) == 4) if not h.finished else (len(h.ids) <= 3)
            assert h.logprob == pytest.approx(score(step, 2, h.ids, h.finished), abs=1e-5)
            assert h.logprob <= best.logprob + 1e-6


def test_min_len_forbids_early_end() -> None:
    # A model that wants to stop at once: without min_len the best response is empty.
    table = torch.full((V, V), -5.0)
    table[:, EOS] = 0.0
    table = table.log_softmax(-1)

    def step(tokens, state):
        return table[tokens], state

    assert beam_search(step, None, 1, BOS, EOS, beam=3, max_len=6, min_len=0)[0][0].ids == ()
    for min_len in (1, 3):
        hyps = beam_search(step, None, 1, BOS, EOS, beam=3, max_len=6, min_len=min_len, n_best=3)[0]
        assert all(len(h.ids) >= min_len and h.finished for h in hyps)
        assert len(hyps[0].ids) == min_len


def test_first_finished_differs_from_standard() -> None:
    # From <s>: </s> 0.1, a 0.5, b 0.4; after a or b: </s> 0.9. The first hypothesis to finish is the
    # empty one (log 0.1), the most probable is "a </s>" (log 0.45).
    p = torch.full((4, 4), 1e-9)
    p[BOS, EOS], p[BOS, 2], p[BOS, 3] = 0.1, 0.5, 0.4
    p[2:, EOS], p[2:, 2], p[2:, 3] = 0.9, 0.05, 0.05
    table = (p / p.sum(-1, keepdim=True)).log()

    def step(tokens, state):
        return table[tokens], state

    std = beam_search(step, None, 1, BOS, EOS, beam=3, max_len=5, min_len=0)[0][0]
    first = beam_search(step, None, 1, BOS, EOS, beam=3, max_len=5, min_len=0, first_finished=True)[0][0]
    assert std.ids == (2,) and std.logprob == pytest.approx(math.log(0.45), abs=1e-5)
    assert first.ids == () and first.logprob == pytest.approx(math.log(0.1), abs=1e-5)


def test_batched_equals_one_by_one() -> None:
    _, step = make_model(7)
    offsets = [0, 2, 1]
    batched = beam_search(step, init_state(offsets), 3, BOS, EOS, beam=3, max_len=5, min_len=2, n_best=3)
    for o, got in zip(offsets, batched, strict=True):
        alone = beam_search(step, init_state([o]), 1, BOS, EOS, beam=3, max_len=5, min_len=2, n_best=3)[0]
        assert [(h.ids, h.finished) for h in got] == [(h.ids, h.finished) for h in alone]
        assert [h.logprob for h in got] == pytest.approx([h.logprob for h in alone], abs=1e-6)


def test_unfinished_at_max_len_and_bad_arguments() -> None:
    table = torch.zeros((V, V))
    table[:, EOS] = -50.0
    table = table.log_softmax(-1)

    def step(tokens, state):
        return table[tokens], state

    h = beam_search(step, None, 2, BOS, EOS, beam=2, max_len=3, min_len=0)
    assert all(len(r[0].ids) == 3 and not r[0].finished for r in h)
    with pytest.raises(ValueError, match="n_best"):
        beam_search(step, None, 1, BOS, EOS, beam=2, n_best=3)
