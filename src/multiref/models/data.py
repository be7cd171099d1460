"""Training examples of a data setting, and their batches (the layout of the authors' DataSource).

An example is (context turns, their floors, response ids, response floor). Context and ground-truth
ids come from the pairs file (already truncated and wrapped in ``<s>``/``</s>``); a hypothesis is
split on spaces, truncated to ``max_utterance_tokens`` and encoded with the same vocabulary. As in the
authors' tokenizer, an empty hypothesis encodes to no ids at all (it then adds nothing to the loss).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from multiref.data.pairs import Vocabulary, split_tokens
from multiref.errors import ConfigError
from multiref.io import read_parquet_metadata, read_table

FLOOR_ID = {"A": 0, "B": 1}


@dataclass(frozen=True)
class Example:
    context: tuple[tuple[int, ...], ...]
    floors: tuple[int, ...]
    response: tuple[int, ...]
    response_floor: int


@dataclass(frozen=True)
class NestedExample:
    """One context with all its references (for models trained on K references at once)."""

    context: tuple[tuple[int, ...], ...]
    floors: tuple[int, ...]
    responses: tuple[tuple[int, ...], ...]
    response_floor: int


def nest(examples: Sequence[Example], pair_ids: Sequence[int]) -> list[NestedExample]:
    """Group examples by context (pair id), in order of first appearance, references in their order."""
    groups: dict[int, list[Example]] = {}
    for pid, e in zip(pair_ids, examples, strict=True):
        groups.setdefault(pid, []).append(e)
    return [NestedExample(g[0].context, g[0].floors, tuple(e.response for e in g), g[0].response_floor) for g in groups.values()]


def load_vocabulary(path: Path) -> Vocabulary:
    return Vocabulary.from_arrow(read_table(path))


def pair_examples(pairs_path: Path) -> dict[int, Example]:
    """Ground-truth examples keyed by pair id."""
    cols = read_table(pairs_path, columns=["pair_id", "context_ids", "context_floors", "response_ids", "response_floor"]).to_pydict()
    return {
        pid: Example(tuple(map(tuple, ctx)), tuple(FLOOR_ID[f] for f in floors), tuple(resp), FLOOR_ID[rf])
        for pid, ctx, floors, resp, rf in zip(
            cols["pair_id"], cols["context_ids"], cols["context_floors"], cols["response_ids"], cols["response_floor"], strict=True
        )
    }


def setting_examples(
    setting_path: Path, pairs_path: Path, hypotheses: dict[tuple[int, int], str] | None, vocab: Vocabulary, nested: bool = False
) -> list[Example] | list[NestedExample]:
    """The examples of a materialised data setting, in its index order (``nested``: one per context)."""
    limit = int((read_parquet_metadata(pairs_path).get("config") or {}).get("max_utterance_tokens", 40))
    gt = pair_examples(pairs_path)
    index = read_table(setting_path).to_pydict()
    out = []
    for pid, hyp in zip(index["pair_id"], index["hyp_index"], strict=True):
        base = gt[pid]
        if hyp < 0:
            out.append(base)
            continue
        if hypotheses is None or (pid, hyp) not in hypotheses:
            raise ConfigError(f"{setting_path}: hypothesis {hyp} of pair {pid} is missing from the teacher's shards")
        ids = tuple(vocab.encode(split_tokens(hypotheses[(pid, hyp)])[:limit]))
        out.append(Example(base.context, base.floors, ids, base.response_floor))
    return nest(out, index["pair_id"]) if nested else out


def collate(examples: Sequence[Example] | Sequence[NestedExample], pad_id: int, device: str | torch.device = "cpu") -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """X [B, C, T] (real turns first, then all-padding turns), X_floor [B, C], Y [B, Ty], Y_floor [B].

    Nested examples give Y [B, K, Ty], K the most references of a context; a context with fewer
    gets all-padding rows."""
    if examples and isinstance(examples[0], NestedExample):
        return _collate_nested(examples, pad_id, device)  # type: ignore[arg-type]
    b = len(examples)
    turns = max(max(len(e.context) for e in examples), 1)
    width = max([len(u) for e in examples for u in e.context] + [1])
    y_width = max(max(len(e.response) for e in examples), 2)
    x = torch.full((b, turns, width), pad_id, dtype=torch.long)
    x_floor = torch.zeros((b, turns), dtype=torch.long)
    y = torch.full((b, y_width), pad_id, dtype=torch.long)
    for i, e in enumerate(examples):
        for j, utt in enumerate(e.context):
            x[i, j, : len(utt)] = torch.tensor(utt, dtype=torch.long)
            x_floor[i, j] = e.floors[j]
        y[i, : len(e.response)] = torch.tensor(e.response, dtype=torch.long)
    y_floor = torch.tensor([e.response_floor for e in examples], dtype=torch.long)
    return x.to(device), x_floor.to(device), y.to(device), y_floor.to(device)


def _collate_nested(examples: Sequence[NestedExample], pad_id: int, device: str | torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    flat = [Example(e.context, e.floors, r, e.response_floor) for e in examples for r in e.responses[:1]]
    x, x_floor, _, y_floor = collate(flat, pad_id, device)
    k = max(len(e.responses) for e in examples)
    width = max([len(r) for e in examples for r in e.responses] + [2])
    y = torch.full((len(examples), k, width), pad_id, dtype=torch.long)
    for i, e in enumerate(examples):
        for j, r in enumerate(e.responses):
            y[i, j, : len(r)] = torch.tensor(r, dtype=torch.long)
    return x, x_floor, y.to(device), y_floor
