"""Benchmark: training throughput of our HRED / VHRED-LGM20 against the authors' own implementation.

Usage: python benchmarks/bench_vs_authors.py --authors /work/authors-dp [--steps 8] [--repeats 5]
       [--models hred vhred_lgm20] [--threads N]

Both implementations run in this one process on the same batches (those of ``bench_train.py``: 30 pairs of
5 context turns and a response of 8-42 ids, random ids of a 10,000-word vocabulary), one full training step
each in turn (forward, backward, gradient-norm clipping at 1, Adam at lr 1e-3), ours then theirs, step by
step, so that both see the same machine state. A repeat is one pass over the batches; the table gives the
median pairs/s over the repeats and the ratio of the medians. One untimed warm-up step each comes first.

The authors' code (ZHAOTING/dialog-processing, the multi-reference paper's) is imported from the clone given
by ``--authors`` (its ``src`` goes on ``sys.path``); nothing of it is copied here. Their models take a
config object and a tokenizer: the config holds the paper's values (their ``train.py`` defaults: 200-d
embeddings, 30-d floor embeddings, GRUs of 500, one layer each, relative floor encoder, attention, tied
weights, dropout 0.2; VHRED: 200-d latent, LGM prior of 20 components, 40,000 annealing steps, BoW loss),
with ``use_pretrained_word_embedding`` off (their default loads a GloVe file; the initial values do not
change the speed). The tokenizer is the one stub: an object with a 10,000-entry ``word2id``/``id2word`` and
their special ids (pad 0, bos 1, eos 2, as ours). Their models are built and trained on this CPU with
``torch.optim.Adam`` (their ``train.py`` uses AdamW with weight decay 0, the same update).

It also prints the exactness check of our optimised training path (``multiref.models.layers.set_optimised``:
the fused attention and the hand-differentiated GRUs): on the same weights, batch and random draws, the loss
and gradients of our model against the plain formulation.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import torch
from bench_train import SPECS, batch  # the batch shape and model entries of the training benchmark

from multiref.models.data import collate
from multiref.models.layers import set_optimised
from multiref.models.registry import build

VOCAB = 10000
PAPER = {"word_embedding_dim": 200, "attr_embedding_dim": 30, "sent_encoder_hidden_dim": 500, "n_sent_encoder_layers": 1,
         "dial_encoder_hidden_dim": 500, "n_dial_encoder_layers": 1, "decoder_hidden_dim": 500, "n_decoder_layers": 1,
         "use_attention": True, "decode_max_len": 40, "tie_weights": True, "rnn_type": "gru", "gen_type": "greedy",
         "top_k": 0, "top_p": 0.0, "temp": 1.0, "word_embedding_path": None, "floor_encoder": "rel", "dropout": 0.2,
         "use_pretrained_word_embedding": False, "latent_dim": 200, "n_components": 1, "gaussian_mix_type": "gmm",
         "n_step_annealing": 40000, "use_bow_loss": True}
AUTHORS = {"hred": ("hred", "HRED", {}), "vhred_lgm20": ("vhred", "VHRED", {"n_components": 20, "gaussian_mix_type": "lgm"})}


def stub_tokenizer() -> SimpleNamespace:
    """What the authors' model constructors read from their tokenizer: the vocabulary and the special ids."""
    word2id = {f"w{i}": i for i in range(VOCAB)}
    return SimpleNamespace(word2id=word2id, id2word={i: w for w, i in word2id.items()}, pad_token_id=0, bos_token_id=1, eos_token_id=2)


def authors_model(root: Path, name: str) -> torch.nn.Module:
    """The authors' model of this benchmark entry, built from their code with the paper's configuration."""
    # Their one-layer encoders pass dropout 0.2 to nn.GRU, which warns that it has no effect there.
    warnings.filterwarnings("ignore", message="dropout option adds dropout after all but last recurrent layer")
    src = str(root / "src")
    if src not in sys.path:
        sys.path.insert(0, src)
    module, cls, extra = AUTHORS[name]
    mod = __import__(f"model.response_gen_multi_response.{module}", fromlist=[cls])
    return getattr(mod, cls)(SimpleNamespace(**{**PAPER, **extra}), stub_tokenizer())


def ours_model(name: str) -> torch.nn.Module:
    return build(name, SPECS[name], VOCAB, {"pad_id": 0, "bos_id": 1, "eos_id": 2})


def trainer(model: torch.nn.Module, loss_of: Callable[[int, tuple[torch.Tensor, ...]], torch.Tensor]) -> Callable[[int, tuple[torch.Tensor, ...]], float]:
    """A function doing one full training step of ``model`` on a batch and returning its seconds."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()

    def step(n: int, tensors: tuple[torch.Tensor, ...]) -> float:
        start = time.perf_counter()
        loss = loss_of(n, tensors)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return time.perf_counter() - start

    return step


def ratio_rows(root: Path, name: str, batches: list[tuple[torch.Tensor, ...]], repeats: int) -> tuple[float, float]:
    """Median pairs/s of ours and the authors' over the repeats, steps interleaved."""
    torch.manual_seed(0)
    ours, theirs = ours_model(name), authors_model(root, name)
    is_latent = name != "hred"

    def their_loss(n: int, t: tuple[torch.Tensor, ...]) -> torch.Tensor:
        data = {"X": t[0], "X_floor": t[1], "Y": t[2], "Y_floor": t[3]}
        return (theirs.train_step(data, step=n) if is_latent else theirs.train_step(data))[0]["loss"]

    steps = {"ours": trainer(ours, lambda n, t: ours(*t, step=n)["loss"]), "authors": trainer(theirs, their_loss)}
    for run in steps.values():  # warm-up
        run(0, batches[0])
    rates: dict[str, list[float]] = {"ours": [], "authors": []}
    for _ in range(repeats):
        spent = dict.fromkeys(steps, 0.0)
        for n, tensors in enumerate(batches):
            for who, run in steps.items():
                spent[who] += run(n, tensors)
        for who in steps:
            rates[who].append(30 * len(batches) / spent[who])
    return statistics.median(rates["ours"]), statistics.median(rates["authors"])


def exactness(name: str, tensors: tuple[torch.Tensor, ...]) -> tuple[float, float, float]:
    """|loss difference|, the same relative to the loss, and max |gradient difference| of our optimised training
    path against the plain formulation (nn.GRU, the [B, Q, K, H] attention)."""
    torch.manual_seed(0)
    fused = ours_model(name).train()
    plain = ours_model(name).train()
    plain.load_state_dict(fused.state_dict())
    set_optimised(plain, False)
    losses, grads = [], []
    for model in (fused, plain):
        torch.manual_seed(1)  # the same dropout masks and latent draws
        loss = model(*tensors, step=100)["loss"]
        loss.backward()
        losses.append(loss.item())
        grads.append([p.grad for p in model.parameters()])
    return abs(losses[0] - losses[1]), abs(losses[0] - losses[1]) / abs(losses[1]), max(float((a - b).abs().max()) for a, b in zip(*grads, strict=True))


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--authors", type=Path, required=True, help="a clone of ZHAOTING/dialog-processing")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=list(AUTHORS), choices=list(AUTHORS))
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    batches = [collate(batch(g), 0) for _ in range(args.steps)]
    malloc = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}
    print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
          f"Python {platform.python_version()}; MALLOC_* env: {malloc or 'none set'}")
    print(f"{args.steps} steps x {args.repeats} repeats, batch 30, steps interleaved ours/authors\n")
    print("| model | ours pairs/s | authors pairs/s | ratio | optimised vs plain: abs d loss (relative) | max abs d grad |")
    print("|---|---|---|---|---|---|")
    for name in args.models:
        d_loss, relative, d_grad = exactness(name, batches[0])
        ours, theirs = ratio_rows(args.authors, name, batches, args.repeats)
        print(f"| {name} | {ours:.2f} | {theirs:.2f} | {ours / theirs:.2f}x | {d_loss:.2e} ({relative:.1e}) | {d_grad:.2e} |", flush=True)


if __name__ == "__main__":
    main()
