"""Test-set decoding and perplexity of a trained dialogue model, as the authors' ``eval.py``.

- Decoding is greedy, up to 40 tokens, in batches of 100 test pairs in file order; a latent model
  draws z once from its prior per context, MHRED one mechanism from p(m | x), all from one seeded
  generator (``torch.manual_seed(seed)`` before the first batch), so a rerun gives the same text.
- ``assign_k`` decodes a mixture-prior VHRED with only its k-th latent variable (paper, Table 5).
- Perplexity is reported twice: the authors' (the mean over eval batches of 100 of exp(the batch's
  mean token cross-entropy, ``</s>`` included)) and the plain token-level one (exp of the total NLL
  over the total number of tokens). A latent model's test perplexity uses z from the prior.

A hypothesis is its token strings up to ``</s>`` (excluded), joined by spaces; ``<unk>`` stays.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import torch

from multiref.eval.metrics import authors_perplexity, token_perplexity
from multiref.models.data import Example, collate

DECODE_SCHEMA = pa.schema([("pair_id", pa.int64()), ("hypothesis", pa.string()), ("n_tokens", pa.int32())])


def word_detokenizer(tokens: Sequence[str]) -> Callable[[list[int]], str]:
    """Ids of the word vocabulary -> the tokens joined by spaces (the pairs' text format)."""
    return lambda ids: " ".join(tokens[i] for i in ids)


@torch.no_grad()
def decode(
    model: torch.nn.Module,
    examples: Sequence[Example],
    pair_ids: Sequence[int],
    detokenize: Callable[[list[int]], str],
    batch_size: int = 100,
    max_len: int = 40,
    seed: int = 42,
    assign_k: int | None = None,
    device: str = "cpu",
    search: str = "greedy",
) -> pa.Table:
    """The responses to every example: a table (pair_id, hypothesis, n_tokens) in input order.

    ``search``: ``greedy`` (the multi-reference paper's decoding), or ``beam``: the model's own
    ``generate`` (Mirror's and Seq2SeqAttn's beam search, width ``cfg.beam``) where it has one, greedy
    otherwise (see :func:`search_used`)."""
    model.to(device).eval()
    pad_id, eos_id = model.cfg.pad_id, model.cfg.eos_id
    generate = model.generate if search_used(model, search) == "beam" else model.greedy
    torch.manual_seed(seed)
    texts, lengths = [], []
    for start in range(0, len(examples), batch_size):
        x, x_floor, _, y_floor = collate(examples[start : start + batch_size], pad_id, device)
        kwargs: dict[str, Any] = {"assign_k": assign_k} if assign_k is not None else {}
        rows = generate(x, x_floor, y_floor, max_len=max_len, **kwargs).tolist()
        ids_rows = [strip_ids(row, eos_id, pad_id) for row in rows]
        texts += [detokenize(ids) for ids in ids_rows]
        lengths += [len(ids) for ids in ids_rows]
    return pa.table({"pair_id": list(pair_ids), "hypothesis": texts, "n_tokens": lengths}, schema=DECODE_SCHEMA)


SEARCHES = ("greedy", "beam")


def search_used(model: torch.nn.Module, search: str) -> str:
    """What ``search`` means for ``model``: ``beam`` only for models with a beam search (``generate``)."""
    if search not in SEARCHES:
        raise ValueError(f"decode search must be one of {list(SEARCHES)}, got {search!r}")
    return "beam" if search == "beam" and hasattr(model, "generate") else "greedy"


def strip_ids(row: Sequence[int], eos_id: int, pad_id: int) -> list[int]:
    """The tokens of one decoded row: up to its first ``</s>``, without padding."""
    ids = []
    for i in row:
        if i == eos_id:
            break
        if i != pad_id:
            ids.append(i)
    return ids


@torch.no_grad()
def perplexity(
    model: torch.nn.Module, examples: Sequence[Example], batch_size: int = 100, seed: int = 42, device: str = "cpu", assign_k: int | None = None
) -> dict[str, Any]:
    """The authors' perplexity (mean of per-batch perplexities) and the token-level one (``assign_k``:
    a mixture-prior model with its k-th latent variable only)."""
    model.to(device).eval()
    torch.manual_seed(seed)
    batch_nll, total_nll, total_tokens = [], 0.0, 0
    for start in range(0, len(examples), batch_size):
        batch = collate(examples[start : start + batch_size], model.cfg.pad_id, device)
        if hasattr(model, "prior_nll"):
            out = model.prior_nll(*batch) if assign_k is None else model.prior_nll(*batch, assign_k=assign_k)
        else:
            out = model(*batch)
        nll, tokens = float(out["nll_sum"]), int(out["n_tokens"])
        batch_nll.append(nll / max(tokens, 1))
        total_nll += nll
        total_tokens += tokens
    return {
        "ppl_authors": authors_perplexity(batch_nll),
        "ppl_token": token_perplexity(total_nll, total_tokens),
        "batches": len(batch_nll),
        "tokens": total_tokens,
        "batch_size": batch_size,
    }


@torch.no_grad()
def mean_component_weights(model: torch.nn.Module, examples: Sequence[Example], batch_size: int = 100, device: str = "cpu") -> list[float]:
    """pi-bar_k: the mixture weights of a GMM/LGM prior averaged over the test contexts (Table 5)."""
    model.to(device).eval()
    total, n = None, 0
    for start in range(0, len(examples), batch_size):
        x, x_floor, _, y_floor = collate(examples[start : start + batch_size], model.cfg.pad_id, device)
        _, _, context = model.encode(x, x_floor, y_floor)
        if not hasattr(model.prior_net, "weights"):
            raise ValueError("the model's prior has no mixture weights (a Gaussian prior has one component)")
        pi = model.prior_net.weights(context)  # for GMM: the softmax of its scores, not a hard Gumbel sample
        total = pi.sum(0) if total is None else total + pi.sum(0)
        n += pi.size(0)
    return [] if total is None else (total / n).tolist()


def decode_run(
    model_path: Path,
    test_pairs: Path,
    vocab_path: Path,
    teacher_dir: Path | None,
    decode_path: Path,
    ppl_path: Path,
    seed: int = 42,
    batch_size: int = 100,
    max_len: int = 40,
    device: str = "cpu",
    by_component_path: Path | None = None,
    search: str = "greedy",
) -> dict[str, Any]:
    """Decode a saved run on the test pairs; write the responses (Parquet) and the perplexities (JSON).

    With ``by_component_path`` (a mixture-prior model) also the responses decoded with each latent
    variable alone, with its mean selection probability (Table 5)."""
    from multiref.io import sha256_file, write_json, write_parquet
    from multiref.models import registry
    from multiref.models.data import load_vocabulary, pair_examples

    if teacher_dir is not None:  # tok-KD: the student reads and writes the teacher's BPE
        from multiref.models.kd_data import tokkd_pair_examples
        from multiref.teacher.format import utterance_limit
        from multiref.teacher.tokenizer import load_tokenizer

        tokenizer = load_tokenizer(teacher_dir)
        model, saved = registry.load(model_path, sha256_file(Path(teacher_dir) / "tokenizer.json"), device)
        by_pair = tokkd_pair_examples(test_pairs, tokenizer, utterance_limit(str(test_pairs)))
        detokenize: Callable[[list[int]], str] = lambda ids: tokenizer.decode(ids, clean_up_tokenization_spaces=False).strip()
    else:
        vocab = load_vocabulary(vocab_path)
        model, saved = registry.load(model_path, sha256_file(vocab_path), device)
        by_pair = pair_examples(test_pairs)
        detokenize = word_detokenizer(vocab.tokens)
    pair_ids = list(by_pair)
    examples = [by_pair[p] for p in pair_ids]
    used = search_used(model, search)
    meta = {"model": saved["name"], "kind": saved["kind"], "seed": seed, "max_len": max_len, "batch_size": batch_size,
            "search": used, "beam": getattr(model.cfg, "beam", 1) if used == "beam" else 1}
    write_parquet(decode(model, examples, pair_ids, detokenize, batch_size, max_len, seed, device=device, search=search), decode_path, meta)
    ppl = {**perplexity(model, examples, batch_size, seed, device), "model": saved["name"], "pairs": len(examples)}
    if by_component_path is not None:
        pi = mean_component_weights(model, examples, batch_size, device)
        tables = []
        for k in range(len(pi)):
            t = decode(model, examples, pair_ids, detokenize, batch_size, max_len, seed, assign_k=k, device=device)
            tables.append(t.append_column("k", pa.array([k] * t.num_rows, pa.int32())))
        ppl_k = [perplexity(model, examples, batch_size, seed, device, assign_k=k)["ppl_authors"] for k in range(len(pi))]
        write_parquet(pa.concat_tables(tables), by_component_path, {**meta, "pi_mean": pi, "ppl_authors_by_k": ppl_k})
        ppl["pi_mean"], ppl["ppl_authors_by_k"] = pi, ppl_k
    write_json(ppl, ppl_path)
    return ppl
