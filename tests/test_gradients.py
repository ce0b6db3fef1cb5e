"""Gradient detectors: the last-layer gradient against autograd, and on real MNIST with random and informed flips,
self-influence, gradient magnitude and gradient clustering scored by the one evaluator against the true mask."""

import numpy as np
import pytest
import torch

from poisonlab import datasets
from poisonlab.defences import detectors
from poisonlab.defences.evaluate import score
from poisonlab.defences.gradients import last_layer
from poisonlab.errors import PoisonlabError
from poisonlab.studies.run import RunSpec, poisoned_labels
from poisonlab.training import fitting


@pytest.fixture(scope="module")
def mnist(shared_data):
    return datasets.load("mnist", shared_data, dataset_size=2000)


def test_last_layer_gradient_is_autograds(mnist):
    model = fitting.build("smallcnn", mnist.x_train.shape[1:], 10, 0)
    x, y = mnist.x_train[:5], mnist.y_train[:5]
    error, h = last_layer(model, x, y)
    model.eval()
    for i in range(5):
        model.zero_grad()
        out = model(fitting.as_tensor(x[i : i + 1]))
        torch.nn.functional.cross_entropy(out.double(), torch.tensor(y[i : i + 1])).backward()
        assert np.allclose(model[-1].weight.grad.numpy(), np.outer(error[i], h[i]), atol=1e-5)
        assert np.allclose(model[-1].bias.grad.numpy(), error[i], atol=1e-6)


def _scored(mnist, select: str, methods: list[str]) -> dict[str, dict]:
    labels, mask, _ = poisoned_labels(RunSpec(dataset="mnist", dataset_size=2000, percent=20, select=select), mnist, None)
    return {d.method: score(d, mask) for d in detectors.run(methods, mnist.x_train, labels, 10, 0)}


def test_gradient_detectors_find_random_flips_on_real_mnist(mnist):
    scores = _scored(mnist, "random", ["influence", "grad", "gradclust"])
    for method, s in scores.items():
        assert s["roc_auc"] > 0.9 and s["precision_at_n"] > 0.75 and s["f1"] > 0.7, (method, s)
    assert scores["influence"]["f1"] > 0.8, scores["influence"]


def test_self_influence_beats_cl_and_loss_on_margin_flips(mnist):
    scores = _scored(mnist, "margin", ["influence", "cl", "loss"])
    assert scores["influence"]["recall"] > max(scores["cl"]["recall"], scores["loss"]["recall"]) + 0.2, scores
    assert scores["influence"]["f1"] > max(scores["cl"]["f1"], scores["loss"]["f1"]), scores


def test_gradient_detectors_refuse_feature_rows_in_one_line():
    rows = np.random.default_rng(0).random((60, 8))
    with pytest.raises(PoisonlabError, match="need images"):
        detectors.run(["influence"], rows, np.arange(60) % 3, 3, 0)
