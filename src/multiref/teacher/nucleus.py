"""Top-p (nucleus) filtering and drawing without sorting the whole vocabulary.

The nucleus of a row is what ``transformers``' ``TopPLogitsWarper`` keeps: sort the probabilities in
ascending order, remove every token whose cumulative mass is <= ``1 - top_p``, keep at least the most
likely one. :func:`top_p_filter` is that computation itself (a full sort). :func:`nucleus_mask` finds the
same set from a part of the row only, by one of three routes, tried in this order for each row:

1. *top*: the row's ``k`` most likely tokens (``topk``, k = 64 then 1024) hold the nucleus (peaked rows:
   a trained teacher's nucleus is usually a few dozen tokens);
2. *bracket*: for flat rows (a random-weight model keeps ~80 % of a 50k vocabulary), a sorted subsample
   locates the boundary approximately; every token at or below a value ``lo`` is checked to be removed
   (its mass is <= ``1 - top_p``) and some token at or below ``hi`` to be kept, and only the tokens
   between ``lo`` and ``hi`` (a few hundred) are sorted to place the boundary exactly;
3. *sort*: the full sort of :func:`top_p_filter`, for the rows where neither route applies.

A route only answers for a row when its answer does not depend on the order of tied values: when the
last kept and the first removed token have equal probabilities, ``TopPLogitsWarper``'s choice between them
is whatever ``torch.sort`` returns, so such rows take the sort route and get exactly its answer. Apart
from that, the routes agree with the sort up to float rounding: cumulative masses are summed in float64
from the same float32 probabilities, but those come from one softmax over the row in vocabulary order,
whose normaliser may differ from the sorted row's in the last bit.

:func:`nucleus_sample` draws one token per row from the renormalised nucleus by inverse CDF over the
nucleus *in vocabulary order*; every route builds the same cumulative sums (the top route over its
candidates sorted by token id, the others over the masked row), so the token drawn for a given uniform
number does not depend on the route.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

TOP_WIDTHS = (64, 1024)  # candidates of the top route, widened in turn
SUBSAMPLE_STRIDE = 16  # the bracket route sorts every 16th probability of a row to locate its boundary


def top_p_filter(logits: Tensor, top_p: float, min_tokens_to_keep: int = 1) -> Tensor:
    """Set to -inf the logits outside the nucleus: the smallest set of most likely tokens whose
    probability mass exceeds ``top_p``. Same semantics as ``transformers.TopPLogitsWarper`` (ascending
    sort, tokens whose cumulative mass is <= 1 - top_p removed, at least ``min_tokens_to_keep`` kept)."""
    if top_p >= 1.0:
        return logits
    return logits.masked_fill(_sorted_removal(logits, top_p, min_tokens_to_keep), -float("inf"))


def _sorted_removal(logits: Tensor, top_p: float, min_tokens_to_keep: int = 1) -> Tensor:
    """The tokens ``TopPLogitsWarper`` removes (bool, the shape of ``logits``), computed as it does."""
    sorted_logits, sorted_indices = torch.sort(logits, descending=False)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove_sorted = cumulative <= (1 - top_p)
    remove_sorted[..., -min_tokens_to_keep:] = False
    return remove_sorted.scatter(-1, sorted_indices, remove_sorted)


def nucleus_mask(logits: Tensor, top_p: float, widths: Sequence[int] = TOP_WIDTHS, bracket: bool = True) -> Tensor:
    """The nucleus of each row (bool [rows, vocab]): ``torch.isfinite(top_p_filter(logits, top_p))`` computed
    by the routes of this module (``widths``: the top route's candidates; ``bracket``: whether the bracket
    route is tried). The routes are exposed for tests; sampling uses :func:`nucleus_sample`."""
    probs = logits.softmax(dim=-1)
    mask = torch.zeros_like(probs, dtype=torch.bool)
    for rows, keep, ids in _nucleus_parts(logits, probs, top_p, widths, bracket):
        if ids is None:
            mask[rows] = keep
        else:
            mask[rows] = mask[rows].scatter(1, ids, keep)
    return mask


def nucleus_sample(
    logits: Tensor,
    top_p: float,
    temperature: float,
    generator: torch.Generator,
    widths: Sequence[int] = TOP_WIDTHS,
    bracket: bool = True,
) -> Tensor:
    """One token per row [rows, 1] from the nucleus of ``softmax(logits / temperature)``, renormalised:
    the row's uniform number ``u`` (one ``torch.rand`` draw per row from ``generator``) picks the token whose
    interval of the nucleus's cumulative mass, in vocabulary order, holds ``u`` times that mass (much faster
    on CPU than ``torch.multinomial``). ``widths`` and ``bracket`` choose the routes (see the module)."""
    scaled = logits / temperature if temperature != 1.0 else logits
    probs = scaled.softmax(dim=-1)
    u = torch.rand((probs.size(0), 1), generator=generator, device=probs.device, dtype=probs.dtype)
    out = torch.empty((probs.size(0), 1), dtype=torch.long, device=probs.device)
    for rows, keep, ids in _nucleus_parts(scaled, probs, top_p, widths, bracket):
        if ids is None:
            out[rows] = _inverse_cdf(_take(probs, rows).masked_fill(~keep, 0.0), u[rows])
        else:
            out[rows] = ids.gather(1, _inverse_cdf(probs[rows].gather(1, ids).masked_fill(~keep, 0.0), u[rows]))
    return out


def _take(t: Tensor, rows: Tensor) -> Tensor:
    """``t[rows]``, without the copy when ``rows`` are all the rows in order."""
    if rows.numel() == t.size(0) and torch.equal(rows, torch.arange(t.size(0), device=rows.device)):
        return t
    return t[rows]


def _inverse_cdf(probs: Tensor, u: Tensor) -> Tensor:
    """The position [rows, 1] whose interval of the cumulated ``probs`` holds ``u`` times their sum (a
    position of zero probability is never returned)."""
    cdf = probs.cumsum(dim=-1)
    total = cdf[:, -1:]
    target = torch.minimum(u * total, torch.nextafter(total, torch.zeros_like(total)))  # u * total < total
    return torch.searchsorted(cdf, target, right=True)


Part = tuple[Tensor, Tensor, Tensor | None]  # rows; their nucleus (bool); its token ids (None: the whole row)


def _nucleus_parts(scaled: Tensor, probs: Tensor, top_p: float, widths: Sequence[int], bracket: bool) -> Iterator[Part]:
    """The nucleus of every row, by route: (rows, keep [len(rows), k], token ids [len(rows), k] in
    ascending order) for the top route, (rows, keep [len(rows), vocab], None) for the others."""
    vocab = probs.size(-1)
    todo = torch.arange(probs.size(0), device=probs.device)
    if top_p >= 1.0:
        yield todo, torch.ones_like(probs, dtype=torch.bool), None
        return
    total = probs.sum(dim=-1, dtype=torch.float64)
    passed = []  # rows whose top-k tokens cannot hold top_p, for a k of the next width: they skip the top route
    reach = None  # per row of todo: (mass of its top-k tokens, k, the k-th probability)
    for k in widths:
        if k >= vocab or not todo.numel():
            break
        if reach is not None:  # the top-k mass is at most the last width's mass plus (k - width) x its smallest
            mass, width, smallest = reach
            hopeless = mass + smallest.double() * (k - width) < top_p - 1e-4
            passed.append(todo[hopeless])
            todo = todo[~hopeless]
            if not todo.numel():
                break
        done, keep, ids, mass, smallest = _top_route(_take(probs, todo), total[todo], top_p, k)
        if done.any():
            yield todo[done], keep, ids
        todo, reach = todo[~done], (mass[~done], k, smallest[~done])
    todo = torch.cat([todo, *passed])
    if bracket and todo.numel() and SUBSAMPLE_STRIDE * 16 < vocab:
        keep, done = _bracket_route(_take(probs, todo), top_p)
        if done.any():
            yield todo[done], keep[done], None
        todo = todo[~done]
    if todo.numel():
        yield todo, ~_sorted_removal(scaled[todo], top_p), None


def _top_route(probs: Tensor, total: Tensor, top_p: float, k: int) -> tuple[Tensor, ...]:
    """The nucleus among each row's ``k`` most likely tokens. Returns which rows it answers (their boundary lies
    among the candidates, between unequal values), the nucleus of those rows (keep [done, k]) with its token ids
    ([done, k], ascending), and for every row the mass of its ``k`` most likely tokens and the ``k``-th probability."""
    vals, ids = probs.topk(k, dim=-1)  # descending
    # A token's ascending cumulative mass is the row's total minus the mass of the tokens more likely than it.
    cum = vals.double().cumsum(dim=-1)
    before = torch.cat([torch.zeros_like(cum[:, :1]), cum[:, :-1]], dim=1)
    keep = (total.unsqueeze(1) - before).float() > (1 - top_p)
    keep[:, 0] = True
    n_keep = keep.sum(dim=-1, keepdim=True)
    inside = n_keep < k
    last = vals.gather(1, (n_keep - 1).clamp(max=k - 1))
    first_out = vals.gather(1, n_keep.clamp(max=k - 1))
    done = (inside & (last != first_out)).squeeze(1)
    ids, order = ids[done].sort(dim=-1)
    return done, keep[done].gather(1, order), ids, cum[:, -1], vals[:, -1]


def _bracket_route(probs: Tensor, top_p: float) -> tuple[Tensor, Tensor]:
    """The nucleus of flat rows (keep [rows, vocab]) from a subsample-located bracket of values, and which
    rows it answers (the bracket holds the boundary, which falls between unequal values)."""
    rows = probs.size(0)
    limit = torch.tensor(1 - top_p, dtype=torch.float32, device=probs.device)
    lo, hi = _bracket(probs, float(limit))
    below = probs <= lo.unsqueeze(1)
    mass_below = probs.masked_fill(~below, 0.0).sum(dim=-1, dtype=torch.float64)
    r, c = (~below & (probs <= hi.unsqueeze(1))).nonzero(as_tuple=True)
    v = probs[r, c]
    order = ((r << 32) | v.view(torch.int32).long()).sort().indices  # by row, then by value (bits of floats >= 0)
    r, c, v = r[order], c[order], v[order]
    counts = torch.bincount(r, minlength=rows)
    end = counts.cumsum(0)
    running = torch.nn.functional.pad(v.double().cumsum(0), (1, 0))  # running[i]: the mass of the first i
    cum = (mass_below[r] + running[1:] - running[(end - counts)[r]]).float()  # ascending cumulative mass
    mass_within = running[end] - running[end - counts]
    # Every token <= lo is removed, and some token <= hi is kept: the boundary lies within the bracket.
    done = (mass_below.float() <= limit) & ((mass_below + mass_within).float() > limit)
    removed = cum <= limit
    n_removed = torch.bincount(r, weights=removed.double(), minlength=rows).long()
    if len(v):  # a tie across the boundary: the last removed and the first kept token of the bracket are equal
        last = (end - counts + n_removed - 1).clamp(0, len(v) - 1)
        first_kept = (end - counts + n_removed).clamp(0, len(v) - 1)
        done &= (n_removed == 0) | (v[last] != v[first_kept])
    keep = ~below
    keep[r[removed], c[removed]] = False
    return keep, done


def _bracket(probs: Tensor, limit: float) -> tuple[Tensor, Tensor]:
    """Values (lo, hi) per row that likely enclose the nucleus boundary: from every ``SUBSAMPLE_STRIDE``-th
    probability, sorted, its estimated ascending cumulative mass, and a margin of three standard deviations of
    the subsample's count (plus 8) on either side of the estimated crossing of ``limit``."""
    sub = probs[:, ::SUBSAMPLE_STRIDE].sort(dim=-1).values
    estimate = sub.double().cumsum(dim=-1) * (probs.size(-1) / sub.size(-1))
    crossing = (estimate <= limit).sum(dim=-1)
    margin = (3 * crossing.double().sqrt() + 8).long()
    width = sub.size(-1)
    lo_at, hi_at = crossing - margin - 1, crossing + margin
    lo = sub.gather(1, lo_at.clamp(0, width - 1).unsqueeze(1)).squeeze(1).masked_fill(lo_at < 0, -1.0)
    hi = sub.gather(1, hi_at.clamp(0, width - 1).unsqueeze(1)).squeeze(1).masked_fill(hi_at >= width, 2.0)
    return lo, hi
