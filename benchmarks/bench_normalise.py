"""Benchmark: utterance normalisation throughput, batched spaCy ``pipe`` vs one call per utterance.

Usage: python benchmarks/bench_normalise.py [--corpus DIR] [--n 20000] [--repeats 5]

``--corpus`` is a folder with dialogues_text.txt (e.g. an extracted DailyDialog archive); without it a
synthetic corpus is generated. Prints one Markdown row for docs/benchmarks.md: the median seconds of
each method over the repeats and the ratio baseline/batched, both measured in this run.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
import zipfile
from pathlib import Path

from multiref.data.dailydialog import read_corpus
from multiref.data.synthetic import write_archive
from multiref.data.text import normalize, normalize_many


def utterances(corpus: Path | None, n: int) -> tuple[list[str], str]:
    if corpus is None:
        tmp = Path(tempfile.mkdtemp())
        write_archive(tmp / "s.zip", tmp / "s.parquet", n_dialogues=max(10, n // 4), seed=1)
        with zipfile.ZipFile(tmp / "s.zip") as zf:
            zf.extractall(tmp)
        corpus, label = tmp / "ijcnlp_dailydialog", "synthetic"
    else:
        label = "DailyDialog"
    flat = [u for d in read_corpus(corpus) for u in d.utterances]
    return flat[:n], label


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    texts, label = utterances(args.corpus, args.n)
    normalize("warm up")  # load spaCy once, outside the timings
    timings: dict[str, list[float]] = {"per-utterance (baseline)": [], "batched pipe": []}
    for _ in range(args.repeats):
        start = time.perf_counter()
        a = [normalize(t) for t in texts]
        timings["per-utterance (baseline)"].append(time.perf_counter() - start)
        start = time.perf_counter()
        b = list(normalize_many(texts))
        timings["batched pipe"].append(time.perf_counter() - start)
        assert a == b, "the two methods disagree"
    base, fast = (statistics.median(v) for v in timings.values())
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}")
    print("| corpus | utterances | repeats | per-utterance median s | batched median s | speed-up |")
    print("|---|---|---|---|---|---|")
    print(f"| {label} | {len(texts)} | {args.repeats} | {base:.3f} | {fast:.3f} | {base / fast:.2f}x |")


if __name__ == "__main__":
    main()
