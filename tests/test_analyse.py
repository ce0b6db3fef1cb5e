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
