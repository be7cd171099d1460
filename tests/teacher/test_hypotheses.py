"""Hypothesis shards (reproducible, resumable, validated by gather), data settings, fit to the truth."""

import itertools
import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from teacher_helpers import TINY_TEACHER, make_data, run_and_kill

from multiref.data.settings import Setting, build_index, parse_setting, write_setting
from multiref.errors import ConfigError
from multiref.teacher.build import build_teacher
from multiref.teacher.hypotheses import (
    HYPOTHESIS_SCHEMA,
    SamplingConfig,
    ShardError,
    gather,
    generate_shard,
    load_hypotheses,
    shard_range,
)
from multiref.teacher.synthetic_distance import total_variation, true_distributions

SAMPLING = SamplingConfig(n=4, max_new_tokens=12, batch_contexts=8, chunk_pairs=16, seed=3)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hyp")
    paths = make_data(root, n_dialogues=60)
    cfg = TINY_TEACHER | {"train": TINY_TEACHER["train"] | {"epochs": 1}}
    build_teacher(cfg, paths["sessions"], paths["train"], paths["dev"], root / "teacher", root / "curve.csv",
                  root / "metrics.json", root / "work", 40, progress=False)
    return paths | {"teacher": root / "teacher", "root": root}


def test_shard_ranges_cover_all_pairs_once() -> None:
    for n_pairs, shards in [(10, 3), (7, 7), (100, 16), (5, 8)]:
        ranges = [shard_range(n_pairs, shards, i) for i in range(shards)]
        assert ranges[0][0] == 0 and ranges[-1][1] == n_pairs
        assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    with pytest.raises(ValueError, match="shards must be at least 1"):
        shard_range(10, 0, 0)


@pytest.mark.slow
def test_same_seed_gives_byte_identical_shards(setup: dict[str, Path], tmp_path: Path) -> None:
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    generate_shard(setup["teacher"], setup["train"], 1, 2, SAMPLING, a, tmp_path / "wa", "cpu", progress=False)
    generate_shard(setup["teacher"], setup["train"], 1, 2, SAMPLING, b, tmp_path / "wb", "cpu", progress=False)
    assert a.read_bytes() == b.read_bytes()
    table = pq.read_table(a)
    assert table.schema.equals(HYPOTHESIS_SCHEMA, check_metadata=False)
    start, stop = shard_range(pq.read_metadata(setup["train"]).num_rows, 2, 1)
    assert table.num_rows == (stop - start) * SAMPLING.n
    assert set(table.column("hyp_index").to_pylist()) == set(range(SAMPLING.n))
    other = tmp_path / "c.parquet"
    generate_shard(setup["teacher"], setup["train"], 1, 2, SamplingConfig(**{**SAMPLING.__dict__, "seed": 4}),
                   other, tmp_path / "wc", "cpu", progress=False)
    assert pq.read_table(other).column("text") != table.column("text")


@pytest.mark.slow
def test_killed_shard_resumes_from_its_chunks_to_the_same_bytes(setup: dict[str, Path], tmp_path: Path) -> None:
    straight = tmp_path / "straight.parquet"
    generate_shard(setup["teacher"], setup["train"], 0, 1, SAMPLING, straight, tmp_path / "w1", "cpu", progress=False)
    out, work = tmp_path / "killed.parquet", tmp_path / "w2"
    code = (
        # the same intra-op thread count as this process: CPU float reductions depend on it
        f"import torch\ntorch.set_num_threads({torch.get_num_threads()})\n"
        "from pathlib import Path\nfrom multiref.teacher.hypotheses import SamplingConfig, generate_shard\n"
        f"generate_shard(Path({str(setup['teacher'])!r}), Path({str(setup['train'])!r}), 0, 1,"
        f" SamplingConfig(**{SAMPLING.__dict__!r}), Path({str(out)!r}), Path({str(work)!r}), 'cpu', progress=False)\n"
    )
    # Kill as soon as the second chunk is saved; the rerun keeps the saved chunks.
    def two_chunks() -> bool:
        return len(list(work.glob("*/chunk*.parquet"))) >= 2

    assert run_and_kill(code, two_chunks), "the shard finished before it could be killed"
    assert not out.exists()
    generate_shard(setup["teacher"], setup["train"], 0, 1, SAMPLING, out, work, "cpu", progress=False)
    assert out.read_bytes() == straight.read_bytes()


def fake_shards(folder: Path, pair_ids: np.ndarray, shards: int, n: int) -> list[Path]:
    paths = []
    for s in range(shards):
        start, stop = shard_range(len(pair_ids), shards, s)
        ids = np.repeat(pair_ids[start:stop], n)
        table = pa.table(
            {
                "pair_id": ids,
                "hyp_index": np.tile(np.arange(n, dtype=np.int16), stop - start),
                "text": ["a b"] * len(ids),
                "n_tokens": np.full(len(ids), 2, dtype=np.int16),
                "logprob": np.zeros(len(ids)),
                "finished": np.ones(len(ids), dtype=bool),
            },
            schema=HYPOTHESIS_SCHEMA,
        )
        path = folder / f"shard{s:04d}.parquet"
        pq.write_table(table, path)
        paths.append(path)
    return paths


@pytest.fixture
def shards(setup: dict[str, Path], tmp_path: Path) -> list[Path]:
    pair_ids = pq.read_table(setup["train"], columns=["pair_id"]).column("pair_id").to_numpy()
    return fake_shards(tmp_path, pair_ids, 3, 5)


def test_gather_accepts_complete_shards(setup: dict[str, Path], shards: list[Path], tmp_path: Path) -> None:
    # empty hypotheses are kept (the authors do not filter them) and counted
    rewrite(shards[0], lambda t: t.set_column(2, "text", pa.array([""] * 3 + ["a b"] * (t.num_rows - 3))).cast(HYPOTHESIS_SCHEMA))
    rewrite(shards[0], lambda t: t.set_column(3, "n_tokens", pa.array([0] * 3 + [2] * (t.num_rows - 3), pa.int16())).cast(HYPOTHESIS_SCHEMA))
    manifest = gather(shards, setup["train"], 5, tmp_path / "manifest.json")
    n_pairs = pq.read_metadata(setup["train"]).num_rows
    assert manifest["rows"] == n_pairs * 5 and manifest["empty_hypotheses"] == 3
    assert len(manifest["shards"]) == 3
    assert load_hypotheses(tmp_path / "manifest.json", max_index=2).num_rows == n_pairs * 2


def rewrite(path: Path, edit) -> None:
    table = pq.read_table(path)
    pq.write_table(edit(table), path)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: p.unlink(), "shard 1 .*: missing"),
        (lambda p: p.write_bytes(p.read_bytes()[:100]), "shard 1 .*(Parquet|parquet|magic|size)"),
        (lambda p: rewrite(p, lambda t: t.slice(1)), r"shard 1 .*rows, expected"),
        (lambda p: rewrite(p, lambda t: t.set_column(1, "hyp_index", pa.array(np.zeros(t.num_rows, dtype=np.int16))).cast(HYPOTHESIS_SCHEMA)),
         "shard 1 .*hypothesis indices are not 0..4"),
        (lambda p: rewrite(p, lambda t: t.drop_columns(["logprob"])), "shard 1 .*unexpected schema"),
    ],
)
def test_gather_names_a_bad_shard_and_deletes_it(setup: dict[str, Path], shards: list[Path], tmp_path: Path, damage, message: str) -> None:
    damage(shards[1])
    with pytest.raises(ShardError, match=message):
        gather(shards, setup["train"], 5, tmp_path / "manifest.json")
    assert not shards[1].exists() and shards[0].exists() and shards[2].exists()
    assert not (tmp_path / "manifest.json").exists()


def test_setting_names() -> None:
    assert parse_setting("gt") == Setting("gt", True, 0)
    assert (parse_setting("hyp20").gt, parse_setting("hyp20").k) == (False, 20)
    assert (parse_setting("gt+hyp5").gt, parse_setting("gt+hyp5").k) == (True, 5)
    assert parse_setting("gt+hyp100").epochs == 2 and parse_setting("gt").epochs == 100
    for bad in ("hyp", "gt+", "hyp0", "GT", "gt+hyp-1", "hyp5+gt"):
        with pytest.raises(ConfigError, match=re.escape(f"data setting '{bad}'")):
            parse_setting(bad)
    with pytest.raises(ConfigError, match="no epoch budget"):
        _ = parse_setting("hyp7").epochs


def test_setting_index_nesting_and_ground_truth_copies() -> None:
    ids = np.array([10, 11])
    hyp5 = build_index(ids, parse_setting("hyp5"), 20, 2).to_pydict()
    assert hyp5["pair_id"] == [10] * 5 + [11] * 5 and hyp5["hyp_index"] == list(range(5)) * 2
    gt = build_index(ids, parse_setting("gt"), 20, 2).to_pydict()
    assert gt == {"pair_id": [10, 11], "source": ["gt", "gt"], "hyp_index": [-1, -1]}
    code = build_index(ids, parse_setting("gt+hyp1"), 20, 2).to_pydict()
    assert code["hyp_index"] == [0, -1, -1] * 2  # the authors' code: K + 2 examples per pair
    paper = build_index(ids, parse_setting("gt+hyp1"), 20, 1).to_pydict()
    assert paper["hyp_index"] == [0, -1] * 2  # Table 9's arithmetic: K + 1
    with pytest.raises(ConfigError, match="needs 100 hypotheses per pair, the teacher made 20"):
        build_index(ids, parse_setting("hyp100"), 20, 2)


def test_written_setting_carries_its_budget(setup: dict[str, Path], tmp_path: Path) -> None:
    meta = write_setting(setup["train"], "gt+hyp20", 20, 2, tmp_path / "s.parquet")
    n_pairs = pq.read_metadata(setup["train"]).num_rows
    assert meta["epochs"] == 10 and meta["examples_per_epoch"] == n_pairs * 22 and meta["paper_max_steps"] == 12.45e6
    stored = json.loads(pq.read_schema(tmp_path / "s.parquet").metadata[b"multiref"])
    assert stored["setting"] == "gt+hyp20"


def test_true_distributions_and_total_variation(setup: dict[str, Path]) -> None:
    dists = true_distributions(setup["distribution"])
    assert dists and all(abs(sum(d.values()) - 1) < 1e-9 for d in dists.values())
    assert all(k == k.lower() for d in dists.values() for k in d)  # normalised text, as the pairs
    truth = {"a": 0.5, "b": 0.5}
    assert total_variation(["a", "b"], truth) == 0
    assert total_variation(["a", "a"], truth) == 0.5
    assert total_variation(["c", "c"], truth) == 1.0
