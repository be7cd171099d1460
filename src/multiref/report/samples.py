"""Sample responses on a few fixed test contexts, as the paper's Tables 6, 10 and 11: the context's
turns with their floors (A/B), the ground truth, then each model's greedy response (or, for a
mixture-prior model, the response decoded with each latent variable alone)."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from multiref.errors import MultirefError
from multiref.io import read_parquet_metadata

_CSS = """
body { font-family: system-ui, sans-serif; font-size: 14px; margin: 1.5em; color: #1e293b; background: #fff; }
h1 { font-size: 1.3em; } p.caption { max-width: 60em; color: #334155; }
table.sample { border-collapse: collapse; margin: 1.2em 0; min-width: 40em; max-width: 70em; }
table.sample caption { text-align: left; font-weight: 600; padding: 0.3em 0; }
table.sample th, table.sample td { border-top: 1px solid #cbd5e1; padding: 0.25em 0.6em; vertical-align: top; text-align: left; }
table.sample th { white-space: nowrap; font-weight: 500; color: #475569; }
tr.gt td, tr.gt th { background: #f1f5f9; font-weight: 600; }
tr.first-model td, tr.first-model th { border-top: 2px solid #64748b; }
td.empty { color: #94a3b8; font-style: italic; }
"""


@dataclass(frozen=True)
class Context:
    """One test pair: its context turns (oldest first) with their floors, and the ground truth."""

    pair_id: int
    turns: tuple[str, ...]
    floors: tuple[str, ...]
    response: str
    response_floor: str


def pick_pairs(pair_ids: Sequence[int], n: int, seed: int) -> list[int]:
    """``n`` test pairs drawn without replacement with ``seed`` (the same pairs for every run of the
    same test set), in test-set order."""
    if n < 1:
        raise MultirefError(f"samples: the number of contexts must be at least 1, got {n}")
    ids = sorted(int(p) for p in pair_ids)
    if not ids:
        raise MultirefError("samples: the test set has no pairs")
    chosen = np.random.default_rng(seed).choice(len(ids), size=min(n, len(ids)), replace=False)
    return [ids[i] for i in sorted(chosen.tolist())]


def load_contexts(test_pairs: Path, pair_ids: Sequence[int]) -> list[Context]:
    """The contexts and ground truths of ``pair_ids`` from ``data/pairs/test.parquet``."""
    columns = ["pair_id", "context", "context_floors", "response", "response_floor"]
    try:
        table = pq.read_table(test_pairs, columns=columns).to_pydict()
    except (OSError, KeyError, ValueError) as exc:
        raise MultirefError(f"{test_pairs}: cannot read columns {columns} ({exc})") from exc
    index = {int(p): i for i, p in enumerate(table["pair_id"])}
    missing = [p for p in pair_ids if p not in index]
    if missing:
        raise MultirefError(f"{test_pairs}: pair_id {missing[0]} is not in the test set")
    out = []
    for p in pair_ids:
        i = index[p]
        out.append(Context(p, tuple(table["context"][i]), tuple(table["context_floors"][i]),
                           table["response"][i], table["response_floor"][i]))
    return out


def read_responses(decode: Path, pair_ids: Sequence[int], k: int | None = None) -> dict[int, str]:
    """The hypotheses of ``pair_ids`` in a ``decode.parquet`` (or, with ``k``, in a
    ``by_component.parquet``, the rows of latent variable ``k``)."""
    columns = ["pair_id", "hypothesis"] + ([] if k is None else ["k"])
    try:
        table = pq.read_table(decode, columns=columns).to_pydict()
    except (OSError, KeyError, ValueError) as exc:
        raise MultirefError(f"{decode}: cannot read columns {columns} ({exc})") from exc
    wanted = set(pair_ids)
    found: dict[int, str] = {}
    for i, p in enumerate(table["pair_id"]):
        if int(p) in wanted and (k is None or int(table["k"][i]) == k):
            found[int(p)] = table["hypothesis"][i] or ""
    missing = sorted(wanted - found.keys())
    if missing:
        where = "" if k is None else f" for k={k}"
        raise MultirefError(f"{decode}: no hypothesis{where} for test pair_id {missing[0]}")
    return found


def component_responses(by_component: Path, pair_ids: Sequence[int]) -> tuple[dict[str, dict[int, str]], list[float]]:
    """Per latent variable k, its responses (labelled ``z = k (π̄ = x%)``), and the run's π̄_k."""
    meta = read_parquet_metadata(by_component)
    pi = meta.get("pi_mean")
    if not isinstance(pi, list) or not pi:
        raise MultirefError(f"{by_component}: schema metadata has no 'pi_mean' list (found {sorted(meta)})")
    responses = {
        f"z = {k} (π̄ = {100 * float(v):.1f}%)": read_responses(by_component, pair_ids, k=k) for k, v in enumerate(pi)
    }
    return responses, [float(v) for v in pi]


def _sample_table(number: int, ctx: Context, responses: Mapping[str, Mapping[int, str]]) -> str:
    esc = html.escape
    rows = [f'<caption>Context {number} (test pair {ctx.pair_id})</caption>']
    for floor, turn in zip(ctx.floors, ctx.turns):
        rows.append(f"<tr><th>{esc(floor)}:</th><td>{esc(turn)}</td></tr>")
    rows.append(f'<tr class="gt"><th>Ground truth ({esc(ctx.response_floor)})</th><td>{esc(ctx.response)}</td></tr>')
    for i, (label, by_pair) in enumerate(responses.items()):
        text = by_pair[ctx.pair_id]
        cls = ' class="first-model"' if i == 0 else ""
        cell = f"<td>{esc(text)}</td>" if text.strip() else '<td class="empty">(empty response)</td>'
        rows.append(f"<tr{cls}><th>{esc(label)}</th>{cell}</tr>")
    return '<table class="sample">\n' + "\n".join(rows) + "\n</table>"


def samples_html(title: str, caption: str, contexts: Sequence[Context], responses: Mapping[str, Mapping[int, str]]) -> str:
    """A standalone HTML page: for each context, its turns, the ground truth and every labelled response."""
    if not contexts:
        raise MultirefError(f"{title}: no contexts to show")
    if not responses:
        raise MultirefError(f"{title}: no responses to show")
    body = "\n".join(_sample_table(i + 1, c, responses) for i, c in enumerate(contexts))
    return (
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n<p class=\"caption\">{html.escape(caption)}</p>\n{body}\n</body>\n</html>\n"
    )
