"""The HTML report of a real small study (sweeps, a targeted flip, a detection), checked as HTML and in Chromium."""

import base64
import io
import json
import os
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from poisonlab.reporting import html as report
from poisonlab.reporting.curves import halving_percent
from poisonlab.reporting.html import browser
from poisonlab.reporting.html.charts import plotly_js
from poisonlab.reporting.html.collect import collect


@pytest.fixture(scope="module")
def study(poisonlab_main, tmp_path_factory, shared_data):
    """A real study folder: MNIST sweeps (first 500, random+biased, 2 seeds), an SVC flip and a kNN/CL detection."""

    out = tmp_path_factory.mktemp("study")
    data = ["--data-dir", str(shared_data), "--no-download"]
    commands = [
        ["train", "--dataset", "mnist", "--dataset-size", "500", "--kinds", "random,biased", "--percents", "0,30,60,90",
         "--seeds", "0,1", "--epochs", "4", "--batch-size", "32", "--out", out, *data],
        ["flip", "--dataset", "mnist", "--source", "1", "--target", "7", "--n", "0,40", "--model", "svc",
         "--train-size", "1000", "--test-size", "500", "--out", out / "flip-mnist-1-7", *data],
        ["detect", "--dataset", "mnist", "--dataset-size", "600", "--method", "knn-pixels,cl", "--percent", "20",
         "--out", out / "detect-mnist", *data],
    ]
    for args in commands:
        assert poisonlab_main(*args) == 0, args
    return out


@pytest.fixture(scope="module")
def page(study):
    path = study / "report.html"
    result = report.build(study, path)
    return path, path.read_text(), result


def test_collect_finds_every_kind_of_result(study):
    found = collect(study)
    assert len(found.rows) == 16 and len(found.flips) == 1 and len(found.detections) == 1
    assert {(g["kind"], g["runs"], tuple(g["seeds"])) for g in found.groups} == {("random", 8, (0, 1)), ("biased", 8, (0, 1))}
    assert all(g["sources"] and g["environments"][0]["torch"] for g in found.groups)
    for g in found.groups:  # per-class accuracy: seed means of the runs' own per-class figures
        assert list(g["per_class"]) == [0, 30, 60, 90] and all(len(v) == 10 for v in g["per_class"].values())
    runs = [r for r in found.rows if r["kind"] == "random" and r["percent"] == 0]
    per_class = [json.loads((study / r["run_dir"] / "run.json").read_text())["metrics"]["per_class_accuracy"][3]
                 for r in runs]
    random_group = next(g for g in found.groups if g["kind"] == "random")
    assert random_group["per_class"][0][3] == pytest.approx(np.mean(per_class))


def test_sweeps_in_subfolders_are_collected(study, tmp_path):
    """`report --out runs` over runs/<study>/ folders: the sweep rows and their provenance, not "0 runs"."""
    shutil.copytree(study, tmp_path / "runs" / "mnist-sweep")
    found = collect(tmp_path / "runs")
    assert len(found.rows) == 16 and all(r["run_dir"].startswith("mnist-sweep/") for r in found.rows)
    assert {(g["kind"], g["runs"]) for g in found.groups} == {("random", 8), ("biased", 8)}
    assert len(found.flips) == 1 and len(found.detections) == 1


def test_a_hostile_record_shape_builds_no_model(study, tmp_path):
    """run.json records declaring 100000 x 100000 images (a 40 GB model) get a note, not an allocation."""
    shutil.copytree(study, tmp_path / "study")
    for path in (tmp_path / "study" / "models").glob("**/run.json"):
        record = json.loads(path.read_text())
        record["dataset"]["shape"] = [100000, 100000, 1]
        path.write_text(json.dumps(record))
    report.build(tmp_path / "study", tmp_path / "report.html")
    html = tmp_path.joinpath("report.html").read_text()
    assert "no layer table, a run record of the smallcnn runs declares items of shape [100000, 100000, 1]" in html


def test_report_is_self_contained_and_has_every_section(page):
    path, html, result = page
    assert result["sections"] == ["Overview", "Accuracy vs poison", "Until accuracy halves",
                                  "Targeted flip: mnist 1 -> 7", "Defences", "Models", "Configuration and provenance"]
    page_only = html.replace(plotly_js(), "")
    assert html.count(plotly_js()) == 1 and not re.search(r'(src|href)="(https?:)?//', page_only)  # no network
    assert "Plotly.newPlot" in html and html.count('class="plotly-graph-div') == 4  # sweep, 2 per-class heatmaps, halving
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page_only)
    assert len(images) == 5 + 1  # five flip figures and the detection-quality plot
    for data in images:
        assert Image.open(io.BytesIO(base64.b64decode(data))).size[0] > 100
    assert "random break (K-1)\\u002fK = 90%" in html and "biased break 1\\u002f2" in html  # plotly escapes '/' in JSON


def test_report_tables_carry_the_measured_numbers(page, study):
    _, html, _ = page
    found = collect(study)
    clean = [r["test_accuracy"] for r in found.rows if r["kind"] == "random" and r["percent"] == 0]
    assert f"{np.mean(clean):.3f} ± {np.std(clean, ddof=1):.3f} (n=2)" in html
    biased = {p: np.mean([r["test_accuracy"] for r in found.rows if r["kind"] == "biased" and r["percent"] == p])
              for p in (0, 30, 60, 90)}
    halves = halving_percent(list(biased), list(biased.values()))
    assert halves is not None and f"{halves:.1f}%" in html  # biased poisoning at 90% is far below half
    assert "md5:" in html and "torch 2." in html and "max_epochs=4, batch_size=32" in html  # provenance: checksums, versions, config
    assert "53,362" in html and "Conv2d(1, 24" in html  # smallcnn layer table total
    assert "SVC(random_state=42)" in html  # the flip's model
    assert "knn-pixels" in html and "precision" in html


def test_missing_folder_and_empty_folder_are_one_line_errors(cli, tmp_path):
    code, _, err = cli("report", "--out", tmp_path / "nope")
    assert code == 2 and "does not exist" in err
    code, _, err = cli("report", "--out", tmp_path)
    assert code == 2 and "nothing to report" in err and len(err.strip().splitlines()) == 1


def test_report_renders_in_headless_chromium(cli, study):
    if not (os.environ.get("POISONLAB_CHROMIUM") or shutil.which("chromium")):
        if os.environ.get("POISONLAB_REQUIRE_BROWSER"):
            pytest.fail("Chromium is required here (POISONLAB_REQUIRE_BROWSER is set) but was not found")
        pytest.skip("Chromium not installed (apt install chromium); .ci/run installs it")
    target = study / "checked" / "report.html"
    code, out, err = cli("report", "--out", study, "--file", target, "--check")
    assert code == 0, err
    assert "6 images and 4 charts loaded, no console errors" in err and str(target) in out
    seen = browser.check(target)
    assert seen["images_loaded"] == seen["images"] == 6 and seen["charts_rendered"] == seen["charts"] == 4
    assert seen["console_errors"] == [] and seen["architecture_pictures"] == (1 if shutil.which("dot") else 0)
    shot = Image.open(target.with_suffix(".png")).convert("L")
    assert shot.size == (1400, 1000) and np.asarray(shot).std() > 10  # a real picture, not a blank page


def test_unreadable_or_incomplete_results_are_listed_not_fatal(study, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(study, copy)
    (copy / "detect-mnist" / "detect.json").write_text("{not json")
    (copy / "old-flip").mkdir()
    (copy / "old-flip" / "flip.json").write_text('{"dataset": "mnist", "summary": []}')
    result = report.build(copy, copy / "report.html")
    html = (copy / "report.html").read_text()
    assert result["detections"] == 0 and result["flips"] == 1 and "Defences" not in result["sections"]
    assert "detect.json: missing (not readable JSON)" in html and "old-flip/flip.json: missing classes" in html
