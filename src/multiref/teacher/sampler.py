"""A fast nucleus sampler for N hypotheses per context.

Compared with ``generate(do_sample=True, num_return_sequences=N)``, which copies every context N
times before running it through the model, this sampler

- encodes each context once (a batch of left-padded contexts) and repeats its key/value cache N times;
- stops finished sequences: their tokens are ignored from ``</s>`` on, and they are dropped from the
  batch (with their cache rows) once they make up a quarter of it (``compact_at``);
- runs in bf16 on GPU when asked (``dtype``), fp32 on CPU;
- draws from a partial sort of each row's most likely tokens when they hold the nucleus
  (:func:`nucleus_sample`), not from a sort of the whole vocabulary;
- draws every token from one seeded ``torch.Generator``, so a fixed seed gives identical output.

Top-p filtering is :func:`top_p_filter`, the exact semantics of ``transformers``' ``TopPLogitsWarper``.
The stored log-probability of a hypothesis is the sum of its tokens' log-probabilities under the
unfiltered model distribution at temperature 1 (as the authors' ``sentence_prob``), ``</s>`` included
when the hypothesis finished.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from transformers import GPT2LMHeadModel


@dataclass(frozen=True)
class Hypothesis:
    token_ids: tuple[int, ...]  # without </s>
    logprob: float
    finished: bool  # ended with </s> (False: cut at max_new_tokens)


def check_sampling(top_p: float, temperature: float, n: int, max_new_tokens: int) -> None:
    """Reject impossible settings with a message naming the value."""
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if n < 1:
        raise ValueError(f"the number of hypotheses per context must be at least 1, got {n}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")


def top_p_filter(logits: torch.Tensor, top_p: float, min_tokens_to_keep: int = 1) -> torch.Tensor:
    """Set to -inf the logits outside the nucleus: the smallest set of most likely tokens whose
    probability mass exceeds ``top_p``. Same semantics as ``transformers.TopPLogitsWarper`` (ascending
    sort, tokens whose cumulative mass is <= 1 - top_p removed, at least ``min_tokens_to_keep`` kept)."""
    if top_p >= 1.0:
        return logits
    sorted_logits, sorted_indices = torch.sort(logits, descending=False)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove_sorted = cumulative <= (1 - top_p)
    remove_sorted[..., -min_tokens_to_keep:] = False
    remove = remove_sorted.scatter(-1, sorted_indices, remove_sorted)
    return logits.masked_fill(remove, -float("inf"))


def nucleus_sample(
    logits: torch.Tensor, top_p: float, temperature: float, generator: torch.Generator, candidates: int = 64
) -> torch.Tensor:
    """One token per row from the nucleus of ``softmax(logits / temperature)``: the tokens kept by
    :func:`top_p_filter`, renormalised, drawn by inverse CDF over the nucleus in ascending order (which is
    much faster on CPU than ``torch.multinomial``).

    A trained teacher's nucleus is usually a few dozen tokens of a 50k vocabulary, so the rows are first
    served from their ``candidates`` most likely tokens (a partial sort, ``topk``): a row whose top
    ``candidates`` tokens already hold ``top_p`` of its mass has its whole nucleus among them. Only the other
    rows (flat distributions) pay for a full sort. Both paths draw the same token from the same uniform
    number, so the result does not depend on ``candidates`` (up to float rounding at the nucleus boundary).
    """
    scaled = logits / temperature if temperature != 1.0 else logits
    rows, vocab = scaled.shape
    u = torch.rand((rows, 1), generator=generator, device=logits.device, dtype=scaled.dtype)
    out = torch.empty((rows, 1), dtype=torch.long, device=logits.device)
    todo = torch.arange(rows, device=logits.device)
    if top_p < 1.0 and candidates < vocab:
        probs = scaled.softmax(dim=-1)
        top, top_idx = probs.topk(candidates, dim=-1)  # descending
        mass = top.cumsum(dim=-1)
        covered = mass[:, -1] >= top_p
        if covered.any():
            top, top_idx, mass = top[covered], top_idx[covered], mass[covered]
            keep = (mass - top) < top_p  # mass of the more likely tokens below top_p: in the nucleus
            keep[:, 0] = True
            asc = top.masked_fill(~keep, 0.0).flip(-1)  # ascending, as the full sort's order
            out[covered] = _inverse_cdf(asc, top_idx.flip(-1), u[covered])
        todo = todo[~covered]
    if todo.numel():
        sorted_logits, sorted_indices = torch.sort(scaled[todo], descending=False)
        probs = sorted_logits.softmax(dim=-1)
        if top_p < 1.0:
            remove = probs.cumsum(dim=-1) <= (1 - top_p)
            remove[..., -1] = False
            probs = probs.masked_fill(remove, 0.0)
        out[todo] = _inverse_cdf(probs, sorted_indices, u[todo])
    return out


def _inverse_cdf(probs: torch.Tensor, indices: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The token ``indices[r, j]`` whose interval of the cumulated ``probs[r]`` holds ``u[r]`` times their sum."""
    cdf = probs.cumsum(dim=-1)
    pos = torch.searchsorted(cdf, u * cdf[:, -1:], right=True).clamp_(max=probs.size(-1) - 1)
    return indices.gather(-1, pos)


def _batches(items: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


@torch.inference_mode()
def sample(
    model: GPT2LMHeadModel,
    prefixes: Sequence[Sequence[int]],
    n: int,
    eos_id: int,
    pad_id: int,
    top_p: float = 0.95,
    temperature: float = 1.0,
    max_new_tokens: int = 40,
    seed: int = 0,
    batch_contexts: int = 32,
    dtype: torch.dtype | None = None,
    compact_at: float = 0.25,
) -> list[list[Hypothesis]]:
    """``n`` nucleus-sampled continuations of each prefix; returns them per prefix, in sampling order.

    Finished rows are dropped from the batch once they make up ``compact_at`` of it (0 drops them at
    every step); until then they ride along and their tokens are ignored.
    """
    check_sampling(top_p, temperature, n, max_new_tokens)
    device = next(model.parameters()).device
    limit = model.config.n_positions
    for i, prefix in enumerate(prefixes):
        if not prefix:
            raise ValueError(f"context {i} is empty")
        if len(prefix) + max_new_tokens > limit:
            raise ValueError(
                f"context {i} has {len(prefix)} tokens; with max_new_tokens={max_new_tokens} it exceeds the "
                f"model's {limit} positions (the prefix should have been truncated from the left)"
            )
    generator = torch.Generator(device=device).manual_seed(seed)
    autocast = torch.autocast(device.type, dtype=dtype) if dtype is not None else torch.autocast(device.type, enabled=False)
    results: list[list[Hypothesis]] = [[] for _ in prefixes]
    # Similar lengths together: less padding. The order of processing is fixed, so output is reproducible.
    order = sorted(range(len(prefixes)), key=lambda i: (len(prefixes[i]), i))
    settings = (n, eos_id, pad_id, top_p, temperature, max_new_tokens, generator, device, compact_at)
    with autocast:
        for chunk in _batches(order, batch_contexts):
            for ctx, hyp in _sample_chunk(model, [prefixes[i] for i in chunk], *settings):
                results[chunk[ctx]].append(hyp)
    return results


def _sample_chunk(
    model: GPT2LMHeadModel,
    prefixes: Sequence[Sequence[int]],
    n: int,
    eos_id: int,
    pad_id: int,
    top_p: float,
    temperature: float,
    max_new_tokens: int,
    generator: torch.Generator,
    device: torch.device,
    compact_at: float,
) -> list[tuple[int, Hypothesis]]:
    b = len(prefixes)
    width = max(len(p) for p in prefixes)
    ids = torch.full((b, width), pad_id, dtype=torch.long)
    mask = torch.zeros((b, width + max_new_tokens), dtype=torch.long)
    for row, prefix in enumerate(prefixes):  # left padding: every context ends at column width - 1
        ids[row, width - len(prefix) :] = torch.tensor(prefix)
        mask[row, width - len(prefix) :] = 1  # generated columns are always attended
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask[:, :width].cumsum(-1) - 1).clamp(min=0)
    from transformers import DynamicCache  # imported here: the jobs that only read hypotheses stay light

    cache = DynamicCache()
    out = model(input_ids=ids, attention_mask=mask[:, :width], position_ids=positions, past_key_values=cache, use_cache=True)
    logits = out.logits[:, -1, :].float()
    # Share each context's cache with its n samples.
    cache.batch_repeat_interleave(n)
    logits = logits.repeat_interleave(n, dim=0)
    mask = mask.repeat_interleave(n, dim=0)
    next_pos = positions[:, -1:].repeat_interleave(n, dim=0) + 1
    total = b * n
    rows = torch.arange(total, device=device)  # original row (context * n + sample) of each live row
    live = torch.ones(total, dtype=torch.bool, device=device)  # per current row: not yet finished
    tokens = torch.full((total, max_new_tokens), pad_id, dtype=torch.long, device=device)
    logprobs = torch.zeros(total, dtype=torch.float64, device=device)
    length = torch.full((total,), max_new_tokens, dtype=torch.long, device=device)
    finished = torch.zeros(total, dtype=torch.bool, device=device)
    for step in range(max_new_tokens):
        choice = nucleus_sample(logits, top_p, temperature, generator)  # [rows, 1]
        token_logp = logits.log_softmax(-1).gather(1, choice).squeeze(1).double()
        active_rows = rows[live]
        tokens[active_rows, step] = choice.squeeze(1)[live]
        logprobs[active_rows] += token_logp[live]
        done = live & (choice.squeeze(1) == eos_id)
        finished[rows[done]] = True
        length[rows[done]] = step + 1
        live &= ~done
        n_live = int(live.sum())
        if n_live == 0 or step == max_new_tokens - 1:
            break
        if rows.numel() - n_live > compact_at * rows.numel():  # drop finished rows and their cache
            keep = live.nonzero().squeeze(1)
            cache.batch_select_indices(keep)
            rows, choice, mask, next_pos, live = rows[keep], choice[keep], mask[keep], next_pos[keep], live[keep]
        cur = width + step + 1
        out = model(input_ids=choice, attention_mask=mask[:, :cur], position_ids=next_pos, past_key_values=cache, use_cache=True)
        logits = out.logits[:, -1, :].float()
        next_pos = next_pos + 1
    tokens_l, length_l, finished_l, logprobs_l = tokens.tolist(), length.tolist(), finished.tolist(), logprobs.tolist()
    result = []
    for r in range(total):
        ended = finished_l[r]
        seq = tokens_l[r][: length_l[r] - 1 if ended else length_l[r]]
        result.append((r // n, Hypothesis(tuple(seq), logprobs_l[r], ended)))
    return result
