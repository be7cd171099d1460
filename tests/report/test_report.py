"""The report: plots, sample pages and the methods page on tiny inputs (fast), and the whole
``snakemake --report`` of the demo opened in headless Chromium (slow)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import demo_config, run_snakemake

from multiref.errors import MultirefError
from multiref.io import write_parquet
from multiref.report import pages, plots, samples
from multiref.report.collect import RunRef, metric_table
from multiref.report.stage import (
    write_component_samples,
    write_methods,
    write_metric_trends,
    write_pi_bar,
    write_samples,
    write_table_page,
    write_training_curves,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------------------
# tiny fake pipeline outputs


def fake_run(root: Path, model: str, data: str, bleu: float, reval: float | None = None) -> RunRef:
    test = root / "runs" / model / data / "test"
    test.mkdir(parents=True)
    metrics = {"bleu2": bleu, "average": 0.5, "extrema": 0.4, "greedy": 0.45, "distinct1": 10, "distinct2": 20, "pairs": 3}
    (test / "metrics.json").write_text(json.dumps(metrics))
    (test / "perplexity.json").write_text(json.dumps({"ppl_authors": 30.0 - 100 * bleu, "ppl_token": 1.0}))
    if reval is not None:
        (test / "reval.json").write_text(json.dumps({"reval": reval, "pairs": 3}))
    return RunRef(model, data, test)


def fake_test_pairs(path: Path) -> Path:
    table = pa.table({
        "pair_id": pa.array([10, 11, 12, 13], pa.int64()),
        "context": [["hello ."], ["hello .", "hi , how are you ?"], ["a"], ["b <tag> & c"]],
        "context_floors": [["A"], ["A", "B"], ["A"], ["B"]],
        "response": ["hi , how are you ?", "fine .", "b", "d"],
        "response_floor": ["B", "A", "B", "A"],
    })
    pq.write_table(table, path)
    return path


def fake_decode(path: Path, prefix: str) -> Path:
    pq.write_table(pa.table({"pair_id": pa.array([10, 11, 12, 13], pa.int64()),
                             "hypothesis": [f"{prefix} {i}" for i in range(4)]}), path)
    return path


def fake_components(path: Path, pi: list[float]) -> Path:
    ids = [10, 11, 12, 13]
    table = pa.table({
        "pair_id": pa.array(ids * len(pi), pa.int64()),
        "hypothesis": [f"z{k} says {p}" for k in range(len(pi)) for p in ids],
        "n_tokens": pa.array([3] * (4 * len(pi)), pa.int32()),
        "k": pa.array([k for k in range(len(pi)) for _ in ids], pa.int32()),
    })
    write_parquet(table, path, metadata={"pi_mean": pi, "ppl_authors_by_k": [1.0] * len(pi)})
    return path


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def distinct_colours(data: bytes) -> int:
    """How many different RGB colours a PNG holds (a blank page or image has one)."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image.verify()
    with Image.open(io.BytesIO(data)) as image:
        rgb = np.asarray(image.convert("RGB")).reshape(-1, 3)
    return len(np.unique(rgb, axis=0))


# ---------------------------------------------------------------------------------------------------
# fast unit tests


def test_metric_table_scales_like_the_tables_and_leaves_missing_reval_out(tmp_path: Path) -> None:
    runs = [fake_run(tmp_path, "hred", "gt", 0.10), fake_run(tmp_path, "hred", "hyp5", 0.12, reval=3.5),
            fake_run(tmp_path, "hred", "gt+hyp5", 0.13)]
    table = metric_table(runs).set_index("data")
    assert table.loc["gt", "bleu2"] == pytest.approx(10.0) and table.loc["gt", "extrema"] == pytest.approx(40.0)
    assert table.loc["hyp5", "k"] == 5 and not table.loc["hyp5", "gt"] and table.loc["gt+hyp5", "gt"]
    assert table.loc["hyp5", "reval"] == 3.5 and np.isnan(table.loc["gt", "reval"])
    assert table.loc["gt", "ppl"] == pytest.approx(20.0) and table.loc["gt", "distinct2"] == 20


def test_metric_table_names_the_bad_file_and_field(tmp_path: Path) -> None:
    run = fake_run(tmp_path, "hred", "gt", 0.1)
    (run.test_dir / "metrics.json").write_text(json.dumps({"bleu2": "high"}))
    with pytest.raises(MultirefError, match=r"metrics\.json: field 'bleu2' is 'high'"):
        metric_table([run])
    (run.test_dir / "perplexity.json").unlink()
    (run.test_dir / "metrics.json").write_text(json.dumps({k: 0.1 for k in ("bleu2", "average", "extrema", "greedy", "distinct1", "distinct2")}))
    with pytest.raises(MultirefError, match=r"perplexity\.json: missing"):
        metric_table([run])
    with pytest.raises(MultirefError, match="no runs"):
        metric_table([])


def test_metric_trends_png_and_svg_are_valid_and_reproducible(tmp_path: Path) -> None:
    runs = [fake_run(tmp_path, m, d, b) for m, d, b in
            [("hred", "gt", 0.1), ("hred", "hyp1", 0.11), ("hred", "hyp5", 0.12), ("hred", "gt+hyp5", 0.13),
             ("vhred", "gt", 0.09), ("vhred", "hyp5", 0.1)]]
    first, second = tmp_path / "a", tmp_path / "b"
    for folder in (first, second):
        table = write_metric_trends(runs, [folder / "trends.png", folder / "trends.svg"])
    assert (first / "trends.png").read_bytes() == (second / "trends.png").read_bytes()
    assert (first / "trends.svg").read_bytes() == (second / "trends.svg").read_bytes()
    width, height = png_size(first / "trends.png")
    assert width > 400 and height > 200
    assert distinct_colours((first / "trends.png").read_bytes()) > 5
    svg = (first / "trends.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "Reval" not in svg  # no Reval anywhere: left out
    assert "BLEU-2" in svg and "Perplexity" in svg and "GT+hypK" in svg
    assert list(table["model"]) == ["hred"] * 4 + ["vhred"] * 2


def test_metric_trends_refuses_a_table_without_values() -> None:
    table = pd.DataFrame({"model": ["m"], "data": ["gt"], "k": [0], "gt": [True], "bleu2": [np.nan]})
    with pytest.raises(MultirefError, match="no metric has a value"):
        plots.metric_trends(table, ["bleu2"])
    with pytest.raises(MultirefError, match="missing columns"):
        plots.metric_trends(table.drop(columns="k"), ["bleu2"])


def test_training_curves_one_panel_per_run_and_dev_loss_fallback(tmp_path: Path) -> None:
    run = tmp_path / "log.csv"
    pd.DataFrame({"step": [10, 20, 20, 30], "epoch": 0, "lr": 1e-3, "train_loss": [4.0, 3.5, None, 3.0],
                  "dev_loss": [None, None, 3.6, None], "dev_monitor": [None, None, 40.0, None],
                  "dev_ppl": [None, None, 40.0, None]}).to_csv(run, index=False)
    teacher = tmp_path / "curve.csv"
    pd.DataFrame({"step": [5, 10], "epoch": [0, 0], "lr": 1e-3, "train_loss": [5.0, 4.0], "dev_loss": [None, 4.1],
                  "dev_monitor": [None, None], "dev_ppl": [None, 60.0]}).to_csv(teacher, index=False)
    out = tmp_path / "curves.png"
    write_training_curves({"hred/gt": run, "teacher": teacher}, out)
    assert png_size(out)[0] > 300 and distinct_colours(out.read_bytes()) > 5
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"step": [1], "train_loss": [1.0]}).to_csv(bad, index=False)
    with pytest.raises(MultirefError, match="training curve hred/gt: no dev_monitor or dev_loss"):
        write_training_curves({"hred/gt": bad}, tmp_path / "never.png")
    assert not (tmp_path / "never.png").exists()  # no partial output on error


def test_pi_bar_from_by_component_metadata(tmp_path: Path) -> None:
    by_component = fake_components(tmp_path / "by_component.parquet", [0.5, 0.3, 0.2])
    out = tmp_path / "pi.png"
    assert write_pi_bar(by_component, "vhred_lgm3/hyp5", out) == [0.5, 0.3, 0.2]
    assert distinct_colours(out.read_bytes()) > 3
    with pytest.raises(MultirefError, match="pi_mean must be"):
        plots.pi_bar([0.5, float("nan")], "x")
    pq.write_table(pa.table({"k": [0]}), tmp_path / "plain.parquet")
    with pytest.raises(MultirefError, match="no 'pi_mean'"):
        write_pi_bar(tmp_path / "plain.parquet", "x", tmp_path / "never.png")
    with pytest.raises(MultirefError, match=r"\.txt"):
        plots.save_figure(plots.pi_bar([1.0], "x"), tmp_path / "pi.txt")


def test_pick_pairs_is_seeded_and_in_test_order() -> None:
    ids = list(range(100, 200))
    first = samples.pick_pairs(ids, 5, seed=3)
    assert first == samples.pick_pairs(list(reversed(ids)), 5, seed=3) == sorted(first)
    assert first != samples.pick_pairs(ids, 5, seed=4) and len(set(first)) == 5
    assert samples.pick_pairs([1, 2], 5, seed=0) == [1, 2]
    with pytest.raises(MultirefError, match="at least 1"):
        samples.pick_pairs(ids, 0, seed=0)


def test_samples_page_lists_context_ground_truth_and_every_model(tmp_path: Path) -> None:
    test = fake_test_pairs(tmp_path / "test.parquet")
    decodes = {"hred/gt": fake_decode(tmp_path / "a.parquet", "alpha"), "vhred/hyp5": fake_decode(tmp_path / "b.parquet", "")}
    out = tmp_path / "samples.html"
    ids = write_samples(test, decodes, out, n=4, seed=0)
    assert ids == [10, 11, 12, 13]
    page = out.read_text()
    assert page.count('<table class="sample">') == 4
    assert "<th>A:</th><td>hello .</td>" in page and "<th>B:</th><td>hi , how are you ?</td>" in page
    assert "Ground truth (A)</th><td>fine .</td>" in page
    assert "hred/gt" in page and "alpha 1" in page and "vhred/hyp5" in page
    assert "b &lt;tag&gt; &amp; c" in page  # text is escaped
    missing = tmp_path / "short.parquet"
    pq.write_table(pa.table({"pair_id": pa.array([10], pa.int64()), "hypothesis": ["x"]}), missing)
    with pytest.raises(MultirefError, match=r"short\.parquet: no hypothesis for test pair_id 11"):
        write_samples(test, {"m/gt": missing}, tmp_path / "never.html", n=4, seed=0)
    assert not (tmp_path / "never.html").exists()


def test_component_samples_page_has_one_row_per_latent_variable(tmp_path: Path) -> None:
    test = fake_test_pairs(tmp_path / "test.parquet")
    by_component = fake_components(tmp_path / "by_component.parquet", [0.25, 0.75])
    out = tmp_path / "components.html"
    assert write_component_samples(by_component, test, "vhred_lgm3/hyp5", out, n=2, seed=1) == [0.25, 0.75]
    page = out.read_text()
    assert page.count('<table class="sample">') == 2
    assert "z = 0 (π̄ = 25.0%)" in page and "z = 1 (π̄ = 75.0%)" in page and "z1 says" in page


def test_methods_page_names_the_stages_and_links_the_docs(tmp_path: Path) -> None:
    config = {"run_name": "demo", "root": "results-demo", "corpus": {"source": "synthetic"},
              "teacher": {"init": "scratch", "train": {"epochs": 8}, "sampling": {"n": 20, "top_p": 0.95, "temperature": 1.0}},
              "settings": {"names": ["gt", "hyp5"], "gt_copies": 2},
              "models": {"vhred_lgm3": {"kind": "vhred", "prior": "lgm", "components": 3, "hidden": 64}},
              "reval": {"encoder": "minilm"}, "tables": {"table4": {"model": "vhred_lgm3"}, "table5": {"model": None}}}
    docs = tmp_path / "docs"
    rst, html = tmp_path / "methods.rst", tmp_path / "methods.html"
    write_methods(config, ["vhred_lgm3/hyp5"], docs, rst, html)
    text = rst.read_text()
    for heading in ("Data", "Teacher and hypotheses", "Models and training", "Decoding", "Metrics", "Evaluator",
                    "Tables and plots", "Documentation"):
        assert f"\n{heading}\n" in text
    assert "trained from scratch" in text and "Table 4" in text and "Table 5 (each" not in text
    page = html.read_text()
    assert "<h1" in page and "vhred_lgm3/hyp5" in page and "lgm (3 components)" in page
    assert (docs / "data.md").resolve().as_uri() in page and "minilm" in page
    with pytest.raises(MultirefError, match="invalid reStructuredText"):
        pages.rst_to_html("Title\n===\n\n`unclosed", "x")


def test_table_page_renders_the_csv(tmp_path: Path) -> None:
    csv = tmp_path / "table1.csv"
    pd.DataFrame({"model": ["HRED <l>"], "bleu2": [12.345], "paper_bleu2": [""]}).to_csv(csv, index=False)
    out = tmp_path / "table1.html"
    write_table_page(csv, "Table 1", "Data enhancement.", out)
    page = out.read_text()
    assert "<table" in page and "12.345" in page and "HRED &lt;l&gt;" in page and "Data enhancement." in page
    (tmp_path / "empty.csv").write_text("a,b\n")
    with pytest.raises(MultirefError, match="no rows"):
        write_table_page(tmp_path / "empty.csv", "x", "", tmp_path / "never.html")


# ---------------------------------------------------------------------------------------------------
# the demo's report in headless Chromium (slow)


def chromium_binary() -> str:
    """Debian's chromium, installed with apt-get when missing (we run as root in CI); skip otherwise."""
    for name in ("chromium", "chromium-browser"):
        if found := shutil.which(name):
            return found
    import os

    if not shutil.which("apt-get") or os.geteuid() != 0:
        pytest.skip("headless Chromium is not installed and apt-get cannot install it here (needs apt-get as root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"]
    proc = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:  # stale package lists: refresh once
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, text=True, check=False)
        proc = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
    found = shutil.which("chromium")
    if proc.returncode != 0 or not found:
        pytest.skip(f"apt-get install chromium failed: {proc.stderr.strip()[-300:]}")
    return found


def chromium(binary: str, page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio",
               "--window-size=1400,1000", "--virtual-time-budget=15000", *args, page.resolve().as_uri()]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"chromium failed:\n{proc.stderr[-2000:]}"
    return proc


def embedded(report: str, name: str) -> dict:
    """A JSON object the report's script `<script id=name>var name = {...};</script>` embeds."""
    match = re.search(rf'<script id="{name}">\s*var \w+ = (.*?);\s*</script>', report, re.DOTALL)
    assert match, f"the report embeds no '{name}' data"
    return json.loads(match.group(1))


def page_text(dom: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", re.sub(r"<script.*?</script>|<style.*?</style>", " ", dom, flags=re.DOTALL)))


def data_bytes(uri: str) -> bytes:
    header, _, payload = uri.partition(",")
    assert header.startswith("data:") and header.endswith(";base64"), header[:80]
    return base64.b64decode(payload)


def navigated(report: Path, out: Path, category: str, subcategory: str, path: str, content: str) -> Path:
    """A copy of the report that opens ``category/subcategory`` and shows the result ``path`` (the
    single-page app has no URL per view: this calls its own navigation once loaded)."""
    script = (
        "<script>window.addEventListener('load', function () { setTimeout(function () {"
        f" app.setView({{navbarMode: 'subcategory', category: {json.dumps(category)},"
        f" subcategory: {json.dumps(subcategory)}, content: {json.dumps(content)},"
        f" contentPath: results[{json.dumps(path)}].data_uri, resultPath: {json.dumps(path)}}});"
        " }, 300); });</script>"
    )
    head, body_end, tail = report.read_text(encoding="utf-8").rpartition("</body>")
    assert body_end, f"{report}: no </body>"
    out.write_text(head + script + body_end + tail, encoding="utf-8")
    return out


@pytest.mark.slow
def test_demo_report_renders_in_headless_chromium(demo_root: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    run_snakemake("--cores", "1", "--report", str(report), "--configfile", "config/demo.yaml", "--config", f"root={demo_root}")
    html = report.read_text(encoding="utf-8")
    results, categories = embedded(html, "results"), embedded(html, "categories")
    by_name = {entry["name"]: path for path, entry in results.items()}

    # every item is there, captioned, in its category
    tables = ["table1", "table2", "table4", "table5", "table8", "table_synthetic"]
    expected = [f"{t}.csv" for t in tables] + [f"{t}.html" for t in tables]
    expected += ["metric_trends.png", "training_curves.png", "samples.html", "methods.html"]
    demo = demo_config()
    assert demo["report"]["components"] == "table5"  # per-variable items for Table 5's run only
    table5_run = f"{demo['tables']['table5']['model']}_{demo['tables']['table5']['data']}"
    expected += [f"pi_bar_{table5_run}.png", f"samples_components_{table5_run}.html"]
    missing = [name for name in expected if name not in by_name]
    assert not missing, f"not in the report: {missing}"
    for name, path in by_name.items():
        caption = page_text(results[path]["caption"]).strip()
        assert caption and caption.count(". ") <= 1, f"{name}: caption should be one sentence, got {caption!r}"
    assert set(categories) >= {"Tables", "Plots", "Samples", "Methods"}
    assert set(categories["Plots"]) == {"Metric trends", "Training curves", "Mixture weights"}

    # every embedded plot is a valid, non-blank image; every page holds what it should
    for name, path in by_name.items():
        data = data_bytes(results[path]["data_uri"])
        if name.endswith(".png"):
            assert distinct_colours(data) > 5, f"{name}: blank or invalid PNG"
        elif name.endswith(".svg"):
            import xml.etree.ElementTree as ET

            assert ET.fromstring(data).tag.endswith("svg"), name
        elif name.endswith(".html"):
            text = data.decode("utf-8")
            assert "<table" in text or name == "methods.html", f"{name}: no table"
    claims_page = data_bytes(results[by_name["claims.html"]]["data_uri"]).decode()
    assert all(c["id"] in claims_page for c in demo["claims"]["list"]) and "inconclusive" in claims_page
    assert "1. Claims" in categories  # the claims come first in the report's results
    samples_page = data_bytes(results[by_name["samples.html"]]["data_uri"]).decode()
    assert samples_page.count('<table class="sample">') == 5 and "Ground truth" in samples_page
    assert "hred/gt" in samples_page and "vhred_lgm3/hyp5" in samples_page
    methods = page_text(data_bytes(results[by_name["methods.html"]]["data_uri"]).decode())
    for heading in ("Data", "Teacher and hypotheses", "Decoding", "Metrics", "Evaluator", "Documentation"):
        assert heading in methods

    # the front page in headless Chromium: its text names the categories, the screenshot is not blank
    binary = chromium_binary()
    dom = chromium(binary, report, "--dump-dom").stdout
    text = page_text(dom)
    assert "multiref rebuilds the experiments" in text  # the workflow description, rendered by the app
    for word in ("Workflow", "Statistics", "Tables", "Plots", "Samples", "Methods"):
        assert word in text, f"front page does not show {word!r}"
    front = tmp_path / "front.png"
    chromium(binary, report, f"--screenshot={front}")
    front_colours = distinct_colours(front.read_bytes())
    assert front_colours > 10

    # navigated to the trends plot and to Table 1: the lists name the items and the view shows them
    views = [
        ("Plots", "Metric trends", "metric_trends.png", "img", ["each metric against K"]),
        ("Tables", "HTML view", "table1.html", "html", ["table1", "table2", "table8", "table_synthetic"]),
        ("Samples", "Per model", "samples.html", "html", ["responses per model"]),
    ]
    shots = {}
    for category, subcategory, name, content, listed in views:
        page = navigated(report, tmp_path / f"{name}.report.html", category, subcategory, by_name[name], content)
        dom = chromium(binary, page, "--dump-dom").stdout
        text = page_text(dom)
        for item in listed:
            assert item in text, f"{category}/{subcategory}: {item} is not listed"
        if content == "img":
            assert re.search(r'<img[^>]+src="data:image/png', dom), "the plot is not shown"
        else:
            assert re.search(r'<iframe[^>]+src="data:text/html', dom), f"{name} is not shown"
        shot = tmp_path / f"{name}.png"
        chromium(binary, page, f"--screenshot={shot}")
        shots[name] = shot.read_bytes()
        assert shots[name] != front.read_bytes()
        assert distinct_colours(shots[name]) > 20, f"{name}: the screenshot is (nearly) blank"
    assert len(set(shots.values())) == len(shots)


def test_claims_page_lists_every_claim_with_its_verdict_and_evidence() -> None:
    from multiref.report.pages import claims_page

    rows = pd.DataFrame({"claim": ["a", "a", "b"], "evidence": ["e1 -> holds", "e2 -> fails", "e3 -> inconclusive"]})
    summary = pd.DataFrame({"claim": ["a", "b"], "paper": ["zhao2021", "li2021"], "section": ["§1", "§5"],
                            "verdict": ["fails", "inconclusive"], "holds": [1, 0], "fails": [1, 0], "inconclusive": [0, 1],
                            "untested": [0, 0], "sentence": ["We <show> it.", "Gap."], "note": ["", "demo"]})
    page = claims_page(summary, rows)
    assert "<table" in page and page.count("<h2>") == 2 and "We &lt;show&gt; it." in page
    assert page.index("e1 -&gt; holds") < page.index("e2 -&gt; fails") < page.index("e3 -&gt; inconclusive")
    with pytest.raises(MultirefError, match="no claim to show"):
        claims_page(summary.iloc[:0], rows)
