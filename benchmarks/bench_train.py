"""Benchmark: training throughput (pairs/s) of HRED and VHRED-LGM20 at the paper's dimensions.

Usage: python benchmarks/bench_train.py [--steps 20] [--repeats 3] [--device cpu|cuda] [--models hred vhred_lgm20]

Batches of 30 pairs shaped like DailyDialog's (5 context turns of 8-42 ids, responses of 8-42 ids;
random ids from a 10,000-word vocabulary), a full training step each (forward, backward, clipping,
Adam). Prints the median pairs/s over the repeats, the time one 1-GT epoch (59,305 pairs) would take,
the paper's TITAN RTX time per 1-GT epoch, and the ratio to HRED measured in the same run.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from multiref.models.data import Example, collate
from multiref.models.registry import build

SPECS = {"hred": {"kind": "hred"}, "vhred_lgm20": {"kind": "vhred", "prior": "lgm", "components": 20}}
PAPER_EPOCH_SECONDS = {"hred": 150, "vhred_lgm20": 160}  # Tables 1 and 2, "Trn Time" (TITAN RTX)


def batch(g: torch.Generator, size: int = 30) -> list[Example]:
    def utt() -> tuple[int, ...]:
        n = int(torch.randint(6, 41, (1,), generator=g))
        return (1, *torch.randint(9, 10000, (n,), generator=g).tolist(), 2)

    return [Example(tuple(utt() for _ in range(5)), (0, 1, 0, 1, 0), utt(), 1) for _ in range(size)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", nargs="+", default=list(SPECS))
    args = parser.parse_args()
    g = torch.Generator().manual_seed(0)
    batches = [collate(batch(g), 0, args.device) for _ in range(args.steps)]
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, device {args.device}")
    print("| model | parameters | steps x repeats | pairs/s | s per 1-GT epoch (59,305 pairs) | paper (TITAN RTX) | vs HRED |")
    print("|---|---|---|---|---|---|---|")
    base = None
    for name in args.models:
        torch.manual_seed(0)
        model = build(name, SPECS[name], 10000, {"pad_id": 0, "bos_id": 1, "eos_id": 2}).to(args.device).train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        rates = []
        for _ in range(args.repeats):
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            for step, tensors in enumerate(batches):
                loss = model(*tensors, step=step)["loss"]
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            rates.append(30 * len(batches) / (time.perf_counter() - start))
        rate = statistics.median(rates)
        base = base or rate
        paper = PAPER_EPOCH_SECONDS.get(name)
        params = sum(p.numel() for p in model.parameters())
        print(f"| {name} | {params / 2**20:.2f} M (2^20) | {args.steps} x {args.repeats} | {rate:,.1f} | {59305 / rate:,.0f} | "
              f"{paper if paper else '-'} | {rate / base:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
