"""Batched beam search over any autoregressive step function.

The caller supplies ``step(tokens, state) -> (log_probs, new_state)``: ``tokens`` [N] are the last
token of each of the N = batch_size * beam hypotheses (batch-major: row ``b * beam + k`` is hypothesis
k of batch entry b), ``log_probs`` [N, V] their next-token log-probabilities. ``state`` is a tensor, or
a (nested) tuple / list / dict of tensors (``None`` leaves are allowed), whose dim 0 indexes the rows;
it is given with dim 0 = batch_size, repeated ``beam`` times here, and reordered with ``index_select``
along dim 0 after every step so that row i always belongs to hypothesis i.

The search is the standard one (fairseq / OpenNMT without length penalty):

- a hypothesis's score is its total log-probability; there is **no length normalisation** (OpenNMT's
  default, ``length_penalty none``), so the final ranking prefers shorter responses when they are as
  likely token for token;
- at each step the ``2 * beam`` best extensions of the live hypotheses are ranked; those that end in
  ``</s>`` within the first ``beam`` ranks are finished and set aside, and the ``beam`` best that do not
  end in ``</s>`` stay live, so the live beam is always full;
- ``</s>`` is forbidden until a hypothesis has ``min_len`` tokens (so finished hypotheses have at least
  ``min_len`` tokens besides ``</s>``; OpenNMT 0.x, which the Mirror authors use, counts ``<s>`` in its
  ``min_length``, so its ``min_length=3`` allows two-token responses);
- the tokens of ``ban_first`` are forbidden as the first token (the Mirror authors' beam gives ``<unk>`` a
  score of -100000 at the first step, whatever its options: ``onmt/translate/Beam.py:415-433`` of
  cszmli/mirror-sigir; the models pass their ``<unk>`` here);
- a batch entry is done when ``beam`` hypotheses are finished, or, earlier, when ``n_best`` are
  finished and none of the live hypotheses can still beat the ``n_best``-th of them (log-probabilities
  only decrease, so continuing could not change the result); after ``max_len`` steps the live
  hypotheses of entries not yet done join the finished ones as unfinished candidates (``finished`` is
  False; they have ``max_len`` tokens, none of them ``</s>``), as OpenNMT does at its maximum length;
- the ``n_best`` candidates with the highest total log-probability are returned, best first.

``first_finished=True`` reproduces the Mirror authors' beam (``onmt/translate/Beam.py`` of
cszmli/mirror-sigir without its DC options): every finished hypothesis gets the same score 0, and a
stable sort then returns the hypotheses **in the order in which they finished** (within one step, by
log-probability), not by log-probability; unfinished ones only fill up when fewer than ``n_best``
finished. The search then stops as soon as ``n_best`` hypotheses have finished, since nothing later can
change that answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

State = Any  # a tensor, or a nested tuple / list / dict of tensors (dim 0 = rows), or None
StepFn = Callable[[Tensor, State], tuple[Tensor, State]]


@dataclass(frozen=True)
class Hypothesis:
    ids: tuple[int, ...]  # the generated tokens, without <s> and </s>
    logprob: float  # total log-probability of the tokens (and of </s> when finished)
    finished: bool  # whether it ended with </s> (False: cut at max_len)


def map_state(fn: Callable[[Tensor], Tensor], state: State) -> State:
    """Apply ``fn`` to every tensor of a (nested) state, keeping its structure."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return fn(state)
    if isinstance(state, dict):
        return {k: map_state(fn, v) for k, v in state.items()}
    if isinstance(state, tuple) and hasattr(state, "_fields"):  # a NamedTuple
        return type(state)(*(map_state(fn, v) for v in state))
    if isinstance(state, (tuple, list)):
        return type(state)(map_state(fn, v) for v in state)
    raise TypeError(f"beam search state must be tensors in tuples/lists/dicts, got {type(state).__name__}")


def beam_search(
    step: StepFn,
    state: State,
    batch_size: int,
    bos_id: int,
    eos_id: int,
    beam: int = 10,
    max_len: int = 40,
    min_len: int = 3,
    n_best: int = 1,
    first_finished: bool = False,
    ban_first: Sequence[int] = (),
) -> list[list[Hypothesis]]:
    """The ``n_best`` best hypotheses of each batch entry, best first (see the module docstring)."""
    if beam < 1 or not 1 <= n_best <= beam:
        raise ValueError(f"beam search needs beam >= 1 and 1 <= n_best <= beam, got beam={beam}, n_best={n_best}")
    if max_len < 1 or min_len < 0:
        raise ValueError(f"beam search needs max_len >= 1 and min_len >= 0, got max_len={max_len}, min_len={min_len}")
    state = map_state(lambda t: t.repeat_interleave(beam, dim=0), state)
    device = _device(state)
    n = batch_size * beam
    tokens = torch.full((n,), bos_id, dtype=torch.long, device=device)
    # Only the first live hypothesis of each entry is real at the start (the others would duplicate it).
    scores = torch.full((batch_size, beam), float("-inf"), device=device)
    scores[:, 0] = 0.0
    seqs = torch.zeros((batch_size, beam, 0), dtype=torch.long, device=device)
    finished: list[list[Hypothesis]] = [[] for _ in range(batch_size)]
    done = [False] * batch_size
    base = torch.arange(batch_size, device=device).unsqueeze(1) * beam  # [B, 1] first row of each entry
    for t in range(max_len):
        log_probs, state = step(tokens, state)
        vocab = log_probs.size(-1)
        if vocab < 2:
            raise ValueError(f"beam search needs a vocabulary of at least 2 tokens, got {vocab}")
        log_probs = log_probs.view(batch_size, beam, vocab).float()
        if t < min_len or (t == 0 and ban_first):
            log_probs = log_probs.clone()
            if t < min_len:
                log_probs[..., eos_id] = float("-inf")
            if t == 0:
                log_probs[..., list(ban_first)] = float("-inf")
        candidates = (scores.unsqueeze(-1) + log_probs).view(batch_size, beam * vocab)
        k = min(2 * beam, beam * vocab)
        top_scores, top_index = candidates.topk(k, dim=-1)  # [B, k], best first
        parent, token = top_index // vocab, top_index % vocab
        is_eos = token == eos_id
        rank = torch.arange(k, device=device).expand(batch_size, k)
        # Finished: </s> among the first `beam` ranks with a finite score (the others are forbidden/pruned).
        ending = is_eos & (rank < beam) & torch.isfinite(top_scores)
        if ending.any():
            rows, cols = ending.nonzero(as_tuple=True)
            prefixes = seqs[rows, parent[rows, cols]].tolist()
            for b, ids, lp in zip(rows.tolist(), prefixes, top_scores[rows, cols].tolist(), strict=True):
                if not done[b]:
                    finished[b].append(Hypothesis(tuple(ids), lp, True))
        # Live: the `beam` best extensions that do not end in </s> (at most `beam` of the 2*beam do).
        order = (is_eos.long() * k + rank).argsort(dim=-1)[:, :beam]
        scores = top_scores.gather(1, order)
        parent, token = parent.gather(1, order), token.gather(1, order)
        seqs = torch.cat([seqs.gather(1, parent.unsqueeze(-1).expand(-1, -1, seqs.size(-1))), token.unsqueeze(-1)], dim=-1)
        rows_index = (base + parent).view(-1)
        state = map_state(lambda s, index=rows_index: s.index_select(0, index), state)
        tokens = token.view(-1)
        _mark_done(finished, done, scores, beam, n_best, first_finished)
        if all(done):
            break
    return _ranked(finished, done, seqs, scores, n_best, first_finished)


def _mark_done(finished: list[list[Hypothesis]], done: list[bool], scores: torch.Tensor, beam: int, n_best: int,
               first_finished: bool) -> None:
    """Mark the entries whose search is over (``n_best`` finished, or ``beam`` finished, or no live hypothesis can
    beat the ``n_best``-th finished one) and stop them producing candidates."""
    best_live = scores.max(dim=1).values.tolist()
    for b, got in enumerate(finished):
        if done[b]:
            continue
        if first_finished:
            done[b] = len(got) >= n_best
        else:
            kth = sorted((h.logprob for h in got), reverse=True)[n_best - 1] if len(got) >= n_best else None
            done[b] = len(got) >= beam or (kth is not None and kth >= best_live[b])
        if done[b]:
            scores[b] = float("-inf")  # stop producing candidates for this entry


def _ranked(finished: list[list[Hypothesis]], done: list[bool], seqs: torch.Tensor, scores: torch.Tensor, n_best: int,
            first_finished: bool) -> list[list[Hypothesis]]:
    """The ``n_best`` hypotheses of each entry: the finished ones and, for an unfinished entry, its live ones."""
    out = []
    live_ids, live_scores = seqs.tolist(), scores.tolist()
    for b, got in enumerate(finished):
        live = [] if done[b] else [Hypothesis(tuple(ids), lp, False) for ids, lp in zip(live_ids[b], live_scores[b], strict=True) if lp > float("-inf")]
        if first_finished:
            ranked = got + sorted(live, key=lambda h: -h.logprob)
        else:
            ranked = sorted(got + live, key=lambda h: -h.logprob)  # stable: earlier finished first on ties
        out.append(ranked[:n_best])
    return out


def _device(state: State) -> torch.device:
    found: list[torch.device] = []
    map_state(lambda t: found.append(t.device) or t, state)
    return found[0] if found else torch.device("cpu")


def hypotheses_to_ids(hyps: list[Hypothesis], eos_id: int, pad_id: int, device: torch.device | str = "cpu") -> Tensor:
    """One hypothesis per row: its ids, ``</s>`` when finished, then padding ([B, longest], at least 1 column)
    -- the layout of the models' greedy decoding."""
    rows = [list(h.ids) + ([eos_id] if h.finished else []) for h in hyps]
    out = torch.full((len(rows), max([len(r) for r in rows] + [1])), pad_id, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out.to(device)
