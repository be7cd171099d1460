"""The Reval stage of the pipeline: train the evaluator on the judgements, and score a run's test responses.

- :func:`configs_from` turns the ``reval:`` section of the configuration into :class:`RevalConfig` and
  :class:`PretrainConfig`.
- :func:`train_stage` splits the judgements by context (or by item, as the authors), pre-trains on the
  pipeline's training pairs (next-utterance prediction), trains on the train part with the dev part for the
  lr schedule, saves the evaluator directory and writes the held-out correlations (JSON) and per-item
  predictions (Parquet); with a work directory, the training is resumable after a kill or preemption.
- :func:`score_stage` scores ``decode.parquet`` (or ``by_component.parquet``) against the test contexts.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from multiref import reval as R
from multiref.errors import ConfigError, MultirefError
from multiref.io import write_json, write_parquet

HELDOUT_SCHEMA = pa.schema([
    ("item", pa.int64()), ("dialogue_id", pa.string()), ("model", pa.string()), ("split", pa.string()),
    ("human", pa.float64()), ("reval", pa.float64()),
])
SCORE_SCHEMA = pa.schema([("pair_id", pa.int64()), ("reval", pa.float64())])
COMPONENT_SCHEMA = pa.schema([("k", pa.int32()), ("pair_id", pa.int64()), ("reval", pa.float64())])
CHECKPOINT_FILE = "checkpoint.pt"  # the training state in the rule's work directory (kept after training)


def configs_from(section: Mapping[str, Any], device: str | None = None) -> tuple[R.RevalConfig, R.PretrainConfig]:
    """``reval.encoder`` + ``reval.train`` -> RevalConfig, ``reval.pretrain`` -> PretrainConfig."""
    train = dict(section.get("train", {}))
    try:
        cfg = R.RevalConfig(encoder=section["encoder"], device=device, **train)
        pre = R.PretrainConfig(**dict(section.get("pretrain", {})))
    except TypeError as exc:
        raise ConfigError(f"reval: {exc}") from exc
    return cfg, pre


def split_judgements(
    df: pd.DataFrame, by: str, dev_share: float, test_share: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(train, dev, test) by context (:func:`split_by_context`) or by item (the authors': shuffle the judged
    responses, 80/10/10 for the default shares), each keeping an ``item`` column (row in ``df``)."""
    df = df.assign(item=np.arange(len(df)))
    if by == "context":
        return R.split_by_context(df, dev_share, test_share, seed)
    if by != "item":
        raise ConfigError(f"reval.split.by must be 'context' or 'item', got {by!r}")
    if dev_share < 0 or test_share < 0 or dev_share + test_share >= 1:
        raise ConfigError(f"reval.split: dev_share + test_share must be in [0, 1), got {dev_share} + {test_share}")
    order = np.random.default_rng(seed).permutation(len(df))
    n_train = int(len(df) * (1 - dev_share - test_share))
    n_dev = int(len(df) * (1 - test_share)) - n_train
    parts = order[:n_train], order[n_train:n_train + n_dev], order[n_train + n_dev:]
    return tuple(df.iloc[np.sort(p)].reset_index(drop=True) for p in parts)  # type: ignore[return-value]


def train_stage(
    judgements: Path,
    train_pairs: Path | None,
    section: Mapping[str, Any],
    model_dir: Path,
    heldout_json: Path,
    heldout_parquet: Path,
    device: str | None = None,
    progress: bool = True,
    work_dir: Path | None = None,
    checkpoint_seconds: float | None = 600.0,
) -> dict[str, Any]:
    """Train the evaluator as configured in ``section`` (the ``reval:`` configuration) and report held-out
    correlations. ``train_pairs`` (the pipeline's training pairs) feed the pre-training when
    ``section['pretrain']['epochs'] > 0``. With ``work_dir``, the training state is saved to
    ``work_dir/checkpoint.pt`` (:data:`CHECKPOINT_FILE`; every ``checkpoint_seconds``, at each epoch end and on
    SIGTERM/SIGUSR1) and a rerun resumes from it (``train_reval(checkpoint=...)``)."""
    start = time.time()
    cfg, pre = configs_from(section, device)
    score_name = section.get("judgements", {}).get("score", "appropriateness")
    df = R.load_judgements(judgements, score_name)
    split = dict(section.get("split", {}))
    by, dev_share, test_share, seed = (split.get("by", "context"), float(split.get("dev_share", 0.1)),
                                       float(split.get("test_share", 0.1)), int(split.get("seed", 42)))
    train, dev, test = split_judgements(df, by, dev_share, test_share, seed)
    examples = None
    if pre.epochs > 0:
        if train_pairs is None:
            raise ConfigError("reval.pretrain.epochs > 0 needs the training pairs (data/pairs/train.parquet)")
        pairs = pq.read_table(train_pairs, columns=["context", "response"]).to_pandas()
        examples = R.next_utterance_examples(pairs, pre.max_pairs, pre.seed)
    checkpoint = work_dir / CHECKPOINT_FILE if work_dir is not None else None
    summary = R.train_reval(train, dev if len(dev) else None, cfg, model_dir, progress=progress,
                            pretrain=pre, pretrain_examples=examples, checkpoint=checkpoint,
                            checkpoint_seconds=checkpoint_seconds)
    model, tokenizer = R.load_reval(model_dir, device=device)
    rows = []
    results: dict[str, Any] = {}
    for name, part in (("train", train), ("dev", dev), ("test", test)):
        pred = R.score(model, tokenizer, list(part["context"]), list(part["response"]), cfg.eval_batch_size)
        results[name] = R.correlations(pred, list(part["score"])) if len(part) else None
        rows += [{"item": int(i), "dialogue_id": d, "model": m, "split": name, "human": float(h), "reval": float(p)}
                 for i, d, m, h, p in zip(part["item"], part["dialogue_id"], part["model"], part["score"], pred)]
    table = pa.Table.from_pylist(rows, schema=HELDOUT_SCHEMA)
    meta = {"stage": "reval_train", "encoder": cfg.encoder, "judgements": str(judgements)}
    write_parquet(table, heldout_parquet, metadata=meta)
    report = {
        "heldout": results["test"],
        "dev": results["dev"],
        "train": results["train"],
        "split": {"by": by, "dev_share": dev_share, "test_share": test_share, "seed": seed,
                  "items": {"train": len(train), "dev": len(dev), "test": len(test)},
                  "contexts": {k: int(v["context"].map(tuple).nunique()) for k, v in
                               (("train", train), ("dev", dev), ("test", test))}},
        "encoder": cfg.encoder,
        "score": score_name,
        "judgements": str(judgements),
        "pretrain": summary["pretrain"],
        "training": {k: summary[k] for k in ("steps", "epochs_run", "final_lr", "seconds", "n_train", "n_dev",
                                            "keep", "kept_validation")},
        "dev_history": summary["history"],
        "config": cfg.to_dict(),
        "seconds": time.time() - start,
    }
    write_json(_finite(report), heldout_json)
    return report


def _finite(obj: Any) -> Any:
    """NaN -> None, so the JSON is standard."""
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def score_stage(
    model_dir: Path,
    decode: Path,
    test_pairs: Path,
    out_parquet: Path,
    out_json: Path | None = None,
    batch_size: int = 30,
    device: str | None = None,
    by_component: bool = False,
) -> dict[str, Any]:
    """Reval score of every hypothesis of ``decode`` (``pair_id``, ``hypothesis``, and ``k`` when
    ``by_component``) given its test context; writes ``out_parquet`` (pair_id, reval; k first when by component)
    and, if given, ``out_json`` ({"reval": mean, "pairs": n, "evaluator": ...})."""
    columns = ["pair_id", "hypothesis"] + (["k"] if by_component else [])
    try:
        hyp = pq.read_table(decode, columns=columns).to_pandas()
    except (KeyError, pa.ArrowInvalid) as exc:
        raise MultirefError(f"{decode}: needs the columns {columns} ({exc})") from exc
    pairs = pq.read_table(test_pairs, columns=["pair_id", "context"]).to_pandas()
    contexts = dict(zip(pairs["pair_id"].tolist(), pairs["context"], strict=True))
    missing = sorted(set(hyp["pair_id"].tolist()) - set(contexts))
    if missing:
        raise MultirefError(f"{decode}: {len(missing)} pair ids are not in {test_pairs} (first: {missing[:5]})")
    t0 = time.time()
    model, tokenizer = R.load_reval(model_dir, device=device)
    loaded = time.time() - t0
    scores = R.score(model, tokenizer, [list(contexts[p]) for p in hyp["pair_id"]],
                     [str(h) for h in hyp["hypothesis"]], batch_size=batch_size)
    cfg = model.cfg or R.RevalConfig()
    evaluator = {"dir": str(model_dir), "encoder": cfg.encoder}
    meta = {"stage": "reval_score", "decode": str(decode), "evaluator": evaluator}
    if by_component:
        table = pa.table({"k": pa.array(hyp["k"].astype("int32")), "pair_id": pa.array(hyp["pair_id"].astype("int64")),
                          "reval": pa.array(scores, pa.float64())}, schema=COMPONENT_SCHEMA)
    else:
        table = pa.table({"pair_id": pa.array(hyp["pair_id"].astype("int64")), "reval": pa.array(scores, pa.float64())},
                         schema=SCORE_SCHEMA)
    write_parquet(table, out_parquet, metadata=meta)
    summary = {"reval": float(np.mean(scores)) if scores else None, "pairs": len(scores), "evaluator": evaluator,
               "seconds": {"load": loaded, "total": time.time() - t0}}
    if out_json is not None:
        write_json(summary, out_json)
    return summary
