"""The steps of ``benchmarks/gpu_check.sh``: each measures one thing and writes ``DIR/STEP.json``; ``table``
turns them into one Markdown table.

Usage: python benchmarks/gpu_check.py env|sampler|train|loss|table --mode gpu|cpu --dir DIR [--out FILE]

- ``env``: GPU name, torch and CUDA versions, whether bf16 is supported (gpu mode stops here without a GPU);
- ``sampler``: the nucleus sampler vs ``generate`` at N = 20 and N = 100 (bench_sampler.compare), bf16 on GPU;
- ``train``: HRED and VHRED-LGM20 training pairs/s, fp32 and bf16 autocast (bench_train.measure);
- ``loss``: one HRED training step (dropout 0) from the same weights on the same batch, on the CPU and on
  the GPU: the step's loss and the loss after its Adam update on each, and their differences;
- ``table``: the rows, with the projected paper-scale times (teacher sampling of 59,305 contexts x 100
  hypotheses from the sampler's N = 100 rate and mean length; one 1-GT epoch from pairs/s).

``cpu`` mode runs the same steps on the CPU at small sizes (the demo shape for the sampler, 64-unit models,
a few steps), to check the script itself; its figures say nothing about a GPU.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path
from typing import Any

import torch
from bench_sampler import build as build_lm
from bench_sampler import compare, contexts, run_generate, run_ours
from bench_train import EPOCH_PAIRS, SPECIAL_IDS, SPECS, batch, measure, train_step

from multiref.models.data import collate
from multiref.models.registry import build

TEACHER_CONTEXTS, TEACHER_HYPOTHESES = 59305, 100  # the paper's teacher run: every training context, 100 samples
SMALL = {"embedding_dim": 32, "floor_dim": 8, "hidden": 64, "latent_dim": 16}  # cpu mode's model dimensions
SETTINGS = {  # per mode: sampler shape, dtype, (N, contexts) pairs, repeats; training vocabulary, steps, repeats
    "gpu": {"device": "cuda", "lm": "gpt2-medium", "lm_dtype": "bf16", "runs": [(20, 32), (100, 12)], "lm_repeats": 2,
            "vocab": 10000, "steps": 30, "repeats": 3, "dims": {}, "pairs": 30},
    "cpu": {"device": "cpu", "lm": "demo-shape", "lm_dtype": "fp32", "runs": [(20, 2), (100, 1)], "lm_repeats": 1,
            "vocab": 1000, "steps": 3, "repeats": 1, "dims": SMALL, "pairs": 8},
}
MAX_NEW = 40


def env_step(mode: str) -> dict[str, Any]:
    """The machine: GPU name and torch, CUDA and cuDNN versions (gpu mode without a GPU is an error)."""
    info: dict[str, Any] = {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
                            "cuda_available": torch.cuda.is_available(), "threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info |= {"gpu": torch.cuda.get_device_name(0), "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
                 "bf16": torch.cuda.is_bf16_supported(), "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
                 "tf32_cudnn": torch.backends.cudnn.allow_tf32,
                 "memory_gib": torch.cuda.get_device_properties(0).total_memory / 2**30}
    elif mode == "gpu":
        raise SystemExit("no CUDA GPU is visible to torch: run `bash benchmarks/gpu_check.sh --cpu` to check the script on the CPU")
    return info


def sampler_step(mode: str) -> dict[str, Any]:
    """Sampler vs generate at each (N, contexts) of the mode, on the random-weight shape with the </s> shift."""
    s = SETTINGS[mode]
    model, eos, pad = build_lm(s["lm"], s["device"], 1 / 12)
    dtype = torch.bfloat16 if s["lm_dtype"] == "bf16" else None
    warm = contexts(1, model.config.vocab_size, seed=1)
    for fn in (run_generate, run_ours):  # kernels and allocator warmed before timing
        fn(model, warm, 2, eos, pad, 4, 1, dtype)
    rows = []
    for n, count in s["runs"]:
        prefixes = contexts(count, model.config.vocab_size)
        batch_contexts = max(1, 640 // n)
        r = compare(model, prefixes, n, eos, pad, MAX_NEW, batch_contexts, dtype, s["lm_repeats"], s["device"])
        rows.append({"n": n, "contexts": count, "batch": batch_contexts, **r})
    params = sum(p.numel() for p in model.parameters())
    return {"model": s["lm"], "parameters": params, "dtype": s["lm_dtype"], "repeats": s["lm_repeats"], "rows": rows}


def train_step_rates(mode: str) -> dict[str, Any]:
    """pairs/s of HRED and VHRED-LGM20 in fp32 and bf16 autocast."""
    s = SETTINGS[mode]
    g = torch.Generator().manual_seed(0)
    batches = [collate(batch(g, s["pairs"], s["vocab"]), 0, s["device"]) for _ in range(s["steps"])]
    rows = []
    for dtype in ("fp32", "bf16"):
        for name, spec in SPECS.items():
            try:
                rows.append(measure(name, _spec(spec, s["dims"]), s["vocab"], batches, s["device"], dtype, s["repeats"]))
            except SystemExit as exc:  # one setting that cannot run (e.g. bf16 GRUs) leaves the others their rows
                rows.append({"model": name, "dtype": dtype, "error": str(exc)})
    return {"pairs_per_batch": s["pairs"], "dims": s["dims"] or "paper", "rows": rows}


def _spec(spec: dict[str, Any], dims: dict[str, int]) -> dict[str, Any]:
    """A model entry with ``dims`` (latent_dim only for VHRED)."""
    extra = {k: v for k, v in dims.items() if k != "latent_dim" or spec["kind"] == "vhred"}
    return {**spec, **extra}


def loss_step(mode: str) -> dict[str, Any]:
    """HRED (dropout 0): one training step's loss from the same weights on the same batch, on the CPU and on the
    mode's device, and the loss of the updated weights on that batch."""
    s = SETTINGS[mode]
    spec = _spec(SPECS["hred"], s["dims"]) | {"dropout": 0.0}
    torch.manual_seed(0)
    state = build("hred", spec, s["vocab"], SPECIAL_IDS).state_dict()
    examples = batch(torch.Generator().manual_seed(1), s["pairs"], s["vocab"])
    result: dict[str, Any] = {"pairs": s["pairs"], "dims": s["dims"] or "paper"}
    for role, device in (("cpu", "cpu"), ("device", s["device"])):
        model = build("hred", spec, s["vocab"], SPECIAL_IDS)
        model.load_state_dict(state)
        model.to(device).train()
        tensors = collate(examples, 0, device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        before = train_step(model, opt, tensors, 0, device, "fp32")
        with torch.no_grad():
            after = float(model(*tensors, step=1)["loss"])
        result[role] = {"device": device, "loss": before, "loss_after_step": after}
    return result


def projections(sampler: dict[str, Any] | None, train: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """Paper-scale times from the measured rates: (name, setting, result) rows."""
    rows = []
    if not sampler:
        rows.append(("projection: teacher sampling", "", "no sampler rate measured"))
    else:
        r = max(sampler["rows"], key=lambda row: row["n"])
        tokens = TEACHER_CONTEXTS * TEACHER_HYPOTHESES * r["mean_tokens"]
        hours = tokens / r["sampler_tok_s"] / 3600
        setting = (f"{TEACHER_CONTEXTS:,} contexts x {TEACHER_HYPOTHESES} hypotheses, {r['mean_tokens']:.1f} tokens each, "
                   f"at the N = {r['n']} sampler rate")
        rows.append(("projection: teacher sampling", setting,
                     f"{tokens / 1e6:,.1f} M tokens / {r['sampler_tok_s']:,.0f} tok/s = {hours:,.2f} h"))
    for dtype in ("fp32", "bf16"):
        for model in SPECS:
            row = next((r for r in (train or {}).get("rows", []) if r["model"] == model and r["dtype"] == dtype and "error" not in r), None)
            result = f"{row['epoch_s']:,.0f} s ({row['epoch_s'] / 60:,.1f} min)" if row else "no training rate measured"
            rows.append((f"projection: 1-GT epoch {model} {dtype}", f"{EPOCH_PAIRS:,} pairs", result))
    return rows


def _failed(directory: Path, step: str) -> str:
    """Why a step left no result: its exit status (124: its time limit) and the last line of its log."""
    status = (directory / f"{step}.status").read_text().strip() if (directory / f"{step}.status").exists() else "?"
    log = directory / f"{step}.log"
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()] if log.exists() else []
    why = "stopped at its time limit" if status in ("124", "137") else f"failed (exit {status})"
    return f"**{why}**" + (f": {lines[-1][:200]}" if lines else "")


def table(mode: str, directory: Path) -> str:
    """The Markdown report: one row per measurement, a failure note where a step left no result."""
    results = {step: json.loads((directory / f"{step}.json").read_text()) if (directory / f"{step}.json").exists() else None
               for step in ("env", "sampler", "train", "loss")}
    s = SETTINGS[mode]
    rows: list[tuple[str, str, str]] = []
    env = results["env"]
    rows.append(("machine", f"mode {mode}", _env_text(env) if env else _failed(directory, "env")))
    sampler = results["sampler"]
    for n, count in s["runs"]:
        name = f"sampler vs generate, N = {n}"
        r = next((row for row in sampler["rows"] if row["n"] == n), None) if sampler else None
        if r is None:
            rows.append((name, s["lm"], _failed(directory, "sampler")))
            continue
        setting = (f"{s['lm']} shape ({sampler['parameters'] / 1e6:.0f} M, random weights, </s> shift), dtype {sampler['dtype']}, "
                   f"{count} contexts, {r['batch']} per batch, max {MAX_NEW} new tokens, median of {sampler['repeats']}")
        result = (f"generate {r['generate_tok_s']:,.0f} tok/s, sampler {r['sampler_tok_s']:,.0f} tok/s: "
                  f"**{r['speedup']:.2f}x**; {r['mean_tokens']:.1f} tokens per hypothesis")
        rows.append((name, setting, result))
    train = results["train"]
    for dtype in ("fp32", "bf16"):
        for model in SPECS:
            name = f"training {model} {dtype}"
            r = next((row for row in train["rows"] if row["model"] == model and row["dtype"] == dtype), None) if train else None
            if r is None or "error" in r:
                rows.append((name, "", f"**failed**: {r['error'][:300]}" if r else _failed(directory, "train")))
                continue
            setting = (f"{'paper' if not s['dims'] else 'small'} dimensions ({r['parameters'] / 2**20:.2f} M), batch {s['pairs']}, "
                       f"{r['steps']} steps x {r['repeats']}" + (", bf16 autocast" if dtype == "bf16" else ""))
            rows.append((name, setting, f"{r['pairs_per_s']:,.1f} pairs/s"))
    rows += _loss_rows(results["loss"], directory, s)
    rows += projections(sampler, train)
    lines = ["| check | setting | result |", "| --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines) + "\n"


def _env_text(env: dict[str, Any]) -> str:
    text = f"torch {env['torch']}, Python {env['python']}, {env['machine']}"
    if env.get("gpu"):
        text = (f"{env['gpu']} ({env['memory_gib']:.0f} GiB, bf16 {'yes' if env['bf16'] else 'no'}), CUDA {env['cuda']}, "
                f"cuDNN {env['cudnn']}, TF32 matmul {env['tf32_matmul']} / cuDNN {env['tf32_cudnn']}; " + text)
    else:
        text = f"no GPU: CPU, {env['threads']} threads; " + text
    return text


def _loss_rows(loss: dict[str, Any] | None, directory: Path, s: dict[str, Any]) -> list[tuple[str, str, str]]:
    names = [("loss", "HRED: the training step's loss"), ("loss_after_step", "HRED: loss after the step's Adam update")]
    if loss is None:
        return [(name, "", _failed(directory, "loss")) for _, name in names]
    setting = f"same weights and batch ({s['pairs']} pairs, {'paper' if not s['dims'] else 'small'} dimensions, dropout 0), fp32"
    rows = []
    for key, name in names:
        a, b = loss["cpu"][key], loss["device"][key]
        result = (f"cpu {a:.6f}, {loss['device']['device']} {b:.6f}, \\|Δ\\| {abs(a - b):.2e} "
                  f"(relative {abs(a - b) / max(abs(a), 1e-12):.1e})")
        rows.append((name, setting, result))
    return rows


STEPS = {"env": env_step, "sampler": sampler_step, "train": train_step_rates, "loss": loss_step}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=[*STEPS, "table"])
    parser.add_argument("--mode", choices=list(SETTINGS), default="gpu")
    parser.add_argument("--dir", type=Path, required=True, help="where the steps write their results")
    parser.add_argument("--out", type=Path, help="table: the Markdown file to write (also printed)")
    args = parser.parse_args()
    if args.step == "table":
        text = table(args.mode, args.dir)
        print(text, end="")
        if args.out:
            args.out.write_text(text)
        return
    result = STEPS[args.step](args.mode)
    (args.dir / f"{args.step}.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
