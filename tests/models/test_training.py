"""Training runs: exact resume after a kill, divergence, kept model, stopping rules, checkpoints."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from teacher_helpers import make_data, run_and_kill

from multiref.data.settings import write_setting
from multiref.errors import ConfigError, MultirefError
from multiref.models import registry
from multiref.models.data import collate, load_vocabulary, pair_examples, setting_examples
from multiref.models.run import train_run
from multiref.models.trainer import Schedule, TrainingDiverged, train_model

SPEC = {"kind": "vhred", "prior": "lgm", "components": 2, "embedding_dim": 8, "floor_dim": 3, "hidden": 12,
        "latent_dim": 4, "dropout": 0.2, "anneal_steps": 20}
TRAIN = {"device": "cpu", "batch_size": 8, "eval_batch_size": 16, "lr": 1e-3, "max_grad_norm": 1.0, "decay": 0.75,
         "patience": 3, "validate_every": 7, "min_lr": 1e-7, "seed": 3, "keep": "best", "log_every": 5,
         "epochs": 2, "example_budget": False}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    paths = make_data(root, n_dialogues=60)
    write_setting(paths["train"], "gt", 0, 2, root / "gt.parquet")
    return paths | {"gt": root / "gt.parquet", "root": root}


def run(data: dict[str, Path], out: Path, train: dict | None = None) -> dict:
    return train_run("tiny", SPEC, train or TRAIN, data["gt"], data["train"], data["dev"], data["vocab"], None,
                     out / "model.pt", out / "log.csv", out / "info.json", out / "work", progress=False)


def test_collate_layout(data: dict[str, Path]) -> None:
    examples = list(pair_examples(data["train"]).values())[:4]
    x, x_floor, y, _y_floor = collate(examples, pad_id=0)
    assert x.shape[:2] == x_floor.shape and x.shape[0] == y.shape[0] == 4
    for i, e in enumerate(examples):
        assert [t for t in x[i, 0].tolist() if t] == list(e.context[0])  # real turns first
        assert (x[i, len(e.context):] == 0).all()  # then padding turns
        assert y[i, : len(e.response)].tolist() == list(e.response)


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights(data: dict[str, Path], tmp_path: Path) -> None:
    straight = tmp_path / "straight"
    run(data, straight)
    killed = tmp_path / "killed"
    code = (
        "from pathlib import Path\nfrom multiref.models.run import train_run\n"
        f"train_run('tiny', {SPEC!r}, {TRAIN!r}, Path({str(data['gt'])!r}), Path({str(data['train'])!r}),"
        f" Path({str(data['dev'])!r}), Path({str(data['vocab'])!r}), None, Path({str(killed / 'model.pt')!r}),"
        f" Path({str(killed / 'log.csv')!r}), Path({str(killed / 'info.json')!r}), Path({str(killed / 'work')!r}), progress=False)\n"
    )
    assert run_and_kill(code, killed / "work" / "checkpoint.pt")
    assert not (killed / "model.pt").exists()
    run(data, killed)
    a, _ = registry.load(straight / "model.pt")
    b, _ = registry.load(killed / "model.pt")
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert (straight / "log.csv").read_text() == (killed / "log.csv").read_text()
    info = json.loads((killed / "info.json").read_text())
    assert info["stopped"] == "epoch budget" and info["steps"] > 0


def test_loss_decreases_and_best_is_kept(data: dict[str, Path], tmp_path: Path) -> None:
    info = run(data, tmp_path / "a", TRAIN | {"epochs": 4})
    log = pd.read_csv(tmp_path / "a" / "log.csv")
    dev = log["dev_monitor"].dropna().tolist()
    assert dev[-1] < dev[0] and info["best_dev_monitor"] == pytest.approx(min(dev))
    _model, saved = registry.load(tmp_path / "a" / "model.pt")
    assert saved["info"]["kept"] == "best" and saved["name"] == "tiny"


def test_learning_rate_floor_stops_training(data: dict[str, Path], tmp_path: Path) -> None:
    """The paper's stopping rule: once a plateau decay has brought the learning rate to the floor, the run
    stops at the next epoch start. Here a learning rate just above the floor barely moves the dev monitor, so
    the first validation without a relative improvement of 1e-4 decays it (patience 0) below the floor."""
    info = run(data, tmp_path / "b", TRAIN | {"lr": 2e-7, "min_lr": 1e-7, "decay": 0.4, "patience": 0, "epochs": 5})
    assert info["stopped"] == "learning rate below minimum" and 0 < info["steps"] and info["epochs_budget"] == 5
    log = pd.read_csv(tmp_path / "b" / "log.csv")
    assert log["epoch"].max() < 4  # stopped well before the epoch budget


def test_a_schedule_that_allows_no_step_writes_nothing(data: dict[str, Path], tmp_path: Path) -> None:
    """An initial learning rate at the floor would stop before the first step: an error, not a model of 0 steps."""
    with pytest.raises(MultirefError, match=r"the schedule allows no optimiser step: lr 1e-08, min_lr 1e-07"):
        run(data, tmp_path / "b", TRAIN | {"lr": 1e-8, "epochs": 5})
    assert not (tmp_path / "b" / "model.pt").exists() and not (tmp_path / "b" / "info.json").exists()


def test_nan_loss_names_the_step_and_keeps_the_last_checkpoint(data: dict[str, Path], tmp_path: Path) -> None:
    vocab = load_vocabulary(data["vocab"])
    examples = list(pair_examples(data["train"]).values())
    model = registry.build("tiny", SPEC, len(vocab), {"pad_id": 0, "bos_id": 1, "eos_id": 2})
    real_forward = model.forward

    def poisoned(*args, step=0, **kwargs):
        out = real_forward(*args, step=step, **kwargs)
        if model.training and step >= 9:
            out["loss"] = out["loss"] * float("nan")
        return out

    model.forward = poisoned  # type: ignore[method-assign]
    schedule = Schedule(epochs=3, batch_size=8, validate_every=7, log_every=5)
    with pytest.raises(TrainingDiverged, match=r"non-finite loss \(nan\) at step 10; last finite losses \[[0-9., ]+\]"):
        train_model(model, examples, examples[:16], schedule, tmp_path / "ck.pt", 0, "cpu", progress=False)
    assert torch.load(tmp_path / "ck.pt", weights_only=False)["state"]["step"] == 7


def test_checkpoint_of_another_vocabulary_is_refused(data: dict[str, Path], tmp_path: Path) -> None:
    run(data, tmp_path / "c", TRAIN | {"epochs": 1})
    with pytest.raises(MultirefError, match="trained with another vocabulary"):
        registry.load(tmp_path / "c" / "model.pt", vocab_sha256="0" * 64)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(MultirefError, match="not a multiref model checkpoint"):
        registry.load(tmp_path / "junk.pt")


def test_unknown_kind_and_missing_hypotheses(data: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model 'x': unknown kind 'transformer'"):
        registry.build("x", {"kind": "transformer"}, 10, {})
    with pytest.raises(ConfigError, match="model 'x': .*unexpected keyword argument 'heads'"):
        registry.build("x", {"kind": "hred", "heads": 3}, 10, {})
    write_setting(data["train"], "hyp5", 20, 2, tmp_path / "hyp5.parquet")
    vocab = load_vocabulary(data["vocab"])
    with pytest.raises(ConfigError, match="hypothesis 0 of pair .* is missing"):
        setting_examples(tmp_path / "hyp5.parquet", data["train"], {}, vocab)
    with pytest.raises(ConfigError, match="needs 5 hypotheses per pair but the teacher's hypotheses are missing"):
        train_run("tiny", SPEC, TRAIN, tmp_path / "hyp5.parquet", data["train"], data["dev"], data["vocab"],
                  tmp_path / "none.json", tmp_path / "m.pt", tmp_path / "l.csv", tmp_path / "i.json", tmp_path / "w", progress=False)


def test_checkpoint_of_another_model_is_ignored_not_loaded(data: dict[str, Path], tmp_path: Path, caplog) -> None:
    out = tmp_path / "d"
    train = TRAIN | {"epochs": 1}
    run(data, out, train)
    other = SPEC | {"hidden": 10}
    with caplog.at_level("WARNING", logger="multiref"):
        info = train_run("tiny", other, train, data["gt"], data["train"], data["dev"], data["vocab"], None,
                         out / "model.pt", out / "log.csv", out / "info.json", out / "work", progress=False)
    assert "ignoring checkpoint" in caplog.text and info["steps"] > 0


def test_an_equal_steps_control_takes_exactly_its_steps(data: dict[str, Path], tmp_path: Path) -> None:
    """A control run (tables.synthetic.equal_steps) trains for exactly max_steps steps: more epochs than its
    setting's budget, and a learning-rate floor that would otherwise stop it does not."""
    floor = TRAIN | {"lr": 2e-7, "min_lr": 1e-7, "decay": 0.4, "patience": 0, "epochs": 5}  # as the floor test
    stopped = run(data, tmp_path / "rule", floor)
    assert stopped["stopped"] == "learning rate below minimum"
    steps = stopped["steps"] * 3
    info = train_run("tiny", SPEC, floor, data["gt"], data["train"], data["dev"], data["vocab"], None,
                     tmp_path / "c/model.pt", tmp_path / "c/log.csv", tmp_path / "c/info.json", tmp_path / "c/work",
                     progress=False, max_steps=steps)
    assert info["steps"] == steps and info["stopped"] == "step budget" and info["max_steps"] == steps
    assert info["epochs_budget"] >= 3 * pd.read_csv(tmp_path / "rule" / "log.csv")["epoch"].max()
