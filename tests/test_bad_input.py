"""Bad-input sweep: every bad input the product can meet, in one place.

Each case asserts the error type (or exit status), that the message names the culprit (file, line,
configuration key or value), and that no output nor temporary file is left behind; the two tolerated
inputs (an empty hypothesis, an out-of-vocabulary-only response) are checked against the behaviour
that docs/data.md ("Bad input") and docs/fidelity.md document. The cases:

 1. bad checksum                 7. missing word vectors
 2. truncated archive            8. corrupt Parquet shard
 3. malformed dialogue line      9. out-of-vocabulary-only response (tolerated)
 4. empty hypothesis (tolerated) 10. GPU requested but absent
 5. unknown model or data name  11. unwritable output directory
 6. wrong config type           12. unreadable annotations (the Reval judgements)
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import runpy
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from conftest import REPO, run_snakemake
from multiref.data.acquire import acquire_corpus
from multiref.data.dailydialog import CORPUS_FILES
from multiref.data.preprocess import PreprocessConfig, preprocess
from multiref.data.settings import parse_setting, write_setting
from multiref.errors import ChecksumError, ConfigError, CorpusError, MultirefError, OutputError
from multiref.reval.judgements import acquire_judgements, load_judgements
from multiref.eval.run_metrics import prepare_eval_vectors, run_metrics
from multiref.io import write_json, write_parquet, write_text
from multiref.models import registry
from multiref.models.data import collate, load_vocabulary, setting_examples
from multiref.models.embeddings import write_initial_embeddings
from multiref.models.run import hypothesis_texts, train_run
from multiref.teacher.hypotheses import HYPOTHESIS_SCHEMA, ShardError, gather, shard_range
from multiref.teacher.build import build_teacher

NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: 'cuda' is not an error here")

# Ten dialogues of topic 1: sessions 0-7 are train, 8 dev, 9 test. The test dialogue's last response
# uses only words that never occur in train: an out-of-vocabulary-only response.
DIALOGUES = [
    ["Hello , how are you ?", "I am fine , thanks .", "Good to hear ."],
    ["What time is it ?", "It is noon .", "Thanks a lot ."],
    ["Do you like tea ?", "Yes , I like tea .", "Me too ."],
    ["Where are you going ?", "I am going home .", "See you ."],
    ["Is it raining ?", "No , it is sunny .", "Good ."],
    ["Can you help me ?", "Sure , what is it ?", "Thanks ."],
    ["How was the trip ?", "It was fine .", "Good to hear ."],
    ["Are you hungry ?", "Yes , a lot .", "Me too ."],
    ["Hello , are you fine ?", "Yes , thanks .", "Good ."],
    ["Hello , how are you ?", "I am fine .", "Zyzzyva quokka ."],
]
OOV_RESPONSE = "zyzzyva quokka ."


def write_corpus_files(folder: Path, dialogues: list[list[str]]) -> Path:
    """The four DailyDialog files (acts all 'inform', emotions all 'neutral', topic 1)."""
    folder.mkdir(parents=True, exist_ok=True)
    bodies = {
        "text": "".join("".join(f"{u} __eou__" for u in d) + "\n" for d in dialogues),
        "act": "".join("1 " * len(d) + "\n" for d in dialogues),
        "emotion": "".join("0 " * len(d) + "\n" for d in dialogues),
        "topic": "1\n" * len(dialogues),
    }
    for key, body in bodies.items():
        (folder / CORPUS_FILES[key]).write_text(body, encoding="utf-8")
    return folder


def files_under(folder: Path) -> list[str]:
    """Every file below ``folder`` (temporaries included), relative; [] when it does not exist."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def stray_temporaries(folder: Path) -> list[str]:
    return [name for name in files_under(folder) if Path(name).name.startswith(".") or name.endswith(".tmp")]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Corpus archive, preprocessed data (vocabulary, pairs) and small word vectors, built once."""
    root = tmp_path_factory.mktemp("bad_input_data")
    folder = write_corpus_files(root / "src" / "ijcnlp_dailydialog", DIALOGUES)
    archive = root / "ijcnlp_dailydialog.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in CORPUS_FILES.values():
            zf.write(folder / name, f"ijcnlp_dailydialog/{name}")
    paths = {name: root / f"{name}.parquet" for name in ("sessions", "vocab", "train", "dev", "test")}
    preprocess(folder, paths["sessions"], paths["vocab"], {s: paths[s] for s in ("train", "dev", "test")},
               root / "preprocess.json", PreprocessConfig(duplicate_threshold=1.0), progress=False)
    from gensim.models import KeyedVectors

    words = ["hello", "how", "are", "you", "fine", "good", "tea", "thanks", "?", ","]  # no "."
    kv = KeyedVectors(vector_size=4, count=len(words))
    kv.add_vectors(words, np.random.default_rng(0).normal(size=(len(words), 4)).astype(np.float32))
    kv.save(str(root / "vectors.kv"))
    return paths | {"archive": archive, "corpus": folder, "kv": root / "vectors.kv"}


# ---------------------------------------------------------------------------------------------------------------
# 1. Bad checksum


def test_bad_checksum_of_the_corpus_archive(data: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    observed = hashlib.sha256(data["archive"].read_bytes()).hexdigest()
    with pytest.raises(ChecksumError) as info:
        acquire_corpus(out, out / "manifest.json", archive=data["archive"], sha256="0" * 64)
    message = str(info.value)
    assert f"sha256 mismatch for {data['archive']}" in message
    assert f"expected {'0' * 64}, got {observed}" in message
    assert files_under(out) == []


def test_bad_checksum_of_the_reval_judgements(tmp_path: Path) -> None:
    src = tmp_path / "judgements.json"
    src.write_text(json.dumps([_judged_item()]), encoding="utf-8")
    out = tmp_path / "reval" / "judgements.json"
    with pytest.raises(ChecksumError, match=rf"{re.escape(str(src))}: sha256 [0-9a-f]{{64}} differs from reval.judgements.sha256 0{{64}}"):
        acquire_judgements("local", out, path=str(src), sha256="0" * 64)
    assert files_under(out.parent) == []


# ---------------------------------------------------------------------------------------------------------------
# 2. Truncated archive


def _truncated(archive: Path, target: Path) -> Path:
    target.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    return target


def _corrupt_member(archive: Path, target: Path) -> Path:
    blob = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("ijcnlp_dailydialog/dialogues_act.txt")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    blob[start] ^= 0xFF  # the member's first data byte: its CRC no longer matches
    target.write_bytes(bytes(blob))
    return target


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_truncated, r"{path}: not a readable zip archive .*the file may be truncated"),
        (_corrupt_member, r"{path}: member ijcnlp_dailydialog/dialogues_act.txt is corrupt or truncated"),
    ],
    ids=["truncated", "corrupt-member"],
)
def test_truncated_or_corrupt_archive(data: dict[str, Path], tmp_path: Path, damage: Any, message: str) -> None:
    broken = damage(data["archive"], tmp_path / "broken.zip")
    out = tmp_path / "corpus"
    with pytest.raises(CorpusError, match=message.format(path=re.escape(str(broken)))):
        acquire_corpus(out, out / "manifest.json", archive=broken)
    assert files_under(out) == []


# ---------------------------------------------------------------------------------------------------------------
# 3. Malformed dialogue line


def _no_eou(folder: Path) -> None:
    path = folder / CORPUS_FILES["text"]
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace("__eou__", "")
    path.write_text("\n".join(lines) + "\n")


def _not_utf8(folder: Path) -> None:
    path = folder / CORPUS_FILES["text"]
    lines = path.read_bytes().split(b"\n")
    lines[3] = b"caf\xe9 __eou__ ok __eou__"
    path.write_bytes(b"\n".join(lines))


def _unknown_act(folder: Path) -> None:
    path = folder / CORPUS_FILES["act"]
    lines = path.read_text().splitlines()
    lines[4] = "1 9 1"
    path.write_text("\n".join(lines) + "\n")


def _short_topic_file(folder: Path) -> None:
    path = folder / CORPUS_FILES["topic"]
    path.write_text("1\n" * (len(DIALOGUES) - 1))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_no_eou, r"dialogues_text.txt, line 3: malformed dialogue, no '__eou__' marker"),
        (_not_utf8, r"dialogues_text.txt, line 4: not valid UTF-8 \(byte 3: b'\\xe9'\)"),
        (_unknown_act, r"dialogues_act.txt, line 5: unknown act label '9'"),
        (_short_topic_file, r"disagree on the number of dialogues \(dialogues_text.txt: 10, .*dialogues_topic.txt: 9\)"),
    ],
    ids=["no-eou", "not-utf8", "unknown-label", "line-counts"],
)
def test_malformed_dialogue_line(tmp_path: Path, damage: Any, message: str) -> None:
    folder = write_corpus_files(tmp_path / "corpus", DIALOGUES)
    damage(folder)
    out = tmp_path / "data"
    with pytest.raises(CorpusError, match=message):
        preprocess(folder, out / "sessions.parquet", out / "vocab.parquet",
                   {s: out / "pairs" / f"{s}.parquet" for s in ("train", "dev", "test")}, out / "preprocess.json",
                   PreprocessConfig(duplicate_threshold=1.0), progress=False)
    assert files_under(out) == []


# ---------------------------------------------------------------------------------------------------------------
# 4. Empty hypothesis (tolerated: kept, counted, adds nothing to training, scores 0)


def _shard_table(pair_ids: list[int], n: int, texts: dict[tuple[int, int], str]) -> pa.Table:
    rows = [(p, i, texts.get((p, i), f"hypothesis {i} ."), 0 if texts.get((p, i)) == "" else 3)
            for p in pair_ids for i in range(n)]
    return pa.table({
        "pair_id": [r[0] for r in rows], "hyp_index": [r[1] for r in rows], "text": [r[2] for r in rows],
        "n_tokens": [r[3] for r in rows], "logprob": [-1.0] * len(rows), "finished": [True] * len(rows),
    }, schema=HYPOTHESIS_SCHEMA)


def _write_shards(train: Path, folder: Path, n: int, texts: dict[tuple[int, int], str], shards: int = 2) -> list[Path]:
    pair_ids = load_table_column(train, "pair_id")
    paths = []
    for index in range(shards):
        start, stop = shard_range(len(pair_ids), shards, index)
        path = folder / f"shard{index:04d}.parquet"
        write_parquet(_shard_table(pair_ids[start:stop], n, texts), path)
        paths.append(path)
    return paths


def load_table_column(path: Path, column: str) -> list[Any]:
    return pq.read_table(path, columns=[column]).column(column).to_pylist()


def test_empty_teacher_hypothesis_is_kept_and_counted(data: dict[str, Path], tmp_path: Path) -> None:
    first, last = load_table_column(data["train"], "pair_id")[0], load_table_column(data["train"], "pair_id")[-1]
    shards = _write_shards(data["train"], tmp_path / "hyp", 2, {(first, 1): "", (last, 0): ""})
    manifest = gather(shards, data["train"], 2, tmp_path / "hyp" / "manifest.json")
    assert manifest["empty_hypotheses"] == 2
    assert [entry["empty"] for entry in manifest["shards"]] == [1, 1]
    assert manifest["rows"] == 2 * len(load_table_column(data["train"], "pair_id"))


def test_empty_hypothesis_adds_nothing_to_training(data: dict[str, Path], tmp_path: Path) -> None:
    torch.set_num_threads(1)
    first = load_table_column(data["train"], "pair_id")[0]
    texts = {(p, i): "" for p in load_table_column(data["train"], "pair_id") for i in range(2)}
    texts.pop((first, 0))  # pair `first`: hypothesis 0 is a real response, hypothesis 1 is empty
    shards = _write_shards(data["train"], tmp_path / "hyp", 2, texts)
    gather(shards, data["train"], 2, tmp_path / "hyp" / "manifest.json")
    hypotheses = hypothesis_texts(tmp_path / "hyp" / "manifest.json", 2)  # what a training run reads
    setting = tmp_path / "hyp2.parquet"
    write_parquet(
        pa.table({"pair_id": [first, first], "source": ["hyp", "hyp"], "hyp_index": pa.array([0, 1], pa.int16())}),
        setting,
    )
    vocab = load_vocabulary(data["vocab"])
    full, empty = setting_examples(setting, data["train"], hypotheses, vocab)
    assert empty.response == ()  # encodes to no ids at all, as the authors' tokenizer
    assert len(full.response) > 2
    model = registry.build("hred", {"kind": "hred", "embedding_dim": 8, "floor_dim": 4, "hidden": 8}, len(vocab),
                           {"pad_id": vocab.id("<pad>"), "bos_id": vocab.id("<s>"), "eos_id": vocab.id("</s>")}).eval()
    with torch.no_grad():
        both = model(*collate([full, empty], vocab.id("<pad>")))
        alone = model(*collate([full], vocab.id("<pad>")))
    assert both["n_tokens"] == alone["n_tokens"]
    assert torch.allclose(both["nll_sum"], alone["nll_sum"])
    assert both["token_nll"][1].abs().sum() == 0


def _decode_file(path: Path, hypotheses: dict[int, str]) -> Path:
    write_parquet(pa.table({
        "pair_id": pa.array(list(hypotheses), pa.int64()),
        "hypothesis": list(hypotheses.values()),
        "n_tokens": pa.array([len(h.split()) for h in hypotheses.values()], pa.int32()),
    }), path, {"model": "hred"})
    return path


def test_empty_decoded_hypothesis_scores_zero(data: dict[str, Path], tmp_path: Path) -> None:
    test_ids = load_table_column(data["test"], "pair_id")
    hyps = {p: "good to hear ." for p in test_ids} | {test_ids[0]: ""}
    decode = _decode_file(tmp_path / "decode.parquet", hyps)
    summary = run_metrics(decode, data["test"], data["vocab"], data["kv"], tmp_path / "metrics.json",
                          tmp_path / "per_pair.parquet", variant="authors")
    assert summary["empty_hypotheses"] == 1
    per_pair = {row["pair_id"]: row for row in pq.read_table(tmp_path / "per_pair.parquet").to_pylist()}
    assert {k: per_pair[test_ids[0]][k] for k in ("bleu2", "average", "extrema", "greedy")} == dict.fromkeys(
        ("bleu2", "average", "extrema", "greedy"), 0.0)


# ---------------------------------------------------------------------------------------------------------------
# 5. Unknown model or data name


def test_unknown_model_kind_or_data_setting_in_the_library(data: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"model 'x': unknown kind 'transformer' \(known: \["):
        registry.build("x", {"kind": "transformer"}, 20, {"pad_id": 0, "bos_id": 1, "eos_id": 2})
    with pytest.raises(ConfigError, match=r"unknown data setting 'gold': expected 'gt', 'hypK' or 'gt\+hypK'"):
        parse_setting("gold")
    out = tmp_path / "settings" / "hyp7.parquet"
    with pytest.raises(ConfigError, match=r"data setting 'hyp7' has no epoch budget in the paper's Table 9"):
        write_setting(data["train"], "hyp7", 20, 2, out)
    assert files_under(tmp_path / "settings") == []


def _dry_run(tmp_path: Path, overlay: dict[str, Any], *targets: str) -> str:
    root = tmp_path / "root"
    path = tmp_path / "overlay.yaml"
    path.write_text(yaml.safe_dump(overlay | {"root": str(root)}))
    tail = ["--", *[str(root / t) for t in targets]] if targets else []
    proc = run_snakemake("-n", "--configfile", "config/demo.yaml", str(path), *tail, check=False)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert not root.exists(), "a refused configuration must not create its root"
    return proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("overlay", "targets", "message"),
    [
        ({}, ["runs/transformer/gt/model.pt"], "unknown model 'transformer'; configured models: hred, "),
        ({}, ["runs/hred/hyp7/model.pt"], "data/settings/hyp7.parquet: data setting 'hyp7' has no epoch budget"),
        ({}, ["runs/hred/hyp100/model.pt"], "data/settings/hyp100.parquet: 'hyp100' needs 100 hypotheses per pair but "
                                            "teacher.sampling.n is 20"),
        ({"runs": {"extra": ["transformer/gt"]}}, [], "runs: unknown model 'transformer'"),
        ({"settings": {"names": ["gt", "gold"]}}, [], "'gold' does not match"),
        ({"models": {"gpt": {"kind": "transformer"}}}, [], "'transformer' is not one of"),
    ],
    ids=["target-model", "target-setting", "target-setting-k", "runs-extra", "settings-names", "model-kind"],
)
def test_unknown_model_or_data_name_stops_the_dry_run(tmp_path: Path, overlay: dict, targets: list[str], message: str) -> None:
    assert message in _dry_run(tmp_path, overlay, *targets)


# ---------------------------------------------------------------------------------------------------------------
# 6. Wrong config type


@pytest.mark.parametrize(
    ("overlay", "messages"),
    [
        ({"train": {"batch_size": "big"}}, ["'big' is not of type 'integer'", "['train']['batch_size']"]),
        ({"models": {"hred": {"kind": "hred", "hidden": "wide"}}}, ["'wide' is not of type 'integer'", "['hred']['hidden']"]),
        ({"teacher": {"device": 0}}, ["0 is not of type 'string'", "['teacher']['device']"]),
    ],
    ids=["train.batch_size", "models.hred.hidden", "teacher.device"],
)
def test_wrong_config_type_stops_the_dry_run(tmp_path: Path, overlay: dict, messages: list[str]) -> None:
    output = _dry_run(tmp_path, overlay)
    for message in messages:
        assert message in output


# ---------------------------------------------------------------------------------------------------------------
# 7. Missing word vectors


@pytest.mark.parametrize("source", ["{tmp}/nowhere/glove.twitter.200d.txt", "missing-vectors.kv"], ids=["path", "relative"])
def test_missing_training_word_vectors(data: dict[str, Path], tmp_path: Path, source: str) -> None:
    source = source.format(tmp=tmp_path)
    out = tmp_path / "word_vectors"
    vocab = load_vocabulary(data["vocab"])
    with pytest.raises(ConfigError, match=rf"word-vector file {re.escape(str(source))} does not exist"):
        write_initial_embeddings(list(vocab.tokens), vocab.id("<pad>"), source, out / "init.npy", out / "init.json")
    assert files_under(out) == []


@pytest.mark.parametrize("source", ["{tmp}/nowhere/GoogleNews-vectors-negative300.bin.gz", "missing-vectors.kv"],
                         ids=["path", "relative"])
def test_missing_evaluation_word_vectors(data: dict[str, Path], tmp_path: Path, source: str) -> None:
    source = source.format(tmp=tmp_path)
    out = tmp_path / "eval_vectors"
    with pytest.raises(ConfigError, match=rf"word-vector file {re.escape(str(source))} does not exist"):
        prepare_eval_vectors(source, data["train"], out / "vectors.kv", out / "vectors.json")
    assert files_under(out) == []


def test_unreadable_word_vector_file(data: dict[str, Path], tmp_path: Path) -> None:
    garbage = tmp_path / "vectors.bin"
    garbage.write_bytes(b"\x00\x01 not vectors\n" * 3)
    vocab = load_vocabulary(data["vocab"])
    out = tmp_path / "word_vectors"
    with pytest.raises(ConfigError, match=rf"{re.escape(str(garbage))}: not a word-vector file gensim can read"):
        write_initial_embeddings(list(vocab.tokens), vocab.id("<pad>"), str(garbage), out / "init.npy", out / "init.json")
    assert files_under(out) == []


# ---------------------------------------------------------------------------------------------------------------
# 8. Corrupt Parquet shard


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_corrupt_hypothesis_shard_is_named_and_deleted(data: dict[str, Path], tmp_path: Path) -> None:
    shards = _write_shards(data["train"], tmp_path / "hyp", 2, {})
    _truncate(shards[1])
    manifest = tmp_path / "hyp" / "manifest.json"
    with pytest.raises(ShardError, match=rf"shard 1 \({re.escape(str(shards[1]))}\): .*Parquet"):
        gather(shards, data["train"], 2, manifest)
    assert not shards[1].exists(), "the bad shard is deleted so that a rerun regenerates exactly it"
    assert shards[0].exists() and not manifest.exists()
    assert stray_temporaries(tmp_path / "hyp") == []


def _copy(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(src.read_bytes())
    return dst


def test_corrupt_pairs_file_stops_the_data_setting(data: dict[str, Path], tmp_path: Path) -> None:
    pairs = _copy(data["train"], tmp_path / "pairs" / "train.parquet")
    _truncate(pairs)
    out = tmp_path / "settings" / "gt.parquet"
    with pytest.raises(MultirefError, match=rf"{re.escape(str(pairs))}: cannot read this Parquet file .*delete it and rerun"):
        write_setting(pairs, "gt", 5, 2, out)
    assert files_under(tmp_path / "settings") == []


def test_corrupt_setting_file_stops_training(data: dict[str, Path], tmp_path: Path) -> None:
    setting = tmp_path / "settings" / "gt.parquet"
    write_setting(data["train"], "gt", 5, 2, setting)
    _truncate(setting)
    run = tmp_path / "runs" / "hred" / "gt"
    with pytest.raises(MultirefError, match=rf"{re.escape(str(setting))}: cannot read this Parquet file"):
        train_run("hred", {"kind": "hred"}, {"device": "cpu"}, setting, data["train"], data["dev"], data["vocab"], None,
                  run / "model.pt", run / "log.csv", run / "info.json", tmp_path / "work", progress=False)
    assert files_under(tmp_path / "runs") == [] and files_under(tmp_path / "work") == []


@pytest.mark.parametrize("culprit", ["decode", "vocab", "test"])
def test_corrupt_parquet_input_stops_the_metrics(data: dict[str, Path], tmp_path: Path, culprit: str) -> None:
    inputs = {
        "decode": _decode_file(tmp_path / "in" / "decode.parquet", dict.fromkeys(load_table_column(data["test"], "pair_id"), "good .")),
        "vocab": _copy(data["vocab"], tmp_path / "in" / "vocab.parquet"),
        "test": _copy(data["test"], tmp_path / "in" / "test.parquet"),
    }
    _truncate(inputs[culprit])
    out = tmp_path / "out"
    with pytest.raises(MultirefError, match=rf"{re.escape(str(inputs[culprit]))}: cannot read this Parquet file"):
        run_metrics(inputs["decode"], inputs["test"], inputs["vocab"], data["kv"], out / "metrics.json", out / "per_pair.parquet")
    assert files_under(out) == []


# ---------------------------------------------------------------------------------------------------------------
# 9. Out-of-vocabulary-only response (tolerated: <unk> ids, embedding similarities 0)


def test_oov_only_response_becomes_unk_ids_and_keeps_its_words(data: dict[str, Path]) -> None:
    vocab = load_vocabulary(data["vocab"])
    rows = pq.read_table(data["test"]).to_pylist()
    row = next(r for r in rows if r["response"] == OOV_RESPONSE)
    unk, dot = vocab.id("<unk>"), vocab.id(".")
    assert row["response_ids"] == [vocab.id("<s>"), unk, unk, dot, vocab.id("</s>")]


def test_oov_only_hypothesis_trains_on_unk(data: dict[str, Path], tmp_path: Path) -> None:
    first = load_table_column(data["train"], "pair_id")[0]
    setting = tmp_path / "hyp1.parquet"
    write_parquet(pa.table({"pair_id": [first], "source": ["hyp"], "hyp_index": pa.array([0], pa.int16())}), setting)
    vocab = load_vocabulary(data["vocab"])
    (example,) = setting_examples(setting, data["train"], {(first, 0): "zyzzyva quokka"}, vocab)
    assert example.response == (vocab.id("<s>"), vocab.id("<unk>"), vocab.id("<unk>"), vocab.id("</s>"))


def test_oov_only_sentences_score_zero_in_the_embedding_metrics(data: dict[str, Path], tmp_path: Path) -> None:
    test_ids = load_table_column(data["test"], "pair_id")
    responses = dict(zip(test_ids, load_table_column(data["test"], "response"), strict=True))
    oov_pair = next(p for p, r in responses.items() if r == OOV_RESPONSE)  # reference: <unk> <unk> .
    other = next(p for p in test_ids if p != oov_pair)
    # "." has a vector: keep it out of both sides so that each side is out of vocabulary only
    hyps = dict.fromkeys(test_ids, "hello , how are you ?") | {oov_pair: "good thanks", other: "florp blorp"}
    decode = _decode_file(tmp_path / "decode.parquet", hyps)
    run_metrics(decode, data["test"], data["vocab"], data["kv"], tmp_path / "metrics.json", tmp_path / "per_pair.parquet")
    per_pair = {row["pair_id"]: row for row in pq.read_table(tmp_path / "per_pair.parquet").to_pylist()}
    for pair in (oov_pair, other):  # an all-unknown reference, an all-unknown hypothesis
        assert {k: per_pair[pair][k] for k in ("average", "extrema", "greedy")} == dict.fromkeys(("average", "extrema", "greedy"), 0.0)


# ---------------------------------------------------------------------------------------------------------------
# 10. GPU requested but absent


class _Names(dict):
    """What Snakemake hands a script (``snakemake.input`` etc.): attribute access and ``keys()``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc


@pytest.fixture
def run_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """Run a thin script of workflow/scripts as Snakemake would, with a stand-in ``snakemake`` object;
    returns its exit status, console error output and log."""
    monkeypatch.syspath_prepend(str(REPO / "workflow" / "scripts"))
    root_handlers, root_level = logging.root.handlers[:], logging.root.level
    torch.set_num_threads(1)

    def run(name: str, **parts: dict[str, Any]) -> tuple[int, str, str]:
        log = tmp_path / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        smk = SimpleNamespace(log=[str(log)], threads=1, **{k: _Names(v) for k, v in parts.items()})
        try:
            with pytest.raises(SystemExit) as info:
                runpy.run_path(str(REPO / "workflow" / "scripts" / f"{name}.py"), init_globals={"snakemake": smk})
        finally:
            logging.root.handlers[:] = root_handlers
            logging.root.setLevel(root_level)
        return info.value.code, capsys.readouterr().err, log.read_text()

    return run


def _out(tmp_path: Path, *names: str) -> dict[str, str]:
    return {name: str(tmp_path / "out" / name) for name in names}


DECODE_PARAMS = {"seed": 1, "batch_size": 2, "max_len": 5}
SCRIPTS = {
    "decode": ("train.device", lambda t: {
        "input": {"model": str(t / "model.pt"), "test": str(t / "test.parquet"), "vocab": str(t / "vocab.parquet")},
        "output": _out(t, "decode", "ppl"), "params": {"decode": DECODE_PARAMS, "device": "cuda"}}),
    "teacher_decode": ("teacher.device", lambda t: {
        "input": {"model": str(t / "teacher"), "test": str(t / "test.parquet")},
        "output": _out(t, "decode", "ppl"), "params": {"decode": DECODE_PARAMS, "device": "cuda"}}),
    "hypotheses_shard": ("teacher.device", lambda t: {
        "input": {"model": str(t / "teacher"), "train": str(t / "train.parquet")}, "wildcards": {"shard": "0"},
        "output": _out(t, "shard"), "params": {"shards": 1, "sampling": {"n": 2}, "work": str(t / "work"), "device": "cuda"}}),
    "reval_train": ("reval.device", lambda t: {
        "input": {"judgements": str(t / "judgements.json")}, "output": _out(t, "model", "heldout", "per_item"),
        "params": {"reval": {"device": "cuda"}, "work": str(t / "work"), "checkpoint_minutes": 10}}),
    "reval_score": ("reval.device", lambda t: {
        "input": {"model": str(t / "reval"), "decode": str(t / "decode.parquet"), "test": str(t / "test.parquet")},
        "output": _out(t, "scores", "summary"), "params": {"batch_size": 4, "device": "cuda", "by_component": False}}),
}


@NO_GPU
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_gpu_requested_but_absent_in_a_script(run_script, tmp_path: Path, script: str) -> None:
    setting, parts = SCRIPTS[script]
    status, console, log = run_script(script, **parts(tmp_path))
    line = f"multiref error: {setting}: 'cuda' requested but no CUDA GPU is available (set {setting} to 'auto' or 'cpu')"
    assert status == 1
    assert line in console.splitlines() and line in log
    assert "Traceback" not in console
    assert files_under(tmp_path / "out") == [] and files_under(tmp_path / "work") == []


@NO_GPU
def test_gpu_requested_but_absent_for_the_teacher_and_the_models(data: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"^teacher.device: 'cuda:1' requested but no CUDA GPU is available"):
        build_teacher({"device": "cuda:1"}, data["sessions"], data["train"], data["dev"], out / "teacher",
                      out / "curve.csv", out / "metrics.json", tmp_path / "work" / "teacher", 40, progress=False)
    with pytest.raises(ConfigError, match=r"^train.device: 'cuda' requested but no CUDA GPU is available"):
        train_run("hred", {"kind": "hred"}, {"device": "cuda"}, tmp_path / "gt.parquet", data["train"], data["dev"],
                  data["vocab"], None, out / "model.pt", out / "log.csv", out / "info.json", tmp_path / "work" / "run",
                  progress=False)
    assert files_under(out) == [] and files_under(tmp_path / "work") == []


# ---------------------------------------------------------------------------------------------------------------
# 11. Unwritable output directory (a path whose folder is a regular file: root ignores permissions)


@pytest.mark.parametrize(
    "write",
    [
        lambda p: write_json({"a": 1}, p),
        lambda p: write_text("x", p),
        lambda p: write_parquet(pa.table({"a": [1]}), p),
    ],
    ids=["json", "text", "parquet"],
)
def test_unwritable_output_directory_in_the_atomic_writers(tmp_path: Path, write: Any) -> None:
    blocker = tmp_path / "results"
    blocker.write_text("a file where a folder should be")
    for target in (blocker / "out.x", blocker / "sub" / "out.x"):
        with pytest.raises(OutputError, match=re.escape(f"cannot write {target}: {blocker} is a file, not a folder")):
            write(target)
    folder = tmp_path / "taken"
    (folder / "out.x").mkdir(parents=True)  # the output's own name is a folder: the final rename fails
    with pytest.raises(OutputError, match=re.escape(f"cannot write {folder / 'out.x'}: Is a directory")):
        write(folder / "out.x")
    assert files_under(tmp_path) == ["results"] and blocker.read_text() == "a file where a folder should be"


def test_unwritable_output_directory_in_stage_writers(data: dict[str, Path], tmp_path: Path) -> None:
    blocker = tmp_path / "results"
    blocker.write_text("")
    with pytest.raises(OutputError, match=re.escape(f"cannot write {blocker}/data/settings/gt.parquet: {blocker} is a file")):
        write_setting(data["train"], "gt", 5, 2, blocker / "data" / "settings" / "gt.parquet")
    out = tmp_path / "data"
    with pytest.raises(OutputError, match=re.escape(f"cannot write {blocker}/sessions.parquet: {blocker} is a file")):
        preprocess(data["corpus"], blocker / "sessions.parquet", out / "vocab.parquet",
                   {s: out / f"{s}.parquet" for s in ("train", "dev", "test")}, out / "preprocess.json",
                   PreprocessConfig(duplicate_threshold=1.0), progress=False)
    assert files_under(tmp_path) == ["results"]


# ---------------------------------------------------------------------------------------------------------------
# 12. Unreadable annotations (the human judgements of the Reval evaluator)


def _judged_item() -> dict[str, Any]:
    return {"dialogue_id": "d1", "model": "ground-truth", "context": "hello .\nhi .", "response": "how are you ?",
            "reference": ["how are you ?"], "annotations": {"appropriateness": [4, 5]}}


def _bad_zip(path: Path) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("ACL2020_data/dd_annotations.json", json.dumps({"d": {}}) * 50)
    blob = bytearray(path.read_bytes())
    blob[blob.index(b'{"d"') + 1] ^= 0xFF  # the member's data no longer matches its CRC
    path.write_bytes(bytes(blob))


UNREADABLE = {
    "directory": (lambda p: p.mkdir(), r"{path}: is a directory, not a judgements file"),
    "invalid-bytes": (lambda p: p.write_bytes(b"[{\"model\": \"\xff\xfe\"}]"), r"{path}: not UTF-8 text \(byte 12: b'\\xff'\)"),
    "invalid-json": (lambda p: p.write_text('[{"dialogue_id": "d1",'), r"{path}: not valid JSON"),
    "wrong-json-type": (lambda p: p.write_text("42"), r"{path}: expected a JSON list of items or an object of AMT results"),
    "corrupt-zip": (_bad_zip, r"{path}!dd_annotations.json: cannot read the judgements \(Bad CRC-32"),
    "empty-list": (lambda p: p.write_text("[]"), r"{path}: the list of items is empty"),
    "bad-item": (lambda p: p.write_text('[{"dialogue_id": "d1"}]'), r"{path}: item 0, field '\w+': missing"),
}


@pytest.mark.parametrize("kind", sorted(UNREADABLE))
def test_unreadable_annotations(tmp_path: Path, kind: str) -> None:
    make, message = UNREADABLE[kind]
    src = tmp_path / "annotations" / "dd_annotations.json"
    src.parent.mkdir()
    make(src)
    out = tmp_path / "reval" / "judgements.json"
    with pytest.raises(ConfigError, match=message.format(path=re.escape(str(src)))):
        acquire_judgements("local", out, path=str(src))
    assert files_under(tmp_path / "reval") == []


@pytest.mark.parametrize("kind", ["directory", "invalid-json", "invalid-bytes"])
def test_unreadable_judgements_for_training(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "judgements.json"
    UNREADABLE[kind][0](path)
    message = {"directory": rf"{re.escape(str(path))}: judgements file not found", "invalid-json": rf"{re.escape(str(path))}: not valid JSON",
               "invalid-bytes": rf"{re.escape(str(path))}: not a UTF-8 text file"}[kind]
    with pytest.raises(ConfigError, match=message):
        load_judgements(path)


def test_folder_outputs_blocked_by_a_file_are_named(tmp_path: Path) -> None:
    """The writers of whole folders (the corpus extraction, saved models) name the output a file blocks."""
    from multiref.io import make_dirs

    blocker = tmp_path / "results"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError, match=rf"cannot write {re.escape(str(blocker / 'reval' / 'model'))}: {re.escape(str(blocker))} is a file, not a folder"):
        make_dirs(blocker / "reval", blocker / "reval" / "model")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]
