"""Preemption: checkpoints on time and on SIGTERM/SIGUSR1, the job's exit status, and exact resumption."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from teacher_helpers import make_data

from multiref import preempt
from multiref.data.settings import write_setting
from multiref.models import registry
from multiref.models.data import load_vocabulary, pair_examples
from multiref.models.trainer import Schedule, train_model

SPEC = {"kind": "hred", "embedding_dim": 8, "floor_dim": 3, "hidden": 12, "dropout": 0.2}
SCHEDULE = Schedule(epochs=2, batch_size=8, eval_batch_size=16, validate_every=7, log_every=5, seed=5)


@pytest.fixture(autouse=True)
def no_signal_left() -> None:
    preempt.clear()
    yield
    preempt.clear()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("preempt")
    paths = make_data(root, n_dialogues=40)
    write_setting(paths["train"], "gt", 0, 2, root / "gt.parquet")
    return paths | {"gt": root / "gt.parquet"}


def fresh_model(vocab_size: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return registry.build("tiny", SPEC, vocab_size, {"pad_id": 0, "bos_id": 1, "eos_id": 2})


def test_checkpoint_is_due_on_time_and_on_a_signal() -> None:
    now = [0.0]
    ckpt = preempt.Checkpointer(60, clock=lambda: now[0])
    assert not ckpt.due()
    now[0] = 59.9
    assert not ckpt.due()
    now[0] = 60.0
    assert ckpt.due()
    ckpt.saved("somewhere")
    assert not ckpt.due() and not preempt.Checkpointer(None).due()
    with preempt.stop_signals():
        os.kill(os.getpid(), signal.SIGUSR1)
        assert preempt.received() == signal.SIGUSR1 and ckpt.due()
        with pytest.raises(preempt.Preempted, match="stopped by SIGUSR1; state saved to ckpt.pt") as caught:
            ckpt.saved("ckpt.pt")
    assert caught.value.exit_status == 128 + signal.SIGUSR1
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL  # the handlers are put back
    with pytest.raises(ValueError, match="positive"):
        preempt.Checkpointer(0)


def test_a_signal_mid_epoch_saves_that_step_and_the_resumed_run_is_identical(data: dict[str, Path], tmp_path: Path) -> None:
    torch.set_num_threads(1)
    vocab = load_vocabulary(data["vocab"])
    examples = list(pair_examples(data["train"]).values())[:120]
    dev = examples[:16]
    straight = fresh_model(len(vocab))
    train_model(straight, examples, dev, SCHEDULE, tmp_path / "straight.pt", 0, "cpu", progress=False)

    model = fresh_model(len(vocab))
    real_forward = model.forward

    def signalled(*args, step=0, **kwargs):
        if model.training and step == 10:  # during step 11, not a validation or epoch boundary
            os.kill(os.getpid(), signal.SIGTERM)
        return real_forward(*args, step=step, **kwargs)

    model.forward = signalled  # type: ignore[method-assign]
    with pytest.raises(preempt.Preempted, match="SIGTERM"):
        train_model(model, examples, dev, SCHEDULE, tmp_path / "ck.pt", 0, "cpu", progress=False, checkpoint_seconds=None)
    assert torch.load(tmp_path / "ck.pt", weights_only=False)["state"]["step"] == 11
    preempt.clear()
    resumed = fresh_model(len(vocab))
    train_model(resumed, examples, dev, SCHEDULE, tmp_path / "ck.pt", 0, "cpu", progress=False)
    assert all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True))


def test_periodic_checkpoints_do_not_change_the_result(data: dict[str, Path], tmp_path: Path) -> None:
    torch.set_num_threads(1)
    vocab = load_vocabulary(data["vocab"])
    examples = list(pair_examples(data["train"]).values())[:60]
    saves: list[int] = []
    real_saved = preempt.Checkpointer.saved

    def counting(self, where):
        saves.append(torch.load(where, weights_only=False)["state"]["step"])
        return real_saved(self, where)

    runs = []
    for seconds in (None, 1e-9):  # never on time / after every step
        preempt.Checkpointer.saved = counting  # type: ignore[method-assign]
        try:
            saves.clear()
            model = fresh_model(len(vocab))
            train_model(model, examples, examples[:8], SCHEDULE, tmp_path / f"{seconds}.pt", 0, "cpu", progress=False,
                        checkpoint_seconds=seconds)
        finally:
            preempt.Checkpointer.saved = real_saved  # type: ignore[method-assign]
        runs.append((model.state_dict(), list(saves)))
    (a, saves_a), (b, saves_b) = runs
    assert len(saves_b) > len(saves_a) and saves_b[:3] == [1, 2, 3]
    assert all(torch.equal(x, y) for x, y in zip(a.values(), b.values(), strict=True))


@pytest.mark.slow
def test_sigterm_to_a_training_job_exits_143_with_its_state_saved(data: dict[str, Path], tmp_path: Path) -> None:
    """The job as Snakemake runs it (through multiref.workflow.step), SIGTERM'd as Slurm would, then rerun."""
    train = {"device": "cpu", "batch_size": 8, "eval_batch_size": 16, "lr": 1e-3, "max_grad_norm": 1.0, "decay": 0.75,
             "patience": 3, "validate_every": 7, "min_lr": 1e-7, "seed": 3, "keep": "best", "log_every": 5,
             "epochs": 2, "example_budget": False}

    def job(out: Path) -> str:
        return (
            "import torch\ntorch.set_num_threads(1)\nfrom pathlib import Path\n"
            "from multiref.models.run import train_run\nfrom multiref.workflow import step\n"
            f"with step({str(out / 'job.log')!r}):\n"
            f"    train_run('tiny', {SPEC!r}, {train!r}, Path({str(data['gt'])!r}), Path({str(data['train'])!r}),"
            f" Path({str(data['dev'])!r}), Path({str(data['vocab'])!r}), None, Path({str(out / 'model.pt')!r}),"
            f" Path({str(out / 'log.csv')!r}), Path({str(out / 'info.json')!r}), Path({str(out / 'work')!r}),"
            " progress=False)\n"
        )

    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    for out in (straight, stopped):
        out.mkdir()
    subprocess.run([sys.executable, "-c", job(straight)], check=True)
    env = {**os.environ, "MULTIREF_FAULT": "wait", "MULTIREF_FAULT_MARKERS": str(tmp_path / "markers"), "MULTIREF_FAULT_WAIT": "60"}
    proc = subprocess.Popen([sys.executable, "-c", job(stopped)], env=env, stderr=subprocess.PIPE, text=True)
    log = stopped / "job.log"
    deadline = time.monotonic() + 120
    while "waiting up to" not in (log.read_text() if log.exists() else ""):
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text() if log.exists() else "no log"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert "stopped by SIGTERM; state saved to" in stderr and "checkpoint.pt" in stderr
    assert (stopped / "work" / "checkpoint.pt").exists() and not (stopped / "model.pt").exists()
    subprocess.run([sys.executable, "-c", job(stopped)], env=env, check=True)  # marker set: no second fault
    assert "resuming from the checkpoint" in log.read_text()
    a, _ = registry.load(straight / "model.pt")
    b, _ = registry.load(stopped / "model.pt")
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert (straight / "log.csv").read_text() == (stopped / "log.csv").read_text()
