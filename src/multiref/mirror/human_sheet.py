"""Pairwise human evaluation sheets, as the Mirror paper ran them (Li, Kiseleva & de Rijke, SIGIR 2021, §4.4).

"For each two-way comparison of dialogue responses (against Mirror), we ask annotators to judge which of two
responses is more appropriate given the context. For each method pair (Mirror, Baseline) ... we randomly sample
200 dialogues from the test datasets; each pair of responses is annotated by 3 annotators." The paper reports
Mirror's wins / losses / ties per method pair.

:func:`make_sheet` builds what annotators see and a separate key:

- For the k-th method pair (0-based position in ``pairs``), ``dialogues`` test dialogues are drawn without
  replacement with ``numpy.random.default_rng(SeedSequence(seed, spawn_key=(0, k)))`` (all of them, with a
  warning, when the test set is smaller); the same generator then decides, per item, which system's response
  is shown first. Each pair is therefore sampled independently and does not change when pairs are added after it.
- All items of all pairs are shuffled into one sheet order with ``SeedSequence(seed, spawn_key=(1,))`` and
  numbered ``q0001``, ``q0002``, ... in that order, so annotators cannot tell the pairs apart.
- The sheet (item, context, response_1, response_2, answer) holds no system names; the key (item, method_pair,
  system, baseline, pair_id, first, second) says which system produced which response. Its rows are ordered by
  method pair (the order of ``pairs``), then item.

:func:`write_sheet` writes the sheet as CSV and as a self-contained HTML page, and the key as CSV, each
atomically. :func:`score_answers` maps annotators' answers ("1", "2" or "tie") back to Mirror's wins, losses and
ties per method pair, as shares of all judgements.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pandas as pd

from multiref.errors import ConfigError, MultirefError, OutputError
from multiref.io import atomic_path, read_table

log = logging.getLogger(__name__)

DEFAULT_INSTRUCTIONS = (
    "Which response is more appropriate given the context? Answer 1, 2 or tie.\n\n"
    "Each item shows the previous turns of a dialogue between two speakers, A and B (oldest turn first), "
    "followed by two candidate next turns. Write 1 if response 1 is the more appropriate continuation of the "
    "context, 2 if response 2 is, and tie if neither is better than the other."
)
"""The instructions shown at the top of the HTML sheet (paragraphs separated by blank lines)."""

SHEET_COLUMNS = ["item", "context", "response_1", "response_2", "answer"]
"""The columns of the sheet that annotators see."""

KEY_COLUMNS = ["item", "method_pair", "system", "baseline", "pair_id", "first", "second"]
"""The columns of the key that maps each item back to its systems."""

SCORE_COLUMNS = ["method_pair", "system", "baseline", "wins", "losses", "ties", "judgements", "items", "annotators"]
"""The columns of :func:`score_answers`' table."""

ANSWERS = ("1", "2", "tie")
"""The accepted answers (compared case-insensitively, surrounding whitespace stripped)."""

_EXAMPLE_IDS = 5  # how many missing pair ids an error message names


def method_pair_name(system: str, baseline: str) -> str:
    """The label of a method pair, e.g. ``"Mirror vs. HRED"``."""
    return f"{system} vs. {baseline}"


def label_decodes(systems: Sequence[str], paths: Sequence[str | Path]) -> dict[str, Path]:
    """Map system labels to decode files given as two parallel lists (the Snakemake rule's
    ``params.systems`` and ``input.decodes``); a length mismatch or a repeated label is a :class:`ConfigError`."""
    systems = list(systems)
    paths = list(paths)
    if len(systems) != len(paths):
        raise ConfigError(
            f"human evaluation: {len(systems)} system labels {systems} but {len(paths)} decode files; "
            "params.systems and input.decodes must be parallel lists"
        )
    repeated = sorted({s for s in systems if systems.count(s) > 1})
    if repeated:
        raise ConfigError(f"human evaluation: system label(s) {repeated} given more than once in {systems}")
    return {str(s): Path(p) for s, p in zip(systems, paths, strict=True)}


def render_context(turns: Sequence[str], floors: Sequence[str]) -> str:
    """The context turns, oldest first, as ``"A: ...\\nB: ..."`` lines (each turn prefixed by its floor)."""
    if len(turns) != len(floors):
        raise MultirefError(f"a context has {len(turns)} turns but {len(floors)} floors")
    return "\n".join(f"{floor}: {turn}" for turn, floor in zip(turns, floors, strict=True))


def _check_pairs(pairs: Sequence[Sequence[str]], decodes: Mapping[str, Path]) -> list[tuple[str, str]]:
    """Validate ``pairs`` against ``decodes``; return them as (system, baseline) tuples."""
    checked: list[tuple[str, str]] = []
    if len(pairs) == 0:
        raise ConfigError("human evaluation: no method pairs given (pairs is empty)")
    for pair in pairs:
        if isinstance(pair, str) or len(pair) != 2 or not all(isinstance(label, str) for label in pair):
            raise ConfigError(f"human evaluation: method pair {pair!r} is not a (mirror_label, baseline_label) pair")
        system, baseline = pair[0], pair[1]
        if system == baseline:
            raise ConfigError(f"human evaluation: method pair {list(pair)} compares {system!r} with itself")
        for label in (system, baseline):
            if label not in decodes:
                raise ConfigError(
                    f"human evaluation: system {label!r} of method pair {list(pair)} has no decode file "
                    f"(systems with one: {sorted(decodes)})"
                )
        if (system, baseline) in checked:
            raise ConfigError(f"human evaluation: method pair {list(pair)} is listed more than once")
        checked.append((system, baseline))
    return checked


def _read_test(test_path: Path) -> tuple[list[int], dict[int, str]]:
    """The test pair ids in file order and each one's rendered context."""
    cols = read_table(test_path, columns=["pair_id", "context", "context_floors"]).to_pydict()
    ids: list[int] = []
    contexts: dict[int, str] = {}
    for pid, turns, floors in zip(cols["pair_id"], cols["context"], cols["context_floors"], strict=True):
        if pid is None or turns is None or floors is None:
            raise MultirefError(f"{test_path}: a row has a null pair_id, context or context_floors (pair_id {pid})")
        pid = int(pid)
        if pid in contexts:
            raise MultirefError(f"{test_path}: pair_id {pid} occurs more than once")
        try:
            contexts[pid] = render_context(turns, floors)
        except MultirefError as exc:
            raise MultirefError(f"{test_path}: pair_id {pid}: {exc}") from exc
        ids.append(pid)
    if not ids:
        raise MultirefError(f"{test_path}: the test set has no pairs")
    return ids, contexts


def _read_decode(path: Path) -> dict[int, str]:
    """pair_id -> hypothesis of one decode file."""
    cols = read_table(path, columns=["pair_id", "hypothesis"]).to_pydict()
    out: dict[int, str] = {}
    for pid, hyp in zip(cols["pair_id"], cols["hypothesis"], strict=True):
        if pid is None:
            raise MultirefError(f"{path}: a row has a null pair_id")
        pid = int(pid)
        if pid in out:
            raise MultirefError(f"{path}: pair_id {pid} occurs more than once")
        if hyp is None:
            raise MultirefError(f"{path}: pair_id {pid} has a null hypothesis")
        out[pid] = hyp
    return out


def _check_covers(path: Path, hypotheses: Mapping[int, str], sample: Sequence[int], test_path: Path) -> None:
    """Raise if the decode file ``path`` lacks some sampled test pair ids."""
    missing = [p for p in sample if p not in hypotheses]
    if missing:
        shown = ", ".join(str(p) for p in sorted(missing)[:_EXAMPLE_IDS])
        more = f" and {len(missing) - _EXAMPLE_IDS} more" if len(missing) > _EXAMPLE_IDS else ""
        raise MultirefError(
            f"{path}: no hypothesis for {len(missing)} sampled test pair(s) of {test_path} "
            f"(pair_id {shown}{more}); was it decoded on another test set?"
        )


def _check_int(name: str, value: object, minimum: int) -> int:
    """``value`` as an int of at least ``minimum``, else a :class:`ConfigError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"human evaluation: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def make_sheet(
    test_path: Path,
    decodes: Mapping[str, Path],
    pairs: Sequence[tuple[str, str]],
    dialogues: int = 200,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The sheet annotators see and its key, for the method pairs ``pairs`` of (mirror_label, baseline_label).

    ``decodes`` maps each system label to its decode file (pair_id, hypothesis). Per pair, ``dialogues`` test
    dialogues of ``test_path`` are sampled without replacement (all of them, with a warning, if there are fewer)
    and the order of the two responses is randomised per item; all items are then shuffled into one sheet order.
    See the module docstring for the seeding. Returns (sheet, key) with :data:`SHEET_COLUMNS` and
    :data:`KEY_COLUMNS`.
    """
    test_path = Path(test_path)
    dialogues = _check_int("dialogues", dialogues, 1)
    seed = _check_int("seed", seed, 0)
    checked = _check_pairs(pairs, decodes)

    ids, contexts = _read_test(test_path)
    if len(ids) < dialogues:
        log.warning(
            "%s has %d test dialogues, fewer than the %d requested per method pair; using all of them",
            test_path, len(ids), dialogues,
        )
    size = min(dialogues, len(ids))

    hypotheses: dict[str, dict[int, str]] = {}
    items: list[dict[str, object]] = []
    for k, (system, baseline) in enumerate(checked):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, k)))
        sample = [ids[i] for i in rng.choice(len(ids), size=size, replace=False).tolist()]
        swap = rng.random(size) < 0.5
        for label in (system, baseline):
            if label not in hypotheses:
                hypotheses[label] = _read_decode(Path(decodes[label]))
            _check_covers(Path(decodes[label]), hypotheses[label], sample, test_path)
        for pid, swapped in zip(sample, swap.tolist(), strict=True):
            first, second = (baseline, system) if swapped else (system, baseline)
            items.append(
                {
                    "pair_position": k,
                    "method_pair": method_pair_name(system, baseline),
                    "system": system,
                    "baseline": baseline,
                    "pair_id": pid,
                    "first": first,
                    "second": second,
                    "context": contexts[pid],
                    "response_1": hypotheses[first][pid],
                    "response_2": hypotheses[second][pid],
                }
            )

    order = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,))).permutation(len(items))
    width = max(4, len(str(len(items))))
    rows = [dict(items[i], item=f"q{n:0{width}d}") for n, i in enumerate(order.tolist(), start=1)]

    sheet = pd.DataFrame(
        {
            "item": [r["item"] for r in rows],
            "context": [r["context"] for r in rows],
            "response_1": [r["response_1"] for r in rows],
            "response_2": [r["response_2"] for r in rows],
            "answer": [""] * len(rows),
        },
        columns=SHEET_COLUMNS,
    )
    key = pd.DataFrame(
        {column: [r[column] for r in rows] for column in [*KEY_COLUMNS, "pair_position"]},
    )
    key["pair_id"] = key["pair_id"].astype("int64")
    key = key.sort_values(["pair_position", "item"], kind="stable")[KEY_COLUMNS].reset_index(drop=True)
    return sheet, key


def render_html(sheet: pd.DataFrame, instructions: str = DEFAULT_INSTRUCTIONS) -> str:
    """The sheet as a self-contained HTML page: the instructions, then one block per item with its context
    turns, the two responses and a blank for the answer. All text is escaped with :func:`html.escape`."""
    paragraphs = [p.strip() for p in instructions.split("\n\n") if p.strip()]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        "<title>Pairwise human evaluation</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<h1>Pairwise human evaluation</h1>",
        '<div class="instructions">',
        *(f"<p>{html.escape(p)}</p>" for p in paragraphs),
        "</div>",
    ]
    for row in sheet.itertuples(index=False):
        item = html.escape(str(row.item))
        turns = str(row.context).split("\n") if str(row.context) else []
        parts += [
            f'<div class="item" id="{item}">',
            f"<h2>{item}</h2>",
            '<div class="context">',
            *(f'<p class="turn">{html.escape(turn)}</p>' for turn in turns),
            "</div>",
            f'<div class="response"><span class="label">Response 1</span><p>{html.escape(str(row.response_1))}</p></div>',
            f'<div class="response"><span class="label">Response 2</span><p>{html.escape(str(row.response_2))}</p></div>',
            '<p class="answer">Answer (1, 2 or tie): <span class="blank">&nbsp;</span></p>',
            "</div>",
        ]
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


_CSS = """
body { font-family: system-ui, sans-serif; font-size: 15px; margin: 1.5em auto; max-width: 50em; color: #1e293b; }
div.instructions { background: #f1f5f9; padding: 0.5em 1em; border-radius: 4px; }
div.item { border-top: 2px solid #94a3b8; margin-top: 1.5em; padding-top: 0.5em; }
div.item h2 { font-size: 1em; color: #475569; }
div.context p.turn { margin: 0.2em 0; color: #334155; }
div.response { margin: 0.8em 0; padding: 0.4em 0.8em; border-left: 4px solid #cbd5e1; }
div.response span.label { font-weight: 600; }
div.response p { margin: 0.2em 0; }
span.blank { display: inline-block; min-width: 6em; border-bottom: 1px solid #1e293b; }
"""


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise MultirefError(f"{what} lacks column(s) {missing} (it has {list(frame.columns)})")


def write_sheet(
    sheet: pd.DataFrame,
    key: pd.DataFrame,
    csv_path: Path,
    html_path: Path,
    key_path: Path,
    instructions: str = DEFAULT_INSTRUCTIONS,
) -> None:
    """Write the sheet as CSV (``csv_path``) and HTML (``html_path``), and the key as CSV (``key_path``).

    The three files are written to temporary files and moved into place only once all three were written, so a
    failure leaves none of them (and no temporary file).
    """
    _require_columns(sheet, SHEET_COLUMNS, "the sheet")
    _require_columns(key, KEY_COLUMNS, "the key")
    targets = [Path(csv_path), Path(html_path), Path(key_path)]
    if len({t.resolve() for t in targets}) != len(targets):
        raise ConfigError(f"human evaluation: the sheet, HTML and key paths must differ, got {[str(t) for t in targets]}")
    for target in targets:
        if target.is_dir():
            raise OutputError(f"cannot write {target}: it is a folder")
    page = render_html(sheet[SHEET_COLUMNS], instructions)
    with ExitStack() as stack:
        tmp_csv, tmp_html, tmp_key = (stack.enter_context(atomic_path(t)) for t in targets)
        sheet[SHEET_COLUMNS].to_csv(tmp_csv, index=False, encoding="utf-8")
        tmp_html.write_text(page, encoding="utf-8")
        key[KEY_COLUMNS].to_csv(tmp_key, index=False, encoding="utf-8")


def _read_csv(path: Path, what: str) -> pd.DataFrame:
    """A CSV as strings (empty cells stay empty strings); unreadable files are a :class:`MultirefError`."""
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError as exc:
        raise MultirefError(f"{path}: no such {what} file") from exc
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise MultirefError(f"{path}: cannot read this {what} CSV ({exc})") from exc


def _read_key(key_path: Path) -> pd.DataFrame:
    key = _read_csv(key_path, "key")
    _require_columns(key, KEY_COLUMNS, str(key_path))
    for row, (item, first, system, baseline) in enumerate(
        zip(key["item"], key["first"], key["system"], key["baseline"], strict=True), start=1
    ):
        if first not in (system, baseline):
            raise MultirefError(
                f"{key_path}, row {row}: item {item!r} shows {first!r} first, which is neither its system "
                f"{system!r} nor its baseline {baseline!r}"
            )
    repeated = key["item"][key["item"].duplicated()]
    if len(repeated):
        raise MultirefError(f"{key_path}: item {repeated.iloc[0]!r} occurs more than once")
    return key


def _share(count: int, total: int) -> float:
    """``count / total``, NaN when ``total`` is 0."""
    return count / total if total else float("nan")


def score_answers(answers_path: Path, key_path: Path) -> pd.DataFrame:
    """Mirror's wins, losses and ties per method pair from annotators' answers.

    ``answers_path`` is a CSV with columns ``item`` and ``answer`` ("1", "2" or "tie", case-insensitive,
    whitespace stripped) and optionally ``annotator``; an item may have several rows (one per annotator).
    Answer 1 or 2 is a win when the chosen response is the method pair's system (Mirror), a loss when it is the
    baseline's. Returns one row per method pair of the key (in the key's order) with :data:`SCORE_COLUMNS`:
    wins, losses and ties as shares of the pair's judgements (NaN for a pair without any), the number of
    judgements, of distinct items answered, and of distinct annotators (1 without an annotator column).
    Errors name the file, the 1-based data row and the bad value.
    """
    answers_path, key_path = Path(answers_path), Path(key_path)
    key = _read_key(key_path)
    answers = _read_csv(answers_path, "answers")
    _require_columns(answers, ["item", "answer"], str(answers_path))
    answers = answers.fillna("")  # a short row's missing cells
    has_annotator = "annotator" in answers.columns
    by_item = {str(r.item): r for r in key.itertuples(index=False)}

    outcomes: list[tuple[str, str, str, str]] = []  # (method_pair, item, annotator, outcome)
    seen: dict[tuple[str, str], int] = {}
    annotators = answers["annotator"] if has_annotator else pd.Series([""] * len(answers), dtype=str)
    for row, (item, answer, annotator) in enumerate(
        zip(answers["item"], answers["answer"], annotators, strict=True), start=1
    ):
        item, value = item.strip(), answer.strip().lower()
        if item not in by_item:
            raise MultirefError(f"{answers_path}, row {row}: unknown item {item!r} (not in the key {key_path})")
        if value not in ANSWERS:
            raise MultirefError(f"{answers_path}, row {row}: bad answer {answer!r} for item {item!r}; expected 1, 2 or tie")
        if has_annotator:
            annotator = annotator.strip()
            if (item, annotator) in seen:
                raise MultirefError(
                    f"{answers_path}, row {row}: annotator {annotator!r} already answered item {item!r} "
                    f"in row {seen[(item, annotator)]}"
                )
            seen[(item, annotator)] = row
        entry = by_item[item]
        if value == "tie":
            outcome = "tie"
        else:
            chosen = entry.first if value == "1" else entry.second
            outcome = "win" if chosen == entry.system else "loss"
        outcomes.append((entry.method_pair, item, annotator, outcome))

    judged = pd.DataFrame(outcomes, columns=["method_pair", "item", "annotator", "outcome"])
    rows = []
    for method_pair, group in key.groupby("method_pair", sort=False):
        mine = judged[judged["method_pair"] == method_pair]
        n = len(mine)
        counts = mine["outcome"].value_counts()
        rows.append(
            {
                "method_pair": method_pair,
                "system": group["system"].iloc[0],
                "baseline": group["baseline"].iloc[0],
                "wins": _share(int(counts.get("win", 0)), n),
                "losses": _share(int(counts.get("loss", 0)), n),
                "ties": _share(int(counts.get("tie", 0)), n),
                "judgements": n,
                "items": int(mine["item"].nunique()),
                "annotators": int(mine["annotator"].nunique()) if has_annotator else (1 if n else 0),
            }
        )
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m multiref.mirror.human_sheet ANSWERS KEY [--out CSV]``: score filled-in answers with the key."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m multiref.mirror.human_sheet", description=main.__doc__)
    parser.add_argument("answers", type=Path, help="CSV with columns item, answer (1, 2 or tie) and optionally annotator")
    parser.add_argument("key", type=Path, help="the key.csv written next to the sheet")
    parser.add_argument("--out", type=Path, default=None, help="write the scores as CSV here (default: print them)")
    args = parser.parse_args(argv)
    try:
        scores = score_answers(args.answers, args.key)
    except MultirefError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out is None:
        print(scores.to_string(index=False))
    else:
        with atomic_path(args.out) as tmp:
            scores.to_csv(tmp, index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
