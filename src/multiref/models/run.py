"""One training run: a model (by name) on a data setting, saved with its config, log and summary."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from multiref.device import resolve_device
from multiref.errors import ConfigError
from multiref.io import content_digest, read_parquet_metadata, read_table, sha256_file, write_json
from multiref.mirror.triples import triple_hypotheses
from multiref.models import registry
from multiref.models.data import Example, load_vocabulary, pair_examples, setting_examples
from multiref.models.embeddings import apply_embeddings
from multiref.models.hred import parameter_count
from multiref.models.hred_tokkd import load_tokkd_student
from multiref.models.kd_data import student_specials, tokkd_examples, tokkd_pair_examples
from multiref.models.trainer import Schedule, train_model
from multiref.resumable import write_log
from multiref.teacher.format import utterance_limit
from multiref.teacher.hypotheses import load_hypotheses, shard_paths

SCHEDULE_KEYS = ("batch_size", "eval_batch_size", "lr", "max_grad_norm", "decay", "patience", "validate_every", "min_lr", "seed", "keep", "log_every")


def hypothesis_texts(manifest: Path | None, k: int) -> dict[tuple[int, int], str] | None:
    """(pair id, index) -> text for indices < k, from the gather manifest (None when k is 0)."""
    if k == 0:
        return None
    if manifest is None or not Path(manifest).is_file():
        raise ConfigError(f"the data setting needs {k} hypotheses per pair but the teacher's hypotheses are missing ({manifest})")
    cols = load_hypotheses(Path(manifest), max_index=k).select(["pair_id", "hyp_index", "text"]).to_pydict()
    return {(p, i): t for p, i, t in zip(cols["pair_id"], cols["hyp_index"], cols["text"], strict=True)}


def tokkd_inputs(
    spec: Mapping[str, Any], setting_path: Path, train_pairs: Path, dev_pairs: Path, teacher_dir: Path | None, device: str
) -> tuple[torch.nn.Module, list[Example], list[Example], dict[str, int], str]:
    """The tok-KD student (teacher attached) and its examples in the teacher's BPE vocabulary."""
    if teacher_dir is None:
        raise ConfigError("an hred_tokkd model distils the teacher: its run needs the teacher model directory")
    index = read_table(setting_path, columns=["pair_id", "hyp_index"]).to_pydict()
    if any(h >= 0 for h in index["hyp_index"]):
        raise ConfigError(f"{setting_path}: hred_tokkd learns from the teacher's distributions on the ground truth only (Table 1); use the gt setting")
    student, tokenizer = load_tokkd_student(Path(teacher_dir), {k: v for k, v in spec.items() if k != "kind"}, device)
    limit = utterance_limit(str(train_pairs))
    by_pair = tokkd_pair_examples(train_pairs, tokenizer, limit)
    train_examples = [by_pair[p] for p in index["pair_id"]]
    return student, train_examples, tokkd_examples(dev_pairs, tokenizer, limit), student_specials(tokenizer), sha256_file(Path(teacher_dir) / "tokenizer.json")


def _word_inputs(
    name: str, spec: Mapping[str, Any], setting_path: Path, train_pairs: Path, dev_pairs: Path, vocab_path: Path,
    hypotheses_manifest: Path | None, k: int, hypothesis_pairs: Path | None, init_embeddings: Path | None,
) -> tuple[torch.nn.Module, list, list, dict[str, int], str]:
    """A word-vocabulary model (every kind but tok-KD) and its examples: the model built with its specials (and
    pretrained embeddings), the training examples of the setting, the dev examples, the specials, the vocab's sha."""
    vocab = load_vocabulary(vocab_path)
    hypotheses = hypothesis_texts(hypotheses_manifest, k)
    if hypotheses is not None and hypothesis_pairs is not None:
        hypotheses = triple_hypotheses(hypotheses, train_pairs, hypothesis_pairs)
    train_examples = setting_examples(setting_path, train_pairs, hypotheses, vocab, nested=registry.is_nested(spec))
    dev_examples = list(pair_examples(dev_pairs).values())
    specials = {"pad_id": vocab.id("<pad>"), "bos_id": vocab.id("<s>"), "eos_id": vocab.id("</s>")}
    model = registry.build(name, spec, len(vocab), specials)
    if init_embeddings is not None:  # pretrained vectors (the authors: GloVe Twitter-200)
        apply_embeddings(model, np.load(init_embeddings), f"model {name!r}")
    return model, train_examples, dev_examples, specials, sha256_file(vocab_path)


def _control(schedule: Schedule, max_steps: int, n_examples: int) -> Schedule:
    """The schedule of a control run of exactly ``max_steps`` steps: as many epochs as that takes."""
    if max_steps < 1:
        raise ConfigError(f"a control run needs at least one step, got max_steps {max_steps}")
    return replace(schedule, epochs=math.ceil(max_steps / math.ceil(n_examples / schedule.batch_size)), max_steps=max_steps)


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
    teacher_dir: Path | None = None,
    init_embeddings: Path | None = None,
    checkpoint_seconds: float | None = 600.0,
    hypothesis_pairs: Path | None = None,
    max_steps: int | None = None,
) -> dict[str, Any]:
    """Train model ``name`` on the data setting ``setting_path`` of ``train_pairs``. When the training
    examples are Mirror's triples, ``hypothesis_pairs`` is the pairs file the teacher's hypotheses belong
    to (matched to the triples by session and turn). ``max_steps`` makes the run a control that takes exactly
    that many optimiser steps (epochs as many as needed; the learning-rate floor does not stop it)."""
    device = resolve_device(train_cfg["device"], "train.device")
    meta = read_parquet_metadata(setting_path)
    epochs = train_cfg["epochs"] if train_cfg["epochs"] is not None else int(meta["epochs"])
    # Table 9's "max steps" count training examples for the paper's 59,305 pairs: scale to this corpus.
    n_pairs = read_table(train_pairs, columns=["pair_id"]).num_rows
    budget = round(float(meta["paper_max_steps"]) / 59305 * n_pairs) if train_cfg["example_budget"] else None
    schedule = Schedule(epochs=epochs, max_examples=budget, batching=train_cfg.get("batching", "random"),
                        **{k: train_cfg[k] for k in SCHEDULE_KEYS})
    torch.manual_seed(schedule.seed)
    if spec.get("kind") == "hred_tokkd":
        model, train_examples, dev_examples, specials, vocab_sha = tokkd_inputs(spec, setting_path, train_pairs, dev_pairs, teacher_dir, device)
    else:
        model, train_examples, dev_examples, specials, vocab_sha = _word_inputs(
            name, spec, setting_path, train_pairs, dev_pairs, vocab_path, hypotheses_manifest, int(meta.get("k", 0)),
            hypothesis_pairs, init_embeddings,
        )
    if not train_examples:
        raise ConfigError(f"{setting_path}: the data setting has 0 training examples ({train_pairs}); nothing to train on")
    if not dev_examples:
        raise ConfigError(f"{dev_pairs}: 0 dev pairs; a run needs dev pairs for its validation and stopping rule")
    if max_steps is not None:
        schedule = _control(schedule, max_steps, len(train_examples))
    # What the run reads, by content: a checkpoint of other inputs (a changed hypothesis, say) is not resumed.
    inputs = content_digest({
        "setting": setting_path, "train": train_pairs, "dev": dev_pairs, "vocab": vocab_path,
        "hypotheses": shard_paths(hypotheses_manifest) if int(meta.get("k", 0)) and hypotheses_manifest else None,
        "hypothesis_pairs": hypothesis_pairs, "teacher": teacher_dir if spec.get("kind") == "hred_tokkd" else None,
        "embeddings": init_embeddings,
    })
    start = time.perf_counter()
    result = train_model(model, train_examples, dev_examples, schedule, work_dir / "checkpoint.pt", specials["pad_id"], device, progress,
                         checkpoint_seconds=checkpoint_seconds, inputs=inputs)
    info = {
        "model": name, "spec": dict(spec), "setting": meta.get("setting"), "parameters": parameter_count(model),
        "train_examples_per_epoch": len(train_examples), "nested": registry.is_nested(spec),
        "epochs_budget": schedule.epochs, "example_budget": budget, "max_steps": max_steps,
        "steps": result["steps"], "examples_seen": result["examples"], "stopped": result["stopped"],
        "best_dev_monitor": result["best_dev_monitor"], "kept": schedule.keep, "device": device,
        "init_embeddings": str(init_embeddings) if init_embeddings is not None and spec.get("kind") != "hred_tokkd" else None,
        "seconds_this_run": round(time.perf_counter() - start, 3),
        # forward/backward/update time over all attempts, and per pass over the 1-GT training pairs
        # (the paper's "Trn Time": the time of training on 1 GT data for 1 epoch)
        "train_seconds": round(result["train_seconds"], 3),
        "seconds_per_gt_epoch": round(result["train_seconds"] / max(result["examples"], 1) * n_pairs, 3),
    }
    registry.save(model.cpu(), name, model_path, {"vocab_sha256": vocab_sha, "info": info})
    write_log(result["log"], log_path)
    write_json(info, info_path)
    return info
