"""Length-pooled batches (multiref.resumable.pooled_batches): OpenNMT's torchtext ``pool``, the batching of
Mirror's code (docs/fidelity.md Mi22), and its selection by the trainer (``Schedule.batching``)."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest
import torch

from multiref.models.data import Example
from multiref.models.trainer import Schedule, train_model
from multiref.resumable import epoch_batches, pooled_batches


def lengths_of(n: int, seed: int = 3) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(1, 45) for _ in range(n)]


def test_every_example_once_sorted_within_chunks() -> None:
    n, size, pool = 1037, 8, 5
    lengths = lengths_of(n)
    batches = pooled_batches(n, size, seed=4, epoch=2, lengths=lengths, pool=pool)
    assert sorted(i for b in batches for i in b) == list(range(n))  # every example once
    assert [len(b) for b in batches] == [size] * (n // size) + [n % size]  # only the very last batch is short
    chunk = size * pool
    for start in range(0, len(batches), pool):  # the batches of one chunk of the shuffled data
        group = batches[start : start + pool]
        for b in group:  # each batch longest first (sort_within_batch)
            assert [lengths[i] for i in b] == sorted((lengths[i] for i in b), reverse=True)
        # the chunk was sorted, then cut: the batches' length ranges do not overlap
        spans = sorted((min(lengths[i] for i in b), max(lengths[i] for i in b)) for b in group)
        assert all(hi <= lo for (_, hi), (lo, _) in itertools.pairwise(spans))
        # the chunk holds the examples of one stretch of the epoch's random order
        order = [i for b in epoch_batches(n, chunk, 4, 2) for i in b]
        assert sorted(i for b in group for i in b) == sorted(order[start * size : start * size + chunk])
    # batches are shuffled within a chunk: not in length order
    first = batches[:pool]
    assert [max(lengths[i] for i in b) for b in first] != sorted(max(lengths[i] for i in b) for b in first)


def test_pooled_batches_are_seeded_and_deterministic() -> None:
    lengths = lengths_of(500)
    a = pooled_batches(500, 16, seed=7, epoch=0, lengths=lengths)
    assert a == pooled_batches(500, 16, seed=7, epoch=0, lengths=list(lengths))  # resumable: recomputed identically
    assert a != pooled_batches(500, 16, seed=7, epoch=1, lengths=lengths)  # reshuffled every epoch
    assert a != pooled_batches(500, 16, seed=8, epoch=0, lengths=lengths)
    assert sorted(map(sorted, a)) != sorted(map(sorted, epoch_batches(500, 16, 7, 0)))  # not the random batches


def test_pooled_batches_need_much_less_padding() -> None:
    n, size = 6400, 64
    lengths = lengths_of(n)

    def padding(batches: list[list[int]]) -> int:
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)

    assert padding(pooled_batches(n, size, 1, 0, lengths)) * 10 < padding(epoch_batches(n, size, 1, 0))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="one length per example: 3 lengths for 4 examples"):
        pooled_batches(4, 2, 0, 0, [1, 2, 3])
    with pytest.raises(ValueError, match="at least 1"):
        pooled_batches(4, 0, 0, 0, [1, 2, 3, 4])


class Recorder(torch.nn.Module):
    """A model that records which examples each training batch holds (the first response token is the index)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[list[int]] = []

    def forward(self, x: torch.Tensor, x_floor: torch.Tensor, y: torch.Tensor, y_floor: torch.Tensor, step: int = 0) -> dict:
        if self.training:
            self.seen.append([int(v) - 10 for v in y[:, 1]])
        loss = (self.w - 1.0).pow(2).sum() + 0.0 * x.float().sum()
        return {"loss": loss, "nll_sum": loss.detach(), "n_tokens": torch.tensor(1)}


def test_trainer_selects_pooled_batches_by_query_length(tmp_path: Path) -> None:
    torch.manual_seed(0)
    lengths = lengths_of(90)
    # context [c, x]: c of a fixed length, x (the query) of the example's length; response <s> index </s>
    examples = [Example(((1, 5, 5, 2), (1, *[6] * q, 2)), (0, 1), (1, 10 + i, 2), 0) for i, q in enumerate(lengths)]
    schedule = Schedule(epochs=2, batch_size=4, validate_every=1000, batching="pooled", seed=3)
    model = Recorder()
    train_model(model, examples, examples[:4], schedule, tmp_path / "ck.pt", 0, progress=False)
    query = [q + 2 for q in lengths]  # <s> and </s> included: the same order
    assert model.seen == pooled_batches(90, 4, 3, 0, query) + pooled_batches(90, 4, 3, 1, query)
    model = Recorder()
    train_model(model, examples, examples[:4], Schedule(epochs=1, batch_size=4, seed=3), tmp_path / "r.pt", 0, progress=False)
    assert model.seen == epoch_batches(90, 4, 3, 0)  # the default stays the random permutation
    with pytest.raises(ValueError, match=r"batching must be one of \['random', 'pooled'\], got 'sorted'"):
        train_model(Recorder(), examples, examples[:4], Schedule(batching="sorted"), tmp_path / "x.pt", 0, progress=False)
