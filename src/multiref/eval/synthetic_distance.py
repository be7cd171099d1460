"""Exact distance of a trained model to the synthetic corpus's known response distribution (demo only).

The paper's argument (its Sec. 3) is that training on one reference per context fits the model to a
poor estimate of the true response distribution p(y | c), and that many references fit it better.
On the synthetic corpus p(y | c) is known exactly (it depends on the previous utterance only), so the
distance can be measured instead of argued: for each test context whose previous utterance has a known
distribution, every valid response y is scored by the model (teacher forcing, ``</s>`` included) and

    KL(p || q) = sum_y p(y | c) (log p(y | c) - log q(y | c))          (nats)
    valid mass = sum_y q(y | c)                                          (q's probability of valid responses)

For latent-variable models q(y | c) = E_{z ~ p(z | c)} q(y | c, z) is estimated with ``samples`` prior
draws (the log of a Monte-Carlo mean: by Jensen's inequality it under-estimates log q on average, so
the KL is slightly over-estimated; more samples shrink the bias). Words outside the model's vocabulary
are scored as ``<unk>``, as the model would see them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import torch

from multiref.data.pairs import Vocabulary, split_tokens
from multiref.errors import MultirefError
from multiref.io import read_parquet_metadata
from multiref.models.data import Example, collate, pair_examples


@torch.no_grad()
def response_log_likelihoods(
    model: torch.nn.Module, examples: Sequence[Example], pad_id: int, samples: int = 16, seed: int = 0, batch_size: int = 256, device: str = "cpu"
) -> list[float]:
    """log q(y | c) of each example's response; latent models average q over ``samples`` prior draws."""
    if not hasattr(model, "log_likelihood"):
        raise MultirefError(f"{type(model).__name__} has no log_likelihood: it cannot be compared with the synthetic distribution")
    model.to(device).eval()
    draws = samples if getattr(model, "likelihood_needs_samples", False) else 1
    if draws < 1:
        raise MultirefError(f"samples must be positive, got {samples}")
    torch.manual_seed(seed)
    out: list[float] = []
    for start in range(0, len(examples), batch_size):
        batch = collate(examples[start : start + batch_size], pad_id, device)
        logq = torch.stack([model.log_likelihood(*batch) for _ in range(draws)])  # [S, B]
        out += (torch.logsumexp(logq, dim=0) - math.log(draws)).tolist()
    return out


def model_fit(
    model: torch.nn.Module,
    pairs_path: Path,
    vocab: Vocabulary,
    dists: Mapping[str, Mapping[str, float]],
    max_contexts: int,
    samples: int = 16,
    seed: int = 0,
    device: str = "cpu",
) -> pd.DataFrame:
    """Per context (the first ``max_contexts`` with a known distribution): support size, KL(p || q), valid mass."""
    limit = int((read_parquet_metadata(pairs_path).get("config") or {}).get("max_utterance_tokens", 40))
    base = pair_examples(pairs_path)
    cols = pq.read_table(pairs_path, columns=["pair_id", "context"]).to_pydict()
    chosen: list[tuple[int, list[str], list[float]]] = []
    examples: list[Example] = []
    for pid, context in zip(cols["pair_id"], cols["context"], strict=True):
        truth = dists.get(context[-1]) if context else None
        if not truth:
            continue
        responses = list(truth)
        chosen.append((pid, responses, [truth[y] for y in responses]))
        e = base[pid]
        examples += [Example(e.context, e.floors, tuple(vocab.encode(split_tokens(y)[:limit])), e.response_floor) for y in responses]
        if len(chosen) >= max_contexts:
            break
    logq = response_log_likelihoods(model, examples, vocab.id("<pad>"), samples, seed, device=device)
    rows, i = [], 0
    for pid, responses, probs in chosen:
        lq = logq[i : i + len(responses)]
        i += len(responses)
        rows.append(
            {
                "pair_id": pid,
                "support": len(responses),
                "kl": sum(p * (math.log(p) - q) for p, q in zip(probs, lq, strict=True)),
                "valid_mass": sum(math.exp(q) for q in lq),
                "entropy": -sum(p * math.log(p) for p in probs),
            }
        )
    return pd.DataFrame(rows, columns=["pair_id", "support", "kl", "valid_mass", "entropy"])


def summarise_fit(per_context: pd.DataFrame, **extra: Any) -> dict[str, Any]:
    """Means over contexts (KL in nats), with the number of contexts and anything in ``extra``."""
    n = len(per_context)
    return {
        "contexts": n,
        "mean_kl_nats": float(per_context["kl"].mean()) if n else None,
        "mean_valid_mass": float(per_context["valid_mass"].mean()) if n else None,
        "mean_entropy_nats": float(per_context["entropy"].mean()) if n else None,
        **extra,
    }


def measure_all(
    runs: Mapping[str, Path],
    teacher_dir: Path,
    test_pairs: Path,
    vocab_path: Path,
    distribution_path: Path,
    per_context_path: Path,
    max_contexts: int,
    samples: int = 16,
    seed: int = 0,
    device: str = "cpu",
) -> dict[str, dict[str, Any]]:
    """The teacher and every run (``"model/setting" -> model.pt``) on the same test contexts: a summary per
    run (teacher first) and one Parquet of per-context values with a ``run`` column."""
    import pyarrow as pa

    from multiref.io import sha256_file, write_parquet
    from multiref.models import registry
    from multiref.models.data import load_vocabulary
    from multiref.teacher.synthetic_distance import exact_fit, true_distributions

    dists = true_distributions(distribution_path)
    vocab, vocab_sha = load_vocabulary(vocab_path), sha256_file(vocab_path)
    frames = {"teacher/gt": exact_fit(teacher_dir, test_pairs, dists, max_contexts)}
    draws = {"teacher/gt": 1}
    for name, path in runs.items():
        model, saved = registry.load(path, vocab_sha256=vocab_sha, device=device)
        if saved["kind"] == "hred_tokkd":
            raise MultirefError(f"{path}: a tok-KD student speaks the teacher's BPE vocabulary; it has no word-level q(y|c)")
        frames[name] = model_fit(model, test_pairs, vocab, dists, max_contexts, samples, seed, device)
        draws[name] = samples if getattr(model, "likelihood_needs_samples", False) else 1
    cols = pq.read_table(test_pairs, columns=["pair_id", "context"]).to_pydict()
    entropy = {pid: -sum(p * math.log(p) for p in dists[ctx[-1]].values())
               for pid, ctx in zip(cols["pair_id"], cols["context"], strict=True) if ctx and ctx[-1] in dists}
    frames["teacher/gt"]["entropy"] = [entropy[pid] for pid in frames["teacher/gt"]["pair_id"]]
    summaries = {name: summarise_fit(f, prior_samples=draws[name], split="test") for name, f in frames.items()}
    long = pd.concat([f.assign(run=name) for name, f in frames.items()], ignore_index=True)
    write_parquet(pa.Table.from_pandas(long[["run", "pair_id", "support", "kl", "valid_mass", "entropy"]], preserve_index=False),
                  per_context_path, {"max_contexts": max_contexts, "prior_samples": samples})
    return summaries
