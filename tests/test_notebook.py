"""Jupyter display: short one-line reprs, escaped HTML tables (thumbnails for images only), and `.plot()` figures of
the API's results, on real data (MNIST, the embedded Fashion-MNIST subset) and tiny one-epoch studies."""

import base64
import io
import re
from dataclasses import fields, replace

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

import poisonlab as pl
from poisonlab.api import SweepResult

EVIL = "<b>cat&dog</b>"  # a class name a user could give: must reach HTML escaped
ESCAPED = "&lt;b&gt;cat&amp;dog&lt;/b&gt;"
PNG = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def assert_short_line(text: str, *parts: str) -> None:
    assert len(text) < 300 and "\n" not in text and "array(" not in text, text
    for part in parts:
        assert part in text, (part, text)


def assert_escaped(page: str) -> None:
    assert ESCAPED in page and EVIL not in page and "<b>cat" not in page


@pytest.fixture(scope="module")
def small():
    """300 training and 300 test images of the embedded set, class 0 renamed to EVIL."""
    data = pl.load_dataset("embedded", size=300)
    return replace(data, x_test=data.x_test[:300], y_test=data.y_test[:300], classes=[EVIL, *data.classes[1:]])


@pytest.fixture(scope="module")
def mnist(shared_data):
    return pl.load_dataset("mnist", size=200, data_dir=shared_data)


@pytest.fixture(scope="module")
def swept(small):
    return pl.sweep(small, rates=(0.0, 0.4), kinds=("random", "biased"), epochs=1)


@pytest.fixture(scope="module")
def flipped(small):
    return pl.flip(small, source=EVIL, target=1, n=(5,), model="smallcnn", epochs=1)


@pytest.fixture(scope="module")
def stamped(small):
    return pl.backdoor(small, target=0, rates=(0.05,), epochs=1)


@pytest.fixture(scope="module")
def certified(small):
    return pl.certify(small, partitions=3, epochs=1)


def open_figures() -> int:
    return len(plt.get_fignums())


def marked_lines(fig: Figure) -> list:
    """The data lines of a figure's first axes (those drawn with markers), not the reference lines."""
    return [line for line in fig.axes[0].lines if line.get_marker() not in (None, "None", "")]


def test_dataset_repr_is_one_short_line_and_the_dataclass_is_unchanged(mnist):
    text = repr(mnist)
    assert_short_line(text, "name='mnist'", "train=200", f"test={len(mnist.y_test)}", "28x28x1 uint8 images",
                      "classes=10: 0, 1, 2, … (+7)")
    assert str(mnist) == text
    assert [f.name for f in fields(pl.Dataset)] == ["name", "x_train", "y_train", "x_test", "y_test", "classes",
                                                     "sources", "notes"]
    assert mnist == replace(mnist) and mnist != replace(mnist, name="other")


def test_dataset_html_has_a_table_and_eight_thumbnails_of_the_training_images(mnist):
    page = mnist._repr_html_()
    assert "<table" in page and ">200<" in page and ">10<" in page
    images = PNG.findall(page)
    assert len(images) == 8
    first = Image.open(io.BytesIO(base64.b64decode(images[0])))
    assert first.format == "PNG" and first.size == (28, 28)
    assert np.array_equal(np.asarray(first), mnist.x_train[0, :, :, 0])
    assert page.count("<figcaption") == 8 and f">{mnist.classes[mnist.y_train[0]]}</figcaption>" in page


def test_feature_rows_get_no_thumbnails_and_every_name_is_escaped():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 5)).astype(np.float32), np.arange(40) % 3
    data = pl.from_arrays(x, y, x, y, classes=[EVIL, "two\nlines", "c"])
    data = replace(data, name="<script>alert(1)</script>")
    text = repr(data)
    assert_short_line(text, "train=40", "test=40", "5 float32 features", "two lines")
    page = data._repr_html_()
    assert_escaped(page)
    assert "<script" not in page and "&lt;script&gt;" in page
    assert "<img" not in page and "data:image" not in page


def test_run_result_repr_and_html(small):
    result = pl.train(small, rate=0.2, epochs=1)
    assert_short_line(repr(result), "dataset='embedded'", "rate=0.2", "poisoned=60/300",
                      f"accuracy={result.accuracy:.3f}", "epochs=1")
    page = result._repr_html_()
    assert_escaped(page)  # the per-class table names the classes
    assert page.count("<tr>") >= 10


def test_sweep_result_repr_html_and_one_curve_per_kind(swept):
    assert_short_line(repr(swept), "runs=4", "kinds=biased, random", "rates=0–0.4 (2 values)", "seeds=1", "out=None")
    page = swept._repr_html_()
    assert ">random<" in page and ">biased readme rule<" in page and ">0.4<" in page
    before = open_figures()
    fig = swept.plot()
    assert isinstance(fig, Figure) and open_figures() == before  # detached from pyplot: shown once in a notebook
    lines = marked_lines(fig)
    assert sorted(line.get_label().split(",")[0] for line in lines) == ["biased", "random"]
    assert all(list(line.get_xdata()) == [0.0, 40.0] for line in lines)
    fig.savefig(io.BytesIO(), format="png")


def test_an_empty_sweep_refuses_to_plot_in_one_line():
    assert repr(SweepResult([], None)) == "SweepResult(runs=0)"
    with pytest.raises(pl.PoisonlabError, match="no runs") as caught:
        SweepResult([], None).plot()
    assert "\n" not in str(caught.value)


def test_flip_result_repr_html_and_a_bar_per_n(flipped):
    assert_short_line(repr(flipped), "model=smallcnn", "n=0, 5", "seeds=1", "cat&dog")
    page = flipped._repr_html_()
    assert_escaped(page)
    assert page.count("<tr>") == 6 + 1 + 2  # facts, the header, N = 0 and 5
    fig = flipped.plot()
    assert isinstance(fig, Figure) and len(fig.axes[0].patches) == 2 and len(fig.axes[1].patches) == 2


def test_backdoor_result_repr_html_and_two_curves(stamped):
    assert_short_line(repr(stamped), "trigger=patch → <b>cat&dog</b>", "stamped=0–5 % (2 values)", "asr=")
    assert_escaped(stamped._repr_html_())
    lines = marked_lines(stamped.plot())
    assert [line.get_label() for line in lines] == ["attack success rate", "clean test accuracy"]
    assert all(len(line.get_xdata()) == 2 for line in lines)


def test_certify_result_repr_html_and_a_step_line_per_certificate(certified):
    assert_short_line(repr(certified), "method='dpa'", "partitions=3", "test=300",
                      f"clean_accuracy={certified.doc['clean_accuracy']:.3f}")
    page = certified._repr_html_()
    assert "certified accuracy (dpa)" in page and "certified accuracy (roe)" in page
    fig = certified.plot()
    steps = [line for line in fig.axes[0].lines if line.get_drawstyle() == "steps-post"]
    assert len(steps) == len(certified.doc["methods"]) == 2
    assert list(steps[0].get_xdata()) == [row["budget"] for row in certified.doc["certified_accuracy"]]


def test_defend_result_and_detection_reprs(small):
    matrix = pl.defend(small, rates=(0.2,), defences=("none",), epochs=1)
    assert_short_line(repr(matrix), "attacks=random", "rates=0.2", "defences=none", "cells=2")
    assert matrix._repr_html_().count("<tr>") == 7 + 1 + 2
    found = pl.detect(small.x_train, small.y_train, methods=("knn-pixels",))["knn-pixels"]
    assert_short_line(repr(found), "method='knn-pixels'", "items=300", f"flagged={int(found.flagged.sum())},")
