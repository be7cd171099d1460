"""Hypotheses of the teacher for every training pair, in Parquet shards (scatter), validated (gather).

Shard ``s`` of ``S`` holds the contiguous block of training pairs ``[s*P//S, (s+1)*P//S)`` and, for
each, hypotheses ``0..N-1`` in sampling order. Settings with K < N hypotheses use indices ``0..K-1``
(the authors slice ``[:K]``), so 1 ⊂ 5 ⊂ 20 ⊂ 100. A shard is generated in chunks of pairs, each with
its own seed derived from (seed, shard, chunk) and saved in a work folder, so a killed shard resumes
with the chunks it has and gives the same bytes as an uninterrupted run. On SIGTERM/SIGUSR1 the chunk
under way is finished and saved, then the job stops (:mod:`multiref.preempt`) to be resumed.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from tqdm import tqdm

from multiref.device import resolve_device
from multiref.errors import MultirefError
from multiref.io import content_digest, move_aside, sha256_file, write_json, write_parquet
from multiref.preempt import Checkpointer, preemptible
from multiref.teacher.format import TeacherFormat, utterance_limit
from multiref.teacher.sampler import check_sampling, sample

HYPOTHESIS_SCHEMA = pa.schema(
    [
        pa.field("pair_id", pa.int64(), nullable=False),
        pa.field("hyp_index", pa.int16(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("n_tokens", pa.int16(), nullable=False),  # teacher (BPE) tokens, without </s>
        pa.field("logprob", pa.float64(), nullable=False),
        pa.field("finished", pa.bool_(), nullable=False),
    ]
)


class ShardError(MultirefError):
    """A hypothesis shard is missing, unreadable or incomplete."""


@dataclass(frozen=True)
class SamplingConfig:
    n: int = 100
    top_p: float = 0.95
    temperature: float = 1.0
    max_new_tokens: int = 40
    batch_contexts: int = 32
    chunk_pairs: int = 512
    seed: int = 42
    dtype: str = "auto"  # auto: bf16 on CUDA, fp32 on CPU

    def check(self) -> None:
        check_sampling(self.top_p, self.temperature, self.n, self.max_new_tokens)
        if self.chunk_pairs < 1 or self.batch_contexts < 1:
            raise ValueError("chunk_pairs and batch_contexts must be at least 1")


def shard_range(n_pairs: int, shards: int, index: int) -> tuple[int, int]:
    """Row range ``[start, stop)`` of the training pairs in shard ``index`` of ``shards``."""
    if shards < 1:
        raise ValueError(f"the number of shards must be at least 1, got {shards}")
    if not 0 <= index < shards:
        raise ValueError(f"shard index {index} outside 0..{shards - 1}")
    return index * n_pairs // shards, (index + 1) * n_pairs // shards


def chunk_seed(seed: int, shard: int, chunk: int) -> int:
    digest = hashlib.sha256(f"{seed}/{shard}/{chunk}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _dtype(name: str, device: str) -> torch.dtype | None:
    if name == "auto":
        return torch.bfloat16 if device.startswith("cuda") else None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


@preemptible
def generate_shard(
    teacher_dir: Path,
    pairs_path: Path,
    shard: int,
    shards: int,
    cfg: SamplingConfig,
    out_path: Path,
    work_dir: Path,
    device: str = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """Sample ``cfg.n`` hypotheses for every pair of one shard and write them as Parquet."""
    from multiref.teacher.model import load_teacher  # transformers: only the sampling job needs it

    cfg.check()
    device = resolve_device(device, "teacher.device")
    model, tokenizer = load_teacher(teacher_dir, device)
    fmt = TeacherFormat(tokenizer, utterance_limit(str(pairs_path)))
    table = pq.read_table(pairs_path, columns=["pair_id", "context", "context_floors", "response_floor"])
    start, stop = shard_range(table.num_rows, shards, shard)
    rows = table.slice(start, stop - start).to_pydict()
    max_prefix = model.config.n_positions - cfg.max_new_tokens
    if max_prefix < 3:
        raise ValueError(f"max_new_tokens={cfg.max_new_tokens} leaves no room for a context in {model.config.n_positions} positions")
    prefixes = [
        fmt.prefix(c, f, rf, max_prefix)
        for c, f, rf in zip(rows["context"], rows["context_floors"], rows["response_floor"], strict=True)
    ]
    teacher_sha = sha256_file(teacher_dir / "model.safetensors")
    # The chunks of an earlier attempt are reused only with the same sampling settings, teacher (every file of
    # it, the tokenizer too) and training pairs, by content.
    inputs = content_digest({"teacher": teacher_dir, "pairs": pairs_path})
    key = hashlib.sha256(repr((asdict(cfg), inputs, shard, shards)).encode()).hexdigest()[:16]
    parts_dir = work_dir / f"shard{shard:04d}-{key}"
    parts_dir.mkdir(parents=True, exist_ok=True)
    dtype = _dtype(cfg.dtype, device)
    chunks = range(0, len(prefixes), cfg.chunk_pairs)
    ckpt = Checkpointer(None)  # every chunk is a checkpoint
    parts = []
    for number, lo in enumerate(tqdm(chunks, desc=f"shard {shard}", unit="chunk", disable=not progress)):
        part = parts_dir / f"chunk{number:05d}.parquet"
        parts.append(part)
        hi = min(lo + cfg.chunk_pairs, len(prefixes))
        if part.exists() and _readable_chunk(part, (hi - lo) * cfg.n):
            logging.getLogger("multiref").info("resuming: chunk %d of shard %d was saved by an earlier attempt (%s)", number, shard, part)
            continue
        hyps = sample(
            model, prefixes[lo:hi], cfg.n, tokenizer.eos_token_id, tokenizer.pad_token_id, cfg.top_p,
            cfg.temperature, cfg.max_new_tokens, chunk_seed(cfg.seed, shard, number), cfg.batch_contexts, dtype,
        )
        cols: dict[str, list] = {name: [] for name in HYPOTHESIS_SCHEMA.names}
        for pair_id, per_pair in zip(rows["pair_id"][lo:hi], hyps, strict=True):
            for index, hyp in enumerate(per_pair):
                cols["pair_id"].append(pair_id)
                cols["hyp_index"].append(index)
                cols["text"].append(fmt.decode(hyp.token_ids))
                cols["n_tokens"].append(len(hyp.token_ids))
                cols["logprob"].append(hyp.logprob)
                cols["finished"].append(hyp.finished)
        write_parquet(pa.table(cols, schema=HYPOTHESIS_SCHEMA), part)
        ckpt.saved(part)
    tables = [pq.read_table(p) for p in parts]
    result = pa.concat_tables(tables) if tables else HYPOTHESIS_SCHEMA.empty_table()
    meta = {
        "stage": "hypotheses",
        "shard": shard,
        "shards": shards,
        "pair_rows": [start, stop],
        "sampling": asdict(cfg),
        "device": device,
        "teacher_sha256": teacher_sha,
    }
    write_parquet(result, out_path, meta)
    shutil.rmtree(parts_dir, ignore_errors=True)
    return meta | {"rows": result.num_rows}


def _readable_chunk(part: Path, rows: int) -> bool:
    """Whether a saved chunk can be reused: a readable hypothesis table of ``rows`` rows; otherwise it is moved
    aside with a warning (it will be sampled again)."""
    try:
        table = pq.read_table(part)
        if table.num_rows != rows or not table.schema.equals(HYPOTHESIS_SCHEMA, check_metadata=False):
            raise ShardError(f"{table.num_rows} rows of schema {table.schema.names}, expected {rows} hypotheses")
    except (ShardError, OSError, pa.ArrowException) as exc:
        move_aside(part, str(exc))
        return False
    return True


def gather(shard_paths: Sequence[Path], pairs_path: Path, n: int, manifest_path: Path, delete_corrupt: bool = True) -> dict[str, Any]:
    """Validate every shard and write a manifest; a bad shard is named (and deleted, so a rerun
    regenerates exactly that one).

    Checks: readable Parquet with the hypothesis schema; the shard's pair ids are exactly its block of
    the training pairs; rows = pairs x ``n``; every (pair, index 0..n-1) present once.
    """
    pair_ids = pq.read_table(pairs_path, columns=["pair_id"]).column("pair_id").to_numpy()
    problems: list[str] = []
    entries = []
    totals = {"rows": 0, "empty": 0, "unfinished": 0, "tokens": 0}
    for index, path in enumerate(shard_paths):
        path = Path(path)
        start, stop = shard_range(len(pair_ids), len(shard_paths), index)
        try:
            if not path.exists():
                raise ShardError("missing")
            table = pq.read_table(path)
            if not table.schema.equals(HYPOTHESIS_SCHEMA, check_metadata=False):
                raise ShardError(f"unexpected schema {table.schema}")
            expected_rows = (stop - start) * n
            if table.num_rows != expected_rows:
                raise ShardError(f"{table.num_rows} rows, expected {stop - start} pairs x {n} = {expected_rows}")
            pid = table.column("pair_id").to_numpy()
            hidx = table.column("hyp_index").to_numpy()
            want_pid = pair_ids[start:stop].repeat(n)
            if not (pid == want_pid).all():
                raise ShardError("pair ids differ from the shard's block of training pairs (or are out of order)")
            if not (hidx == np.tile(np.arange(n), stop - start)).all():
                raise ShardError(f"hypothesis indices are not 0..{n - 1} for every pair (missing or duplicated)")
        except (ShardError, OSError, pa.ArrowException) as exc:
            problems.append(f"shard {index} ({path}): {exc}")
            if delete_corrupt and path.exists():
                path.unlink()
            continue
        empty = int(pc.sum(pc.equal(table.column("n_tokens"), 0)).as_py() or 0)
        unfinished = int(pc.sum(pc.invert(table.column("finished"))).as_py() or 0)
        tokens = int(pc.sum(table.column("n_tokens")).as_py() or 0)
        entries.append({"path": str(path), "rows": table.num_rows, "pairs": [start, stop], "sha256": sha256_file(path), "empty": empty})
        totals = {"rows": totals["rows"] + table.num_rows, "empty": totals["empty"] + empty,
                  "unfinished": totals["unfinished"] + unfinished, "tokens": totals["tokens"] + tokens}
    if problems:
        raise ShardError(
            "invalid hypothesis shards (deleted, so that rerunning regenerates only these):\n  " + "\n  ".join(problems)
        )
    manifest = {
        "pairs": len(pair_ids),
        "hypotheses_per_pair": n,
        "rows": totals["rows"],
        "empty_hypotheses": totals["empty"],
        "unfinished_hypotheses": totals["unfinished"],
        "mean_tokens": totals["tokens"] / totals["rows"] if totals["rows"] else 0.0,
        "shards": entries,
    }
    write_json(manifest, manifest_path)
    return manifest


def shard_paths(manifest_path: Path) -> list[Path]:
    """The shard files a gather manifest lists, in shard order."""
    import json

    return [Path(entry["path"]) for entry in json.loads(Path(manifest_path).read_text())["shards"]]


def load_hypotheses(manifest_path: Path, max_index: int | None = None) -> pa.Table:
    """All hypotheses listed in a gather manifest (memory-mapped), optionally only indices < max_index."""
    import json

    manifest = json.loads(Path(manifest_path).read_text())
    tables = [pq.read_table(entry["path"], memory_map=True) for entry in manifest["shards"]]
    table = pa.concat_tables(tables)
    if max_index is not None:
        table = table.filter(pc.less(table.column("hyp_index"), max_index))
    return table
