"""Layer tables and Graphviz pictures of the models."""

import shutil

import pytest

from poisonlab.training import architecture
from poisonlab.training import models


@pytest.mark.parametrize("name, shape, k", [("smallcnn", (28, 28, 1), 10), ("simplecnn", (32, 32, 3), 10),
                                             ("smallcnn", (32, 32, 3), 100)])
def test_layer_table_adds_up_and_ends_in_class_scores(name, shape, k):
    info = architecture.summary(name, shape, k)
    model = models.build(name, shape, k)
    assert info["total"] == models.count_parameters(model) == sum(r["parameters"] for r in info["layers"])
    assert info["layers"][-1]["output"] == [k]
    first_conv = info["layers"][0]
    assert first_conv["layer"].startswith("Conv2d") and first_conv["output"][1:] == list(shape[:2])


def test_simplecnn_shapes_halve_three_times():
    info = architecture.summary("simplecnn", (32, 32, 3), 10)
    pools = [r["output"] for r in info["layers"] if r["layer"].startswith("MaxPool2d")]
    assert pools == [[32, 16, 16], [64, 8, 8], [128, 4, 4]]
    assert [r["output"] for r in info["layers"] if r["layer"].startswith("Linear")] == [[512], [10]]


def test_sklearn_models_have_no_layers():
    info = architecture.summary("svc", (8, 8, 1), 10)
    assert info["layers"] == [] and "SVC" in info["estimator"]


def test_dot_has_one_node_per_layer_and_renders():
    info = architecture.summary("smallcnn", (28, 28, 1), 10)
    dot = architecture.dot_source(info)
    assert dot.count(" -> ") == len(info["layers"]) + 1 and "10 class scores" in dot
    if shutil.which("dot") is None:
        assert architecture.render_svg(dot) is None
        return
    svg = architecture.render_svg(dot)
    assert svg.startswith("<svg") and svg.count("<g id=\"node") == len(info["layers"]) + 2
