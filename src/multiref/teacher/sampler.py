"""A fast nucleus sampler for N hypotheses per context.

Compared with ``generate(do_sample=True, num_return_sequences=N)``, which copies every context N
times before running it through the model, this sampler

- encodes each context once (a batch of left-padded contexts, logits for the last position only) and
  shares its key/value cache with its N samples, in buffers that new positions are written into in place
  (:mod:`multiref.teacher.kv_cache`) rather than concatenated to at every step;
- stops finished sequences: their tokens are ignored from ``</s>`` on, and they are dropped from the
  batch (with their cache rows) once they make up a quarter of it (``compact_at``);
- runs in bf16 on GPU when asked (``dtype``), fp32 on CPU;
- finds each row's nucleus from a part of the row (its most likely tokens, or for flat rows a bracket
  of values around the boundary) and sorts the whole vocabulary only for the rows that need it
  (:func:`multiref.teacher.nucleus.nucleus_sample`);
- draws every token from one seeded ``torch.Generator``, so a fixed seed gives identical output.

Top-p filtering has the semantics of ``transformers``' ``TopPLogitsWarper`` (:mod:`multiref.teacher.nucleus`).
The stored log-probability of a hypothesis is the sum of its tokens' log-probabilities under the
unfiltered model distribution at temperature 1 (as the authors' ``sentence_prob``), ``</s>`` included
when the hypothesis finished.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from multiref.teacher.nucleus import nucleus_sample

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

    from multiref.teacher import kv_cache

    cache = DynamicCache()
    out = model(input_ids=ids, attention_mask=mask[:, :width], position_ids=positions, past_key_values=cache,
                use_cache=True, logits_to_keep=1)
    logits = out.logits[:, -1, :].float()
    kv_cache.share(cache, n, width + max_new_tokens)  # each context's cache, once per sample
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
        token_logp = (logits.gather(1, choice).squeeze(1) - logits.logsumexp(-1)).double()
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
