"""Benchmark: training throughput (pairs/s) of HRED and VHRED-LGM20 at the paper's dimensions.

Usage: python benchmarks/bench_train.py [--steps 20] [--repeats 3] [--device cpu|cuda] [--models hred vhred_lgm20]
       [--dtype fp32|bf16] [--json FILE]

Batches of 30 pairs shaped like DailyDialog's (5 context turns of 8-42 ids, responses of 8-42 ids;
random ids from a 10,000-word vocabulary), a full training step each (forward, backward, clipping,
Adam). ``--dtype bf16`` runs the forward pass and the loss under ``torch.autocast`` with bfloat16 (weights,
gradients and Adam stay fp32), on CUDA or on the CPU. Prints the median pairs/s over the repeats, the time
one 1-GT epoch (59,305 pairs) would take, the paper's TITAN RTX time per 1-GT epoch, and the ratio to
HRED measured in the same run; ``--json`` also writes these rows to a file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from multiref.models.data import Example, collate
from multiref.models.registry import build

SPECS = {"hred": {"kind": "hred"}, "vhred_lgm20": {"kind": "vhred", "prior": "lgm", "components": 20}}
PAPER_EPOCH_SECONDS = {"hred": 150, "vhred_lgm20": 160}  # Tables 1 and 2, "Trn Time" (TITAN RTX)
EPOCH_PAIRS = 59305  # DailyDialog's training pairs: one 1-GT epoch
DTYPES = {"fp32": None, "bf16": torch.bfloat16}
SPECIAL_IDS = {"pad_id": 0, "bos_id": 1, "eos_id": 2}


def batch(g: torch.Generator, size: int = 30, vocab: int = 10000) -> list[Example]:
    def utt() -> tuple[int, ...]:
        n = int(torch.randint(6, 41, (1,), generator=g))
        return (1, *torch.randint(9, vocab, (n,), generator=g).tolist(), 2)

    return [Example(tuple(utt() for _ in range(5)), (0, 1, 0, 1, 0), utt(), 1) for _ in range(size)]


def autocast(device: str, dtype: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``dtype`` on ``device``'s type (a no-op for fp32)."""
    if DTYPES[dtype] is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=DTYPES[dtype])


def train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, tensors: tuple, step: int, device: str, dtype: str) -> float:
    """One training step as the trainer takes it (loss, backward, clipping at 1, Adam); returns the loss."""
    with autocast(device, dtype):
        loss = model(*tensors, step=step)["loss"]
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return float(loss.detach())


def measure(name: str, spec: Mapping[str, Any], vocab: int, batches: list[tuple], device: str, dtype: str, repeats: int) -> dict[str, Any]:
    """Median pairs/s of ``repeats`` passes over ``batches`` (after one untimed step) for one model."""
    torch.manual_seed(0)
    model = build(name, spec, vocab, SPECIAL_IDS).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    try:
        train_step(model, opt, batches[0], 0, device, dtype)  # warm-up: kernels chosen, memory allocated
    except RuntimeError as exc:
        raise SystemExit(f"{name}: a {dtype} training step fails on {device}: {exc}") from exc
    rates = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        for step, tensors in enumerate(batches):
            train_step(model, opt, tensors, step, device, dtype)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        rates.append(sum(len(t[0]) for t in batches) / (time.perf_counter() - start))
    rate = statistics.median(rates)
    return {"model": name, "dtype": dtype, "device": device, "parameters": sum(p.numel() for p in model.parameters()),
            "steps": len(batches), "repeats": repeats, "pairs_per_s": rate, "epoch_s": EPOCH_PAIRS / rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", nargs="+", default=list(SPECS))
    parser.add_argument("--dtype", choices=list(DTYPES), default="fp32")
    parser.add_argument("--json", type=Path, help="also write the rows to this file (a JSON list)")
    args = parser.parse_args()
    g = torch.Generator().manual_seed(0)
    batches = [collate(batch(g), 0, args.device) for _ in range(args.steps)]
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"device {args.device}, dtype {args.dtype}")
    print("| model | parameters | steps x repeats | pairs/s | s per 1-GT epoch (59,305 pairs) | paper (TITAN RTX) | vs HRED |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for name in args.models:
        row = measure(name, SPECS[name], 10000, batches, args.device, args.dtype, args.repeats)
        rows.append(row)
        rate, base = row["pairs_per_s"], rows[0]["pairs_per_s"]
        paper = PAPER_EPOCH_SECONDS.get(name)
        print(f"| {name} | {row['parameters'] / 2**20:.2f} M (2^20) | {args.steps} x {args.repeats} | {rate:,.1f} | "
              f"{row['epoch_s']:,.0f} | {paper if paper else '-'} | {rate / base:.2f}x |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
