"""Benchmark: the nucleus sampler vs transformers' generate(do_sample=True, num_return_sequences=N).

Usage:
  python benchmarks/bench_sampler.py --model demo-shape|gpt2-small|gpt2-medium|DIR [--n 1 5 20 100]
         [--contexts 32] [--repeats 3] [--device cpu|cuda] [--dtype fp32|bf16]

Both methods get the same model, the same left-padded contexts (batches of --batch contexts), top-p
0.95, temperature 1, no top-k and the same max_new_tokens. Shapes (``demo-shape``, ``gpt2-small``,
``gpt2-medium``) use random weights; a directory loads a saved teacher (realistic stopping). Contexts
are random token ids with lengths drawn like DailyDialog prefixes (60-160 tokens) unless --pairs
gives a pairs Parquet file and DIR a teacher to format them with. Prints Markdown rows: generated
tokens per second of each method (median over repeats) and their ratio, measured in this run.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from multiref.teacher.sampler import sample

SHAPES = {
    "demo-shape": {"n_layer": 4, "n_embd": 256, "n_head": 4, "n_positions": 320, "vocab_size": 2000},
    "gpt2-small": {"n_layer": 12, "n_embd": 768, "n_head": 12, "n_positions": 1024, "vocab_size": 50264},
    "gpt2-medium": {"n_layer": 24, "n_embd": 1024, "n_head": 16, "n_positions": 1024, "vocab_size": 50264},
}


def build(model: str, device: str, eos_rate: float) -> tuple[GPT2LMHeadModel, int, int]:
    if model in SHAPES:
        torch.manual_seed(0)
        net = GPT2LMHeadModel(GPT2Config(**SHAPES[model], eos_token_id=1, pad_token_id=0))
        if eos_rate > 0:
            # Random weights give near-uniform next-token distributions, so </s> would (almost) never be
            # drawn. Shift the final layer-norm bias along </s>'s embedding so that its logit rises by
            # log(rate/(1-rate) * (V-1)): about `rate` probability per step, i.e. responses of ~1/rate tokens.
            with torch.no_grad():
                w = net.lm_head.weight[1]
                lift = math.log(eos_rate / (1 - eos_rate) * (net.config.vocab_size - 1))
                net.transformer.ln_f.bias.add_(w * lift / w.dot(w))
        return net.to(device).eval(), 1, 0
    from multiref.teacher.model import load_teacher

    net, tok = load_teacher(model, device)
    return net, tok.eos_token_id, tok.pad_token_id


def contexts(count: int, vocab: int, seed: int = 0) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(60, 161, (count,), generator=g).tolist()
    return [torch.randint(2, vocab, (n,), generator=g).tolist() for n in lengths]


def pairs_contexts(teacher: str, pairs: Path, count: int, max_new: int, positions: int) -> list[list[int]]:
    import pyarrow.parquet as pq

    from multiref.teacher.format import TeacherFormat
    from multiref.teacher.tokenizer import load_tokenizer

    tok = load_tokenizer(teacher)
    fmt = TeacherFormat(tok, 40)
    cols = pq.read_table(pairs).slice(0, count).to_pydict()
    return [fmt.prefix(c, f, rf, positions - max_new) for c, f, rf in zip(cols["context"], cols["context_floors"], cols["response_floor"], strict=True)]


@torch.inference_mode()
def run_generate(model, prefixes, n, eos, pad, max_new, batch, dtype) -> int:
    device = next(model.parameters()).device
    produced = 0
    ctx = torch.autocast(device.type, dtype=dtype) if dtype else torch.autocast(device.type, enabled=False)
    with ctx:
        for start in range(0, len(prefixes), batch):
            chunk = prefixes[start : start + batch]
            width = max(map(len, chunk))
            ids = torch.full((len(chunk), width), pad)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for i, p in enumerate(chunk):
                ids[i, width - len(p) :] = torch.tensor(p)
                mask[i, width - len(p) :] = 1
            out = model.generate(
                input_ids=ids.to(device), attention_mask=mask.to(device), do_sample=True, top_p=0.95, top_k=0,
                temperature=1.0, num_return_sequences=n, max_new_tokens=max_new, eos_token_id=eos, pad_token_id=pad,
            )
            new = out[:, width:].cpu()
            for row in new.tolist():
                produced += row.index(eos) + 1 if eos in row else len(row)
    return produced


def run_ours(model, prefixes, n, eos, pad, max_new, batch, dtype) -> int:
    hyps = sample(model, prefixes, n, eos, pad, 0.95, 1.0, max_new, seed=0, batch_contexts=batch, dtype=dtype)
    return sum(len(h.token_ids) + int(h.finished) for per in hyps for h in per)


def compare(model, prefixes, n, eos, pad, max_new, batch, dtype, repeats, device) -> dict[str, float]:
    """Generated tokens per second of ``generate`` and of the sampler (medians of ``repeats`` runs, the two
    alternating) and the mean tokens per hypothesis (``</s>`` included)."""
    rates: dict[str, list[float]] = {"generate": [], "sampler": []}
    mean_len = 0.0
    for _ in range(repeats):
        for name, fn in (("generate", run_generate), ("sampler", run_ours)):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            tokens = fn(model, prefixes, n, eos, pad, max_new, batch, dtype)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            rates[name].append(tokens / (time.perf_counter() - start))
            mean_len = tokens / (n * len(prefixes))
    g, s = statistics.median(rates["generate"]), statistics.median(rates["sampler"])
    return {"generate_tok_s": g, "sampler_tok_s": s, "speedup": s / g, "mean_tokens": mean_len}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo-shape")
    parser.add_argument("--pairs", type=Path, help="pairs Parquet file (with --model DIR of a teacher)")
    parser.add_argument("--n", type=int, nargs="+", default=[1, 5, 20, 100])
    parser.add_argument("--contexts", type=int, default=32)
    parser.add_argument("--batch", type=int, default=0, help="contexts per batch (default: 640 // N, at least 1)")
    parser.add_argument("--max-new", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--eos-rate", type=float, default=1 / 12, help="random shapes: per-step </s> probability (0: none)")
    args = parser.parse_args()
    model, eos, pad = build(args.model, args.device, args.eos_rate)
    if args.pairs:
        prefixes = pairs_contexts(args.model, args.pairs, args.contexts, args.max_new, model.config.n_positions)
    else:
        prefixes = contexts(args.contexts, model.config.vocab_size)
    dtype = torch.bfloat16 if args.dtype == "bf16" else None
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, device {args.device}, dtype {args.dtype}")
    print(
        f"model: {args.model}, {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters, "
        f"{len(prefixes)} contexts, max_new_tokens {args.max_new}, repeats {args.repeats}"
        + (f", random weights with </s> rate {args.eos_rate:.3f}" if args.model in SHAPES else "")
    )
    print("| model | N | batch | generate tok/s | sampler tok/s | speed-up | mean hyp. tokens |")
    print("|---|---|---|---|---|---|---|")
    for n in args.n:
        batch = args.batch or max(1, 640 // n)
        r = compare(model, prefixes, n, eos, pad, args.max_new, batch, dtype, args.repeats, args.device)
        print(f"| {args.model} | {n} | {batch} | {r['generate_tok_s']:,.0f} | {r['sampler_tok_s']:,.0f} | "
              f"{r['speedup']:.2f}x | {r['mean_tokens']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
