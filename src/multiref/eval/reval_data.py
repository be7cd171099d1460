"""Human judgements for the Reval evaluator: the authors' release, a local copy, or synthetic ones for the demo.

Every source ends as one JSON file in the DSTC10 Track 5 turn-level format that
:func:`multiref.eval.reval.load_judgements` reads: a list of items with ``dialogue_id``, ``model``, ``context``
(turns separated by newlines), ``response``, ``reference`` (list) and ``annotations`` (score name -> list of
the annotators' 1-5 scores).

- ``download``: the authors' release on Zenodo (record 3828180, ``ACL2020_data.zip``; its DailyDialog file is
  the Amazon Mechanical Turk result, a JSON object dialogue id -> ``context`` ([floor, text] pairs),
  ``reference`` ([floor, text]) and ``responses`` (system -> ``uttr`` and ``scores``: worker -> score name ->
  value, with ``<name>_is_outlier`` flags once the authors' ``mark_outliers`` has run)). It is converted by
  :func:`amt_to_items`: "overall" becomes ``appropriateness`` (the DSTC10 copy's name for it), flagged
  scores are left out as in the authors' ``build_response_eval_dataset.py``.
- ``local``: a file given by path: that zip, the AMT JSON object, or a JSON list already in the DSTC10 format
  (as ``dailydialog-zhao_eval.json`` of DSTC10 Track 5).
- ``synthetic``: :func:`synthetic_judgements` scores responses to the synthetic corpus's contexts by a fixed rule
  from the known next-utterance distribution, with seeded annotator noise.
"""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from multiref.data import acquire
from multiref.errors import ChecksumError, ConfigError
from multiref.io import atomic_path, sha256_file, write_json

# score names of the authors' AMT results -> names in the DSTC10 format ("overall" is DSTC10's "appropriateness")
AMT_SCORE_NAMES = {"overall": "appropriateness", "content": "content", "grammar": "grammar", "relevance": "relevance"}
SYNTHETIC_KINDS = ("ground-truth", "valid", "random", "truncated", "shuffled")
# base quality of a response the true distribution gives no mass to, by how it was made (see synthetic_judgements)
ZERO_MASS_BASE = {"ground-truth": 2.0, "valid": 2.0, "random": 2.0, "truncated": 1.5, "shuffled": 1.0}


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
    DSTC10 JSON list. Item-level checks are :func:`multiref.eval.reval.load_judgements`'s."""
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
                data = archive.read(sorted(names, key=len)[0])
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
    from multiref.eval.reval import load_judgements

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
# Synthetic judgements (demo)


def base_score(prob: float, support: int, kind: str) -> float:
    """The noise-free quality (1..5) of a response with true probability ``prob`` among ``support`` possible
    next utterances of its context.

    Valid responses (prob > 0) score 3.5 + 1.5 * min(1, prob * support): 5 for one at least as likely as the
    uniform share, down towards 3.5 for a rare one. A response with no mass scores by how it was made
    (:data:`ZERO_MASS_BASE`): 2 for a fluent utterance of another context ("random"), 1.5 for a truncated true
    response, 1 for a word-shuffled one.
    """
    if prob > 0:
        return 3.5 + 1.5 * min(1.0, prob * support)
    return ZERO_MASS_BASE[kind]


def _truncate(words: list[str]) -> list[str]:
    return words[: max(1, len(words) // 2)]


def _shuffle(words: list[str], rng: np.random.Generator) -> list[str]:
    if len(set(words)) < 2:
        return list(reversed(words))
    for _ in range(20):
        out = [words[i] for i in rng.permutation(len(words))]
        if out != words:
            return out
    return list(reversed(words))


def synthetic_judgements(
    pairs: pd.DataFrame,
    distributions: Mapping[str, Mapping[str, float]],
    n_contexts: int = 60,
    valid: int = 2,
    annotators: int = 4,
    noise: float = 0.6,
    bias: float = 0.5,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Judgements in the DSTC10 format for the synthetic corpus, scored from the known distribution.

    ``pairs``: (context, response) pairs (``context`` a list of normalised turns, ``response`` normalised text,
    as ``data/pairs/*.parquet``); ``distributions``: previous utterance -> {response: probability}, normalised
    (:func:`multiref.teacher.fit.true_distributions`). Contexts whose last turn has a distribution with at least
    two responses are eligible; ``n_contexts`` of them are drawn with ``numpy.random.default_rng(seed)``. Each
    gets up to ``3 + valid`` responses (the model field says which kind):

    - ``ground-truth``: the pair's response; ``valid``: up to ``valid`` other responses of the distribution,
      drawn in proportion to their probability; ``random``: the response of another drawn pair;
      ``truncated``: the first half of the true response's words; ``shuffled``: its words in a random order.

    Each item's quality is :func:`base_score` of its true probability; annotator ``a`` (of ``annotators``) has a
    bias b_a ~ U(-bias, bias), drawn once, and scores clip(round(quality + b_a + e), 1, 5) with e ~ N(0, noise^2)
    per item. Extra fields ``true_prob`` and ``true_score`` keep the truth for checks.
    """
    if n_contexts < 1 or annotators < 1 or valid < 0 or noise < 0 or bias < 0:
        raise ConfigError("synthetic judgements: n_contexts and annotators must be >= 1; valid, noise, bias >= 0")
    for col in ("context", "response"):
        if col not in pairs.columns:
            raise ConfigError(f"synthetic judgements: the pairs lack the column '{col}'")
    contexts = [list(c) for c in pairs["context"]]
    responses = [str(r) for r in pairs["response"]]
    eligible = [i for i, c in enumerate(contexts)
                if c and len(distributions.get(c[-1], {})) >= 2]
    if not eligible:
        raise ConfigError("synthetic judgements: no pair's last context turn has a known distribution with at least "
                          "two responses (is the distribution the one of this corpus?)")
    rng = np.random.default_rng(seed)
    chosen = sorted(int(i) for i in rng.choice(eligible, size=min(n_contexts, len(eligible)), replace=False))
    biases = rng.uniform(-bias, bias, size=annotators)
    items: list[dict[str, Any]] = []
    for n, i in enumerate(chosen):
        turns, truth = contexts[i], responses[i]
        dist = distributions[turns[-1]]
        words = truth.split()
        candidates: list[tuple[str, str]] = [("ground-truth", truth)]
        others = [(y, q) for y, q in dist.items() if y != truth and q > 0]
        if others and valid:
            probs = np.array([q for _, q in others])
            take = rng.choice(len(others), size=min(valid, len(others)), replace=False, p=probs / probs.sum())
            candidates += [("valid", others[int(k)][0]) for k in sorted(take)]
        for _ in range(20):
            j = int(rng.integers(len(responses)))
            if contexts[j] != turns and responses[j] != truth:
                candidates.append(("random", responses[j]))
                break
        candidates.append(("truncated", " ".join(_truncate(words))))
        candidates.append(("shuffled", " ".join(_shuffle(words, rng))))
        for kind, response in candidates:
            prob = float(dist.get(response, 0.0))
            quality = base_score(prob, len(dist), kind)
            noisy = quality + biases + rng.normal(0.0, noise, size=annotators) if noise else quality + biases
            scores = [int(min(5, max(1, math.floor(x + 0.5)))) for x in noisy]
            items.append({
                "dialogue_id": f"synthetic_{n:05d}",
                "model": kind,
                "context": "\n".join(turns),
                "response": response,
                "reference": [truth],
                "annotations": {"appropriateness": scores},
                "true_prob": prob,
                "true_score": quality,
            })
    return items


def write_synthetic_judgements(
    pair_files: Sequence[Path], distribution_path: Path, out_json: Path, **kwargs: Any
) -> dict[str, Any]:
    """:func:`synthetic_judgements` of the pairs in ``pair_files`` (e.g. dev and test) -> ``out_json``."""
    import pyarrow.parquet as pq

    from multiref.eval.reval import load_judgements
    from multiref.teacher.fit import true_distributions

    frames = [pq.read_table(f, columns=["context", "response"]).to_pandas() for f in pair_files]
    pairs = pd.concat(frames, ignore_index=True)
    items = synthetic_judgements(pairs, true_distributions(distribution_path), **kwargs)
    with atomic_path(out_json) as tmp:
        tmp.write_text(json.dumps(items, indent=1) + "\n", encoding="utf-8")
        df = load_judgements(tmp)
    kinds = pd.Series([it["model"] for it in items]).value_counts().to_dict()
    quality = np.array([it["true_score"] for it in items])
    mean_scores = df["score"].to_numpy()
    return {"kind": "synthetic", "items": len(df), "contexts": int(df["context"].map(tuple).nunique()),
            "by_kind": {str(k): int(v) for k, v in kinds.items()},
            "annotator_mean_vs_true_pearson": float(np.corrcoef(quality, mean_scores)[0, 1])
            if np.ptp(quality) > 0 and np.ptp(mean_scores) > 0 else None,
            "pair_files": [str(f) for f in pair_files], "distribution": str(distribution_path), **kwargs}


def write_info(info: Mapping[str, Any], path: Path) -> None:
    write_json(dict(info), path)
