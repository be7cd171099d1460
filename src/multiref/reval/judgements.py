"""The human judgements the evaluator learns from: the authors' release, a local copy, read and split.

Every source ends as one JSON file in the DSTC10 Track 5 turn-level format that :func:`load_judgements` reads:
a list of items with ``dialogue_id``, ``model``, ``context`` (turns separated by newlines), ``response``,
``reference`` (list) and ``annotations`` (score name -> list of the annotators' 1-5 scores).

- ``download``: the authors' release on Zenodo (record 3828180, ``ACL2020_data.zip``; its DailyDialog file is
  the Amazon Mechanical Turk result, a JSON object dialogue id -> ``context`` ([floor, text] pairs),
  ``reference`` ([floor, text]) and ``responses`` (system -> ``uttr`` and ``scores``: worker -> score name ->
  value, with ``<name>_is_outlier`` flags once the authors' ``mark_outliers`` has run)). It is converted by
  :func:`amt_to_items`: "overall" becomes ``appropriateness`` (the DSTC10 copy's name for it), flagged
  scores are left out as in the authors' ``build_response_eval_dataset.py``.
- ``local``: a file given by path: that zip, the AMT JSON object, or a JSON list already in the DSTC10 format
  (as ``dailydialog-zhao_eval.json`` of DSTC10 Track 5).
- ``synthetic`` (the demo): :mod:`multiref.reval.synthetic`.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from multiref.data import acquire
from multiref.errors import ChecksumError, ConfigError
from multiref.io import atomic_path, sha256_file, write_json

REQUIRED_FIELDS = ("dialogue_id", "model", "context", "response", "annotations")
SCORE_MIN, SCORE_MAX = 1.0, 5.0  # the scale of the human judgements
# score names of the authors' AMT results -> names in the DSTC10 format ("overall" is DSTC10's "appropriateness")
AMT_SCORE_NAMES = {"overall": "appropriateness", "content": "content", "grammar": "grammar", "relevance": "relevance"}

Context = Sequence[str] | str


# --------------------------------------------------------------------------------------------------------------
# The authors' release and local copies


def amt_to_items(obj: Mapping[str, Any], path: str | Path) -> list[dict[str, Any]]:
    """The authors' AMT results (dialogue id -> context, reference, responses) as DSTC10-format items.

    Responses without ``scores`` are skipped (as the authors do). A worker's score is left out when its
    ``<name>_is_outlier`` flag is true; a score with every worker flagged is dropped from the item, and an item
    left with no ``appropriateness`` score is skipped. Raises ConfigError naming ``path`` and the dialogue on
    malformed input.
    """
    items: list[dict[str, Any]] = []
    for dialog_id, dialog in obj.items():
        where = f"{path}: dialogue {dialog_id!r}"
        if not isinstance(dialog, Mapping) or not {"context", "responses"} <= set(dialog):
            raise ConfigError(f"{where}: expected an object with 'context' and 'responses'")
        try:
            context = [str(turn[1]) for turn in dialog["context"]]
        except (TypeError, IndexError, KeyError) as exc:
            raise ConfigError(f"{where}, field 'context': expected a list of [floor, text] pairs") from exc
        reference = dialog.get("reference")
        ref_text = [str(reference[1])] if isinstance(reference, (list, tuple)) and len(reference) > 1 else []
        if not isinstance(dialog["responses"], Mapping):
            raise ConfigError(f"{where}, field 'responses': expected an object system -> response")
        for system, response in dialog["responses"].items():
            if not isinstance(response, Mapping) or "scores" not in response:
                continue
            if "uttr" not in response or not isinstance(response["scores"], Mapping):
                raise ConfigError(f"{where}, response of {system!r}: expected 'uttr' and a 'scores' object")
            annotations: dict[str, list[float]] = {}
            for raw_name, name in AMT_SCORE_NAMES.items():
                values = []
                for worker, scores in response["scores"].items():
                    if not isinstance(scores, Mapping):
                        raise ConfigError(f"{where}, response of {system!r}, worker {worker!r}: expected an object")
                    if raw_name not in scores or scores.get(f"{raw_name}_is_outlier", False):
                        continue
                    values.append(scores[raw_name])
                if values:
                    annotations[name] = values
            if "appropriateness" not in annotations:
                continue
            items.append({"dialogue_id": str(dialog_id), "model": str(system), "context": "\n".join(context),
                          "response": str(response["uttr"]), "reference": ref_text, "annotations": annotations})
    if not items:
        raise ConfigError(f"{path}: no scored responses found in the AMT results")
    return items


def read_judgement_items(path: str | Path, member: str = "dd_annotations.json") -> list[dict[str, Any]]:
    """Items in the DSTC10 format from a zip (its member whose file name is ``member``), an AMT JSON object or a
    DSTC10 JSON list. Item-level checks are :func:`load_judgements`'s."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{p}: is a directory, not a judgements file")
    if not p.is_file():
        raise ConfigError(f"{p}: judgements file not found")
    label = str(p)
    try:
        if zipfile.is_zipfile(p):
            label = f"{p}!{member}"
            with zipfile.ZipFile(p) as archive:
                names = [n for n in archive.namelist() if PurePosixPath(n).name == member]
                if not names:
                    raise ConfigError(f"{p}: no member named {member!r} (reval.judgements.member); members: "
                                      f"{', '.join(archive.namelist()[:30])}")
                data = archive.read(min(names, key=len))
        else:
            data = p.read_bytes()
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{label}: not UTF-8 text (byte {exc.start}: {data[exc.start:exc.start + 1]!r}); "
                          "expected the judgements as JSON") from exc
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ConfigError(f"{label}: cannot read the judgements ({exc}); the file may be truncated or corrupt") from exc
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{label}: not valid JSON ({exc})") from exc
    if isinstance(obj, list):
        return obj
    if isinstance(obj, dict):
        return amt_to_items(obj, label)
    raise ConfigError(f"{label}: expected a JSON list of items or an object of AMT results, got {type(obj).__name__}")


def download(url: str, dest: Path, timeout: float = 120.0) -> None:
    """Download the judgements atomically (the corpus's downloader); on failure say how to use a local copy."""
    acquire.download(
        url, dest, timeout, what="the Reval judgements",
        remedy="Download them by other means and set 'reval.judgements.source: local' and 'reval.judgements.path' to "
        "the file (the zip, its dd_annotations.json, or DSTC10's dailydialog-zhao_eval.json)",
    )


def acquire_judgements(
    source: str,
    out_json: Path,
    *,
    url: str | None = None,
    path: str | None = None,
    member: str = "dd_annotations.json",
    sha256: str | None = None,
    score_name: str = "appropriateness",
    work_dir: Path | None = None,
) -> dict[str, Any]:
    """Download or copy the judgements, check the sha256 of the file as obtained (when given), convert them to
    the DSTC10 format, validate them with :func:`load_judgements` and write ``out_json``. Returns a summary."""
    if source == "download":
        if not url:
            raise ConfigError("reval.judgements.url is empty but reval.judgements.source is 'download'")
        work = work_dir or out_json.parent
        raw = work / (PurePosixPath(url.split("?", 1)[0]).name or "judgements.download")
        download(url, raw)
        origin: dict[str, Any] = {"kind": "download", "url": url}
    elif source == "local":
        if not path:
            raise ConfigError("reval.judgements.path is empty but reval.judgements.source is 'local'")
        raw = Path(path).expanduser()
        origin = {"kind": "local", "path": str(raw)}
    else:
        raise ConfigError(f"acquire_judgements: source must be 'download' or 'local', got {source!r}")
    if raw.is_dir():
        raise ConfigError(f"{raw}: is a directory, not a judgements file (reval.judgements.path)")
    if not raw.is_file():
        raise ConfigError(f"{raw}: judgements file not found (reval.judgements.path)")
    observed = sha256_file(raw)
    if sha256 and observed != sha256.lower():
        raise ChecksumError(f"{raw}: sha256 {observed} differs from reval.judgements.sha256 {sha256}")
    items = read_judgement_items(raw, member)
    with atomic_path(out_json) as tmp:
        tmp.write_text(json.dumps(items, indent=1) + "\n", encoding="utf-8")
        try:
            df = load_judgements(tmp, score_name)  # fails (naming item and field) before anything is renamed
        except ConfigError as exc:  # name the file the items came from, not the temporary one
            raise ConfigError(str(exc).replace(str(tmp), str(raw))) from exc
    return {**origin, "sha256": observed, "sha256_expected": sha256, "items": len(df),
            "contexts": int(df["context"].map(tuple).nunique()), "score": score_name}


# --------------------------------------------------------------------------------------------------------------
# Human judgements


def _item_error(path: Path, index: int, field: str, problem: str) -> ConfigError:
    return ConfigError(f"{path}: item {index}, field '{field}': {problem}")


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(float(x))


def load_judgements(path: str | os.PathLike[str], score_name: str = "appropriateness") -> pd.DataFrame:
    """Read the human judgements (``dailydialog-zhao_eval.json``): one row per judged response.

    Columns: ``dialogue_id``, ``model`` (the system that produced the response), ``context`` (list of turns,
    oldest first), ``response``, ``reference`` (the first reference, or None), ``annotator_scores`` (list) and
    ``score`` = the mean of the annotators' ``score_name`` scores. ``appropriateness`` is the 2020 paper's
    "overall". The authors average only the annotators not flagged as outliers; this copy has no flags, so all
    annotators are averaged. Raises ConfigError naming the file, item and field on any malformed input.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: judgements file not found")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from exc
    if not text.strip():
        raise ConfigError(f"{p}: judgements file is empty")
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{p}: not valid JSON ({exc})") from exc
    if not isinstance(items, list):
        raise ConfigError(f"{p}: expected a JSON list of items, got {type(items).__name__}")
    if not items:
        raise ConfigError(f"{p}: the list of items is empty")
    rows = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ConfigError(f"{p}: item {i} is a {type(item).__name__}, expected an object")
        for field in REQUIRED_FIELDS:
            if field not in item:
                raise _item_error(p, i, field, "missing")
        for field in ("dialogue_id", "model", "response"):
            if not isinstance(item[field], str):
                raise _item_error(p, i, field, f"expected a string, got {item[field]!r}")
        context = item["context"]
        if isinstance(context, str):
            turns = context.split("\n")
        elif isinstance(context, list) and all(isinstance(t, str) for t in context):
            turns = list(context)
        else:
            raise _item_error(p, i, "context", "expected a string (turns separated by newlines) or a list of strings")
        annotations = item["annotations"]
        if not isinstance(annotations, dict):
            raise _item_error(p, i, "annotations", "expected an object of score lists")
        field = f"annotations.{score_name}"
        if score_name not in annotations:
            raise _item_error(p, i, field, "missing")
        raw = annotations[score_name]
        if not isinstance(raw, list) or not raw:
            raise _item_error(p, i, field, f"expected a non-empty list of scores, got {raw!r}")
        for s in raw:
            if not _is_number(s):
                raise _item_error(p, i, field, f"non-numeric score {s!r}")
            if not SCORE_MIN <= float(s) <= SCORE_MAX:
                raise _item_error(p, i, field, f"score {s!r} outside {SCORE_MIN:g}..{SCORE_MAX:g}")
        reference = item.get("reference")
        if isinstance(reference, list):
            reference = reference[0] if reference else None
        if reference is not None and not isinstance(reference, str):
            raise _item_error(p, i, "reference", f"expected a string or a list of strings, got {reference!r}")
        scores = [float(s) for s in raw]
        rows.append(
            {
                "dialogue_id": item["dialogue_id"],
                "model": item["model"],
                "context": turns,
                "response": item["response"],
                "reference": reference,
                "annotator_scores": scores,
                "score": float(np.mean(scores)),
            }
        )
    return pd.DataFrame(rows)


def _context_key(context: Context) -> str:
    return context if isinstance(context, str) else "\n".join(context)


def split_by_context(
    df: pd.DataFrame, dev_share: float = 0.1, test_share: float = 0.1, seed: int = 42
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Split ``df`` into (train, dev, test) by context: all responses to one context fall in one split.

    The distinct contexts (in order of first appearance) are shuffled with ``numpy.random.default_rng(seed)``;
    the first round(test_share * n) go to test, the next round(dev_share * n) to dev, the rest to train.
    (The authors shuffle the 900 judged responses themselves, 80/10/10 with ``random.seed(42)``, so a context can
    be in train and test; this split is stricter.)
    """
    for name, share in (("dev_share", dev_share), ("test_share", test_share)):
        if not 0.0 <= share < 1.0:
            raise ConfigError(f"{name} must be in [0, 1), got {share}")
    if dev_share + test_share >= 1.0:
        raise ConfigError(f"dev_share + test_share must be < 1, got {dev_share} + {test_share}")
    keys = df["context"].map(_context_key)
    contexts = list(dict.fromkeys(keys))
    order = np.random.default_rng(seed).permutation(len(contexts))
    n_test = round(test_share * len(contexts))
    n_dev = round(dev_share * len(contexts))
    shuffled = [contexts[i] for i in order]
    test_keys = set(shuffled[:n_test])
    dev_keys = set(shuffled[n_test:n_test + n_dev])
    if len(contexts) - n_test - n_dev < 1:
        raise ConfigError(f"no context left for training ({len(contexts)} contexts, dev {n_dev}, test {n_test})")
    in_test = keys.isin(test_keys)
    in_dev = keys.isin(dev_keys)
    train = df[~in_test & ~in_dev].reset_index(drop=True)
    return train, df[in_dev].reset_index(drop=True), df[in_test].reset_index(drop=True)



def write_info(info: Mapping[str, Any], path: Path) -> None:
    write_json(dict(info), path)

