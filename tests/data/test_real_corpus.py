"""Real-corpus checks on the shared DailyDialog archive (skipped where ../shared is absent)."""

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import SHARED, run_snakemake

from multiref.data.dailydialog import SPLITS


@pytest.fixture(scope="module")
def paper_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    archive = SHARED / "data" / "dailydialog" / "ijcnlp_dailydialog.zip"
    if not archive.is_file():
        pytest.skip(f"../shared is absent ({archive} not found): real-corpus checks run on development machines and CI only")
    root = tmp_path_factory.mktemp("paper") / "results"
    run_snakemake("--cores", "2", "--config", f"root={root}", f'corpus={{"archive": "{archive}"}}', "--", str(root / "table8.csv"))
    return root


@pytest.mark.shared
@pytest.mark.slow
def test_table8_matches_the_paper(paper_root: Path) -> None:
    """Sessions and pairs per split against the paper's Table 8.

    The shared archive is a reconstruction whose full-corpus text order is uncertain for 1,213 lines
    (see its README), which moves which near-duplicate dialogue is kept and so a session across a
    topic's split boundary. Measured here: one session moved from dev to train. The number of kept
    dialogues (11,553) and the test split are exact; sessions are within 0.1 % in every split, pairs
    within 0.1 % for train, test and in total, and dev pairs within 0.15 % (13 of 9,906; one
    dialogue's worth). Anything beyond a handful of sessions would mean our procedure differs.
    """
    table = pd.read_csv(paper_root / "table8.csv").set_index("item")
    assert table.loc["sessions", list(SPLITS)].sum() == 9237 + 1157 + 1159
    assert table.loc["sessions", "test"] == 1159 and table.loc["pairs", "test"] == 9716
    for split in SPLITS:
        assert abs(table.loc["sessions", f"diff_pct_{split}"]) <= 0.1, split
        assert abs(table.loc["sessions", f"diff_{split}"]) <= 2, split
    assert abs(table.loc["pairs", "diff_pct_train"]) <= 0.1
    assert abs(table.loc["pairs", "diff_pct_dev"]) <= 0.15
    total = table.loc["pairs", list(SPLITS)].sum()
    assert abs(total - (59305 + 9906 + 9716)) / (59305 + 9906 + 9716) <= 0.001


@pytest.mark.shared
@pytest.mark.slow
def test_manifests_record_checksum_and_drops(paper_root: Path) -> None:
    import json

    expected = (SHARED / "data" / "dailydialog" / "SHA256SUMS").read_text().split()[0]
    corpus = json.loads((paper_root / "data" / "corpus" / "manifest.json").read_text())
    assert corpus["sha256"] == expected
    pre = json.loads((paper_root / "data" / "preprocess.json").read_text())
    assert pre["dialogues_read"] == 13118
    assert pre["dialogues_kept"] == 11553
    assert pre["dropped_duplicate"] + pre["dropped_label_mismatch"] == 13118 - 11553


@pytest.mark.shared
@pytest.mark.slow
def test_real_vocabulary_and_pairs(paper_root: Path) -> None:
    vocab = pq.read_table(paper_root / "data" / "vocab.parquet").to_pandas()
    assert len(vocab) == 10000
    assert list(vocab["token"][:9]) == ["<pad>", "<s>", "</s>", "<unk>", "<sep>", "<cls>", "<mask>", "<speaker1>", "<speaker2>"]
    assert vocab["count"][9:].is_monotonic_decreasing
    pairs = pq.read_table(paper_root / "data" / "pairs" / "train.parquet").to_pandas()
    assert pairs["response_ids"].map(len).max() <= 42
    assert pairs["context"].map(len).max() == 5
    assert pairs["pair_id"].is_unique
