"""The routes of the nucleus (top candidates, bracket, full sort) find TopPLogitsWarper's nucleus, tied
boundaries included, and draw the same token from the same uniform number."""

import pytest
import torch
from transformers.generation.logits_process import TopPLogitsWarper

from multiref.teacher.nucleus import _bracket_route, _top_route, nucleus_mask, nucleus_sample

VOCAB = 50264  # GPT-2's
ROUTES = [{}, {"widths": ()}, {"bracket": False}, {"widths": (), "bracket": False}]  # last: the full sort only


def reference(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    return torch.isfinite(TopPLogitsWarper(top_p=top_p)(None, logits.clone()))


def assert_nucleus(mask: torch.Tensor, logits: torch.Tensor, top_p: float) -> None:
    """``mask`` is TopPLogitsWarper's nucleus, except for tokens whose cumulative mass in its ascending sort is
    within float rounding of 1 - top_p (the routes' softmax sums the row in another order than the sorted one)."""
    expected = reference(logits, top_p)
    differ = mask != expected
    if differ.any():
        sorted_logits, order = torch.sort(logits)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        at_token = torch.empty_like(cumulative).scatter_(-1, order, cumulative)
        assert (at_token[differ] - (1 - top_p)).abs().max() < 2e-6, "a token away from the boundary differs"
        assert differ.sum(-1).max() <= 1
    assert differ.any(-1).float().mean() <= 0.05


def peaked(rows: int, head: int, seed: int, head_mass: float = 0.97) -> torch.Tensor:
    """Rows of GPT-2's vocabulary whose ``head`` random tokens hold about ``head_mass``: the nucleus at top-p 0.95
    is a little under ``head`` tokens."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, VOCAB, generator=g) * 0.3
    lift = torch.log(torch.tensor(head_mass / (1 - head_mass) * (VOCAB - head) / head))
    heads = torch.rand(rows, VOCAB, generator=g).argsort(-1)[:, :head]
    return logits.scatter_add(1, heads, torch.full((rows, head), float(lift)))


@pytest.mark.parametrize("head", [20, 500, 5000, 0])  # top-64, top-1024, bracket (from a nucleus of ~5k and ~41k)
@pytest.mark.parametrize("top_p", [0.5, 0.95])
def test_every_route_finds_the_nucleus_of_transformers(head: int, top_p: float) -> None:
    logits = peaked(24, head, seed=head) if head else torch.randn(24, VOCAB, generator=torch.Generator().manual_seed(1)) * 0.65
    for route in ROUTES:
        assert_nucleus(nucleus_mask(logits, top_p, **route), logits, top_p)


def test_each_route_answers_the_rows_it_is_meant_for() -> None:
    """The top route answers a nucleus of > 64 tokens at width 1024 (not at 64), the bracket route a nucleus of
    thousands of tokens, so the tests above exercise them and not only the full sort."""
    probs = peaked(8, 500, seed=2).softmax(-1)
    total = probs.sum(-1, dtype=torch.float64)
    assert not _top_route(probs, total, 0.95, 64)[0].any()
    assert _top_route(probs, total, 0.95, 1024)[0].all()
    for logits in (peaked(8, 5000, seed=3), torch.randn(8, VOCAB) * 0.65):
        keep, done = _bracket_route(logits.softmax(-1), 0.95)
        assert done.all() and (keep.sum(-1) > 1024).all()


def tied_rows() -> list[tuple[torch.Tensor, float]]:
    """Rows whose nucleus boundary cuts a group of equal probabilities: which members are kept is then the
    order ``torch.sort`` gives the tied values."""
    top = torch.zeros(4, VOCAB)
    top[:, 100:104] = 10.0  # four tied tokens of 0.16 each above ~0.36 of flat tail: top-p 0.3 keeps two of them
    flat = torch.randint(0, 3, (4, VOCAB), generator=torch.Generator().manual_seed(0)).float() * 0.2
    coarse = (torch.randn(4, VOCAB, generator=torch.Generator().manual_seed(1)) * 0.65 * 20).round() / 20
    return [(top, 0.3), (flat, 0.95), (flat, 0.5), (coarse, 0.95)]


@pytest.mark.parametrize("case", range(4))
def test_ties_at_the_boundary_get_transformers_choice(case: int) -> None:
    logits, top_p = tied_rows()[case]
    expected = reference(logits, top_p)
    for route in ROUTES:
        mask = nucleus_mask(logits, top_p, **route)
        if case < 3:  # the boundary cuts a tie in every row: every row goes to the full sort
            assert torch.equal(mask, expected), route
        else:
            assert_nucleus(mask, logits, top_p)


def test_routes_do_not_answer_rows_with_a_tie_at_the_boundary() -> None:
    top, top_p = tied_rows()[0]
    probs = top.softmax(-1)
    assert not _top_route(probs, probs.sum(-1, dtype=torch.float64), top_p, 64)[0].any()
    flat, top_p = tied_rows()[1]
    assert not _bracket_route(flat.softmax(-1), top_p)[1].any()


@pytest.mark.parametrize("head", [20, 500, 5000, 0])
def test_every_route_draws_the_same_token_from_the_same_number(head: int) -> None:
    logits = peaked(32, head, seed=10 + head) if head else torch.randn(32, VOCAB) * 0.65
    draws = [nucleus_sample(logits, 0.95, 1.0, torch.Generator().manual_seed(5), **route) for route in ROUTES]
    assert all(torch.equal(draws[0], d) for d in draws[1:])
    assert nucleus_mask(logits, 0.95).gather(1, draws[0]).all()


def test_flat_rows_draw_with_the_nucleus_probabilities() -> None:
    """Many draws from one flat row of 5,000 tokens through the bracket route: the nucleus's tokens, in
    proportion to their renormalised probabilities (checked on the mass of the 2,000 most likely tokens)."""
    logits = (torch.randn(1, 5000, generator=torch.Generator().manual_seed(4)) * 0.65).expand(4000, 5000)
    assert _bracket_route(logits[:1].softmax(-1), 0.95)[1].all()
    draws = nucleus_sample(logits, 0.95, 1.0, torch.Generator().manual_seed(0)).squeeze(1)
    kept = reference(logits[:1], 0.95)[0]
    assert kept[draws].all()
    probs = logits[0].masked_fill(~kept, -float("inf")).softmax(-1)
    top = probs.topk(2000).indices
    observed = torch.isin(draws, top).float().mean()
    assert observed == pytest.approx(float(probs[top].sum()), abs=0.025)


def test_top_p_one_keeps_every_token() -> None:
    logits = torch.randn(3, VOCAB)
    assert nucleus_mask(logits, 1.0).all()
    draws = nucleus_sample(logits, 1.0, 1.0, torch.Generator().manual_seed(0))
    assert draws.shape == (3, 1)
