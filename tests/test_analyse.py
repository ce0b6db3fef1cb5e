"""Curves: aggregation over seeds and series, and the drawn files."""

import pytest

from poisonlab.reporting import curves as analyse


def row(kind, size, percent, seed, acc, model="smallcnn"):
    return {"dataset": "mnist", "kind": kind, "dataset_size": size, "percent": percent, "seed": seed,
            "test_accuracy": acc, "num_classes": 10, "model": model, "val": "split"}


ROWS = [row("random", 0, 0, 0, 0.98), row("random", 0, 0, 1, 0.96), row("random", 0, 50, 0, 0.9),
        row("biased", 1000, 50, 0, 0.3), row("biased", 1000, 50, 1, 0.5), row("random", 0, 0, 0, 0.7, model="svc")]


def test_curves_average_over_seeds_with_min_max_band():
    data = analyse.curves(ROWS)["mnist"]
    assert set(data) == {"random, full", "biased, first 1000", "random, full, svc"}
    full = data["random, full"]
    assert full["percents"] == [0, 50] and full["mean"][0] == 0.97 and (full["lo"][0], full["hi"][0]) == (0.96, 0.98)
    assert full["seeds"] == [2, 1]
    assert data["biased, first 1000"]["mean"] == [0.4]


def test_select_filters_kinds_and_datasets():
    assert len(analyse.select(ROWS, ["mnist"], ("biased",))) == 2
    assert analyse.select(ROWS, ["cifar10"], ("random", "biased")) == []


def test_plot_writes_png_and_svg(tmp_path):
    paths = analyse.plot(analyse.curves(ROWS), tmp_path / "curves")
    assert [p.suffix for p in paths] == [".png", ".svg"]
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and b"<svg" in paths[1].read_bytes()[:500]
    assert b"break point" in paths[1].read_bytes()


def test_halving_point_interpolates_between_measured_percents():
    assert analyse.halving_percent([0, 10, 20], [0.9, 0.6, 0.3]) == pytest.approx(15.0)
    assert analyse.halving_percent([0, 50], [0.8, 0.4]) == 50
    assert analyse.halving_percent([0, 50, 100], [0.8, 0.7, 0.5]) is None
    assert analyse.halving_percent([10, 50], [0.8, 0.1]) is None  # no unpoisoned point to halve


def test_interpolate_stays_inside_the_measured_range():
    assert analyse.interpolate([0, 20], [1.0, 0.5], 9.0) == pytest.approx(0.775)
    assert analyse.interpolate([0, 20], [1.0, 0.5], 40.0) is None


def test_combined_figure_puts_every_dataset_on_one_axes_per_size(tmp_path):
    rows = ROWS + [{**r, "dataset": "cifar10"} for r in ROWS[:5]] + [
        {**row("biased", 1000, 50, 0, 0.6, model="original"), "val": "test", "select": "last", "biased_rule": "code",
         "preset": "original"}]
    lines = analyse.combined_lines(analyse.curves(rows))
    assert sorted(lines) == [0, 1000]
    title, drawn = lines[1000]
    assert title == "Effect of poisoning various datasets: first 1000, biased"
    assert sorted(label for _, label, _, _ in drawn) == [
        "cifar10", "mnist", "mnist last items original val=test code rule original preset"]
    assert len({variant for _, _, variant, _ in drawn}) == 2  # smallcnn and the preset: a marker each
    title, drawn = lines[0]
    assert title.endswith("full, random") and sorted(label for _, label, _, _ in drawn) == ["cifar10", "mnist", "mnist svc"]
    paths = analyse.plot_combined(analyse.curves(rows), tmp_path / "combined")
    assert [p.name for p in paths] == ["combined_full.png", "combined_full.svg", "combined_first_1000.png",
                                       "combined_first_1000.svg"]
    svg = paths[1].read_text()
    assert "Percent poisoned" in svg and "mnist svc" in svg


def test_analyse_combined_and_report_chart_on_real_runs(cli, tmp_path, shared_data):
    out = tmp_path / "runs"
    for dataset in ("digits", "mnist"):
        assert cli.code("train", "--dataset", dataset, "--dataset-size", "300", "--model", "logreg", "--kinds",
                        "random,biased", "--percents", "0,60", "--out", out, "--data-dir", shared_data,
                        "--no-download") == 0
    code, printed = cli.text("analyse", "--all", "--combined", "--out", out)
    assert code == 0 and str(out / "plots" / "combined_first_300.png") in printed
    from poisonlab.reporting.html import build

    page = build(out, out / "report.html")["path"].read_text()
    assert "All datasets on one axes" in page and "chart-combined-0" in page
