"""How close the teacher is to the synthetic corpus's known response distribution (demo only).

Two measurements, both against ``p(y | previous utterance)`` saved by the generator:

- exact: for dev contexts, the teacher's probability ``q(y | context)`` of every valid response
  (teacher forcing, ``</s>`` included) gives ``KL(p || q)`` in nats and the teacher's total mass on
  valid responses;
- from samples: for training pairs, the N teacher hypotheses give the share of valid responses and
  the total-variation distance of their empirical distribution to ``p``, next to the same distance
  for N samples drawn from ``p`` itself (the floor that finite N imposes).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch

from multiref.data.text import normalize
from multiref.teacher.finetune import Example, collate
from multiref.teacher.format import IGNORE, TeacherFormat, utterance_limit
from multiref.teacher.model import load_teacher


def true_distributions(distribution_path: Path) -> dict[str, dict[str, float]]:
    """Normalised previous utterance -> {normalised response: probability} (openings left out)."""
    table = pq.read_table(distribution_path).to_pydict()
    dists: dict[str, dict[str, float]] = defaultdict(dict)
    cache: dict[str, str] = {}

    def norm(text: str) -> str:
        if text not in cache:
            cache[text] = normalize(text)
        return cache[text]

    for context, response, prob in zip(table["context"], table["response"], table["prob"], strict=True):
        if context is None:
            continue
        slot = dists[norm(context)]
        key = norm(response)
        slot[key] = slot.get(key, 0.0) + prob
    return dict(dists)


def total_variation(samples: Sequence[str], truth: Mapping[str, float]) -> float:
    counts: dict[str, int] = defaultdict(int)
    for s in samples:
        counts[s] += 1
    n = len(samples)
    tv = sum(abs(counts.get(y, 0) / n - p) for y, p in truth.items())
    tv += sum(c / n for y, c in counts.items() if y not in truth)
    return tv / 2


@torch.no_grad()
def sequence_logprobs(model: Any, examples: Sequence[Example], pad_id: int, batch_size: int = 64) -> list[float]:
    """Sum of log-probabilities of each example's label tokens under ``model``."""
    device = next(model.parameters()).device
    out: list[float] = []
    for start in range(0, len(examples), batch_size):
        batch = collate(examples[start : start + batch_size], pad_id, str(device))
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1].float()
        target = batch["labels"][:, 1:]
        logp = logits.log_softmax(-1).gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        out += (logp * (target != IGNORE)).sum(-1).tolist()
    return out


def exact_fit(teacher_dir: Path, dev_pairs: Path, dists: Mapping[str, Mapping[str, float]], max_contexts: int) -> pd.DataFrame:
    """Per dev context (the first ``max_contexts`` with a known distribution): KL(p||q) and q's valid mass."""
    model, tokenizer = load_teacher(teacher_dir)
    fmt = TeacherFormat(tokenizer, utterance_limit(str(dev_pairs)))
    cols = pq.read_table(dev_pairs).to_pydict()
    rows = []
    for i, context in enumerate(cols["context"]):
        truth = dists.get(context[-1]) if context else None
        if not truth:
            continue
        responses = list(truth)
        examples = [
            fmt.example(context, cols["context_floors"][i], cols["response_floor"][i], y, model.config.n_positions)
            for y in responses
        ]
        logq = sequence_logprobs(model, examples, tokenizer.pad_token_id)
        kl = sum(truth[y] * (math.log(truth[y]) - lq) for y, lq in zip(responses, logq, strict=True))
        rows.append({"pair_id": cols["pair_id"][i], "support": len(responses), "kl": kl, "valid_mass": sum(math.exp(v) for v in logq)})
        if len(rows) >= max_contexts:
            break
    return pd.DataFrame(rows)


def sample_fit(train_pairs: Path, hypotheses: pd.DataFrame, dists: Mapping[str, Mapping[str, float]], seed: int = 0) -> pd.DataFrame:
    """Per training pair: valid share and TV of the teacher's hypotheses, and TV of as many true samples."""
    cols = pq.read_table(train_pairs, columns=["pair_id", "context"]).to_pydict()
    last = {pid: (ctx[-1] if ctx else "") for pid, ctx in zip(cols["pair_id"], cols["context"], strict=True)}
    rng = np.random.default_rng(seed)
    rows = []
    for pid, group in hypotheses.groupby("pair_id", sort=True):
        truth = dists.get(last.get(pid, ""))
        if not truth:
            continue
        texts = group.sort_values("hyp_index")["text"].tolist()
        support, probs = list(truth), np.array(list(truth.values()))
        draws = rng.choice(len(support), size=len(texts), p=probs / probs.sum())
        rows.append(
            {
                "pair_id": pid,
                "valid_share": sum(t in truth for t in texts) / len(texts),
                "tv": total_variation(texts, truth),
                "tv_true_samples": total_variation([support[d] for d in draws], truth),
            }
        )
    return pd.DataFrame(rows)


def summarise(exact: pd.DataFrame, samples: pd.DataFrame, n: int) -> dict[str, Any]:
    return {
        "exact": {
            "contexts": len(exact),
            "mean_kl_nats": float(exact["kl"].mean()) if len(exact) else None,
            "mean_valid_mass": float(exact["valid_mass"].mean()) if len(exact) else None,
        },
        "samples": {
            "pairs": len(samples),
            "hypotheses_per_pair": n,
            "mean_valid_share": float(samples["valid_share"].mean()) if len(samples) else None,
            "mean_tv": float(samples["tv"].mean()) if len(samples) else None,
            "mean_tv_true_samples": float(samples["tv_true_samples"].mean()) if len(samples) else None,
        },
    }
