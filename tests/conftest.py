"""Shared fixtures: repository paths, the optional ../shared resources, a Snakemake runner."""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from multiref.data.dailydialog import CORPUS_FILES

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SHARED_ARCHIVE = SHARED / "data" / "dailydialog" / "ijcnlp_dailydialog.zip"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


@pytest.fixture(autouse=True)
def _restore_torch_threads() -> Iterator[None]:
    """Tests may use one torch thread for speed; the count is put back after each, because the
    kill-and-resume tests compare this process's results bitwise with a subprocess's (default count)."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture
def shared_archive() -> Path:
    if not SHARED_ARCHIVE.is_file():
        pytest.skip(f"../shared is absent ({SHARED_ARCHIVE} not found): real-corpus checks run on development machines and CI only")
    return SHARED_ARCHIVE


def write_corpus(folder: Path, dialogues: list[tuple[list[str], list[int], list[int], int]]) -> Path:
    """Write the four DailyDialog files for (utterances, acts, emotions, topic) tuples."""
    folder.mkdir(parents=True, exist_ok=True)
    text = "".join("".join(f"{u} __eou__" for u in utts) + "\n" for utts, _, _, _ in dialogues)
    acts = "".join("".join(f"{a} " for a in acts) + "\n" for _, acts, _, _ in dialogues)
    emos = "".join("".join(f"{e} " for e in emos) + "\n" for _, _, emos, _ in dialogues)
    topics = "".join(f"{t}\n" for *_, t in dialogues)
    for key, body in (("text", text), ("act", acts), ("emotion", emos), ("topic", topics)):
        (folder / CORPUS_FILES[key]).write_text(body, encoding="utf-8")
    return folder


def dialogue(utts: list[str], topic: int = 1) -> tuple[list[str], list[int], list[int], int]:
    return utts, [1] * len(utts), [0] * len(utts), topic


def demo_config() -> dict:
    """The demo's configuration as Snakemake sees it: config/demo.yaml (an override) merged onto config/config.yaml,
    with the schema's defaults filled in."""
    import yaml
    from snakemake.utils import update_config, validate

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    update_config(config, yaml.safe_load((REPO / "config" / "demo.yaml").read_text()))
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    return config


def run_snakemake(*args: str, cwd: Path = REPO, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run Snakemake from the repository root; on failure the output is shown in the assertion."""
    proc = subprocess.run([*SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, env=env, check=False)
    if check:
        assert proc.returncode == 0, f"snakemake {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


# The jobs the demo build kills: one of each long stage (teacher, a sampling shard, training runs
# whose results later tests compare with other builds, the evaluator).
KILLED = ("teacher", "hypotheses/shard0000-", "runs/hred/gt", "runs/vhred_lgm3/hyp5", "reval")


def build_demo(root: Path, markers: Path) -> None:
    """The whole demo DAG (`rule all`), the hard way: one job of each long stage (:data:`KILLED`) is
    killed with SIGKILL right after its first checkpoint (``MULTIREF_FAULT=kill``, see
    ``multiref.preempt``), and Snakemake's retry resumes it. ``markers`` lists the killed work folders."""
    match = "/work/(" + "|".join(re.escape(k) + ("" if k.endswith("-") else "$") for k in KILLED) + ")"
    env = {**os.environ, "MULTIREF_FAULT": "kill", "MULTIREF_FAULT_MARKERS": str(markers), "MULTIREF_FAULT_MATCH": match}
    run_snakemake("--cores", "2", "--configfile", "config/demo.yaml", "--config", f"root={root}", "--retries", "1", env=env)


def rebuild_demo_slice(demo_root: Path, other: Path) -> None:
    """A second, uninterrupted build of Table 5's slice of the demo into ``other`` for the determinism
    test: the data stages, then (from ``demo_root``'s teacher and evaluator, copied in and made newer
    than the data so that Snakemake keeps them) shards, the hyp5 setting, vhred_lgm3/hyp5, its
    per-component decoding and Reval scores, and Table 5."""
    demo = ("--cores", "1", "--configfile", "config/demo.yaml", "--config", f"root={other}")
    data = ("table8.tex", "data/sessions.parquet", "data/pairs/train.parquet", "data/pairs/dev.parquet")
    run_snakemake(*demo, "--", *(str(other / t) for t in data))
    copied = ("teacher/model", "teacher/curve.csv", "teacher/metrics.json", "reval/model", "reval/heldout.json",
              "reval/heldout.parquet", "reval/judgements.json", "reval/judgements_info.json")
    for rel in copied:
        (other / rel).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if (demo_root / rel).is_dir() else shutil.copyfile)(demo_root / rel, other / rel)
    for path in [p for folder in ("teacher", "reval") for p in (other / folder, *(other / folder).rglob("*"))]:
        os.utime(path)
    run_snakemake(*demo, "--", str(other / "table5.tex"))


class Background:
    """A build that runs in a thread from the start of the test session (so that the demo, its second
    build and the paper smoke share the machine with the other tests instead of running one after the
    other), in stages: ``wait(stage)`` blocks until that stage is done and re-raises its failure."""

    def __init__(self, name: str, stages: list[tuple[str, Callable[[], None]]]) -> None:
        self.done = {stage: threading.Event() for stage, _ in stages}
        self.error: dict[str, BaseException] = {}
        self.thread = threading.Thread(target=self._run, args=(stages,), name=name, daemon=True)
        self.thread.start()

    def _run(self, stages: list[tuple[str, Callable[[], None]]]) -> None:
        failed: BaseException | None = None
        for stage, work in stages:
            if failed is None:
                try:
                    work()
                except BaseException as exc:  # noqa: BLE001 (reported by the tests that wait for this stage)
                    failed = exc
            if failed is not None:
                self.error[stage] = failed
            self.done[stage].set()

    def wait(self, stage: str, timeout: float = 3600) -> None:
        assert self.done[stage].wait(timeout), f"{self.thread.name}: '{stage}' did not finish within {timeout:.0f} s"
        if stage in self.error:
            raise AssertionError(f"{self.thread.name}: '{stage}' failed: {self.error[stage]}")


_BUILDS: dict[str, Background] = {}
_ROOTS: dict[str, Path] = {}


def _wanted(session: pytest.Session, fixture: str) -> bool:
    return any(fixture in getattr(item, "fixturenames", ()) for item in session.items)


# The paper smoke (tests/workflow/test_paper_config.py): config/config.yaml with the override of .test/config-paper on a
# subset of the real corpus (needs ../shared).
PAPER_SMOKE = REPO / ".test" / "config-paper"
PAPER_SMOKE_SHARED = (SHARED / "data" / "dailydialog" / "ijcnlp_dailydialog.zip", SHARED / "data" / "reval" / "dailydialog-zhao_eval.json")


def build_paper_smoke(root: Path) -> None:
    """The local stand-ins of the hub resources, then `rule all` of the paper smoke and its `--report`."""
    proc = subprocess.run([sys.executable, str(PAPER_SMOKE / "standins.py")], cwd=REPO, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"building the stand-ins failed:\n{proc.stdout}\n{proc.stderr}"
    smoke = ("--cores", "2", "--configfile", str(PAPER_SMOKE / "config.yaml"), "--config", f"root={root}")
    run_snakemake(*smoke)
    run_snakemake(*smoke, "--report", str(root / "report.zip"))


@pytest.fixture(scope="session", autouse=True)
def _background_builds(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Start the end-to-end builds that the collected tests need, at once, one after the other in one thread:
    the demo (:func:`build_demo`), the determinism test's second build (:func:`rebuild_demo_slice`, one core),
    then the paper smoke (:func:`build_paper_smoke`). Each uses the two cores a build may take; the other tests
    run beside them (ordered by :func:`pytest_collection_modifyitems` so that each waits as little as possible).
    Two builds side by side were slower than one after the other: the machine is CPU-bound."""
    session = request.session
    stages: list[tuple[str, Callable[[], None]]] = []
    if _wanted(session, "demo_root") or _wanted(session, "demo_rebuild"):
        demo = _ROOTS["demo"] = tmp_path_factory.mktemp("demo") / "results-demo"
        stages.append(("demo", lambda: build_demo(demo, demo.parent / "killed")))
        if _wanted(session, "demo_rebuild"):
            other = _ROOTS["rebuild"] = tmp_path_factory.mktemp("rebuild") / "results-demo"
            stages.append(("rebuild", lambda: rebuild_demo_slice(demo, other)))
    if _wanted(session, "paper_smoke") and all(p.is_file() for p in PAPER_SMOKE_SHARED):
        smoke = _ROOTS["smoke"] = tmp_path_factory.mktemp("paper-smoke") / "results-paper-smoke"
        stages.append(("smoke", lambda: build_paper_smoke(smoke)))
    if stages:
        _BUILDS["builds"] = Background("background-builds", stages)
    yield
    for build in _BUILDS.values():
        build.thread.join(timeout=3600)  # never leave a Snakemake running behind


BACKGROUND_ORDER = ("demo_root", "demo_rebuild", "paper_smoke")


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that need no background build first, then those of the demo, of its second build, of the paper
    smoke: the order in which :func:`_background_builds` makes them (stable within each group)."""
    def rank(item: pytest.Item) -> int:
        names = getattr(item, "fixturenames", ())
        return max((i + 1 for i, f in enumerate(BACKGROUND_ORDER) if f in names), default=0)

    items.sort(key=rank)


@pytest.fixture(scope="session")
def demo_root() -> Path:
    """The demo, built once per test session into a temporary root (see :func:`build_demo`); the killed
    work folders are listed in ``<root>/../killed``."""
    _BUILDS["builds"].wait("demo")
    return _ROOTS["demo"]


@pytest.fixture(scope="session")
def demo_rebuild(demo_root: Path) -> Path:
    """The root of the determinism test's second build, once it has finished."""
    _BUILDS["builds"].wait("rebuild")
    return _ROOTS["rebuild"]


@pytest.fixture(scope="session")
def paper_smoke() -> Path:
    """The root of the paper smoke's build, once it has finished (skipped where ../shared is absent)."""
    missing = [str(p) for p in PAPER_SMOKE_SHARED if not p.is_file()]
    if missing:
        pytest.skip(f"../shared is absent ({missing[0]} not found): the paper smoke runs on development machines and CI only")
    _BUILDS["builds"].wait("smoke")
    return _ROOTS["smoke"]


@pytest.fixture
def serve() -> Iterator[Callable[[Path], str]]:
    """Start HTTP servers on 127.0.0.1 (a free port) serving a folder; returns their base URL."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(folder: Path) -> str:
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
        handler.log_message = lambda *args: None  # type: ignore[attr-defined]
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}"

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()
