"""One training run: a model (by name) on a data setting, saved with its config, log and summary."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import torch

from multiref.errors import ConfigError
from multiref.io import read_parquet_metadata, sha256_file, write_json
from multiref.models import registry
from multiref.models.data import load_vocabulary, pair_examples, setting_examples
from multiref.models.hred import parameter_count
from multiref.models.train import Schedule, train_model
from multiref.training import write_log
from multiref.teacher.hypotheses import load_hypotheses
from multiref.teacher.model import resolve_device

SCHEDULE_KEYS = ("batch_size", "eval_batch_size", "lr", "max_grad_norm", "decay", "patience", "validate_every", "min_lr", "seed", "keep", "log_every")


def hypothesis_texts(manifest: Path | None, k: int) -> dict[tuple[int, int], str] | None:
    """(pair id, index) -> text for indices < k, from the gather manifest (None when k is 0)."""
    if k == 0:
        return None
    if manifest is None or not Path(manifest).is_file():
        raise ConfigError(f"the data setting needs {k} hypotheses per pair but the teacher's hypotheses are missing ({manifest})")
    cols = load_hypotheses(Path(manifest), max_index=k).select(["pair_id", "hyp_index", "text"]).to_pydict()
    return {(p, i): t for p, i, t in zip(cols["pair_id"], cols["hyp_index"], cols["text"], strict=True)}


def train_run(
    name: str,
    spec: Mapping[str, Any],
    train_cfg: Mapping[str, Any],
    setting_path: Path,
    train_pairs: Path,
    dev_pairs: Path,
    vocab_path: Path,
    hypotheses_manifest: Path | None,
    model_path: Path,
    log_path: Path,
    info_path: Path,
    work_dir: Path,
    progress: bool = True,
) -> dict[str, Any]:
    device = resolve_device(train_cfg["device"])
    meta = read_parquet_metadata(setting_path)
    vocab = load_vocabulary(vocab_path)
    train_examples = setting_examples(setting_path, train_pairs, hypothesis_texts(hypotheses_manifest, int(meta.get("k", 0))), vocab)
    dev_examples = list(pair_examples(dev_pairs).values())
    epochs = train_cfg["epochs"] if train_cfg["epochs"] is not None else int(meta["epochs"])
    # Table 9's "max steps" count training examples for the paper's 59,305 pairs: scale to this corpus.
    n_pairs = pq.read_metadata(train_pairs).num_rows
    budget = round(float(meta["paper_max_steps"]) / 59305 * n_pairs) if train_cfg["example_budget"] else None
    schedule = Schedule(epochs=epochs, max_examples=budget, **{k: train_cfg[k] for k in SCHEDULE_KEYS})
    specials = {"pad_id": vocab.id("<pad>"), "bos_id": vocab.id("<s>"), "eos_id": vocab.id("</s>")}
    torch.manual_seed(schedule.seed)
    model = registry.build(name, spec, len(vocab), specials)
    start = time.perf_counter()
    result = train_model(model, train_examples, dev_examples, schedule, work_dir / "checkpoint.pt", specials["pad_id"], device, progress)
    info = {
        "model": name,
        "spec": dict(spec),
        "setting": meta.get("setting"),
        "parameters": parameter_count(model),
        "train_examples_per_epoch": len(train_examples),
        "epochs_budget": epochs,
        "example_budget": budget,
        "steps": result["steps"],
        "examples_seen": result["examples"],
        "stopped": result["stopped"],
        "best_dev_loss": result["best_dev_loss"],
        "kept": schedule.keep,
        "device": device,
        "seconds_this_run": round(time.perf_counter() - start, 3),
    }
    registry.save(model.cpu(), name, model_path, {"vocab_sha256": sha256_file(vocab_path), "info": info})
    write_log(result["log"], log_path)
    write_json(info, info_path)
    return info
