"""The original experiment, exactly: its network, its item choice, its biased rule, its training rules and the preset
that sets them all, on real MNIST."""

import json
import math

import numpy as np
import pytest
import torch

from poisonlab import datasets
from poisonlab.attacks import flips
from poisonlab.reporting.curves import break_points
from poisonlab.studies import DEFAULT_PERCENTS
from poisonlab.studies.presets import resolve
from poisonlab.training import models
from poisonlab.training.loop import (BETAS, Plateau, TrainConfig, adam_denominator, keras_epsilon, to_tensor)


@pytest.fixture(scope="module")
def mnist(shared_data):
    return datasets.load("mnist", shared_data, 0, download=False)


def test_the_network_is_the_keras_one(mnist):
    net = models.build("original", mnist.x_train.shape[1:], 10)
    assert models.count_parameters(net) == 80_874
    convs = [m for m in net if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.padding) for c in convs] == [(32, (3, 3), (0, 0))] * 5 + [(32, (3, 3), (1, 1))]
    assert [m.out_features for m in net if isinstance(m, torch.nn.Linear)] == [128, 128, 10]
    for layer in convs + [m for m in net if isinstance(m, torch.nn.Linear)]:  # Glorot-uniform kernels, zero biases
        fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(layer.weight)
        bound = math.sqrt(6 / (fan_in + fan_out))
        assert layer.weight.abs().max() <= bound and layer.weight.abs().max() > 0.9 * bound
        assert not layer.bias.any()
    pixels = mnist.x_train[:64]
    unit = net[0](to_tensor(pixels))  # the network sees pixel / 255, as Keras' inputs were
    expected = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255
    assert torch.allclose(unit, expected, atol=1e-6)
    assert models.count_parameters(models.build("original", (32, 32, 3), 100)) == 113_540  # CIFAR-100 shapes work
    with pytest.raises(Exception, match="at least 24x24"):
        models.build("original", (8, 8, 1), 10)


def test_first_1000_are_the_official_first_items(shared_data):
    data = datasets.load("mnist", shared_data, 1000, download=False)
    assert len(data.y_train) == 1000 and data.y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert len(data.y_test) == 10_000


def test_last_selection_poisons_exactly_the_last_items(shared_data):
    labels = datasets.load("mnist", shared_data, 1000, download=False).y_train
    for percent in DEFAULT_PERCENTS:
        cutoff = round(len(labels) * (1 - percent / 100))  # the original program's cut
        for kind in ("random", "biased"):
            new, mask = flips.apply(kind, labels, 10, percent, seed=3, select="last", biased_rule="code")
            assert np.array_equal(np.flatnonzero(mask), np.arange(cutoff, len(labels))), (kind, percent)
            assert np.array_equal(new[:cutoff], labels[:cutoff])
    new, mask = flips.targeted_flip(labels, 1, 7, 20, "last")
    assert np.array_equal(np.flatnonzero(mask), np.flatnonzero(labels == 1)[-20:]) and (new[mask] == 7).all()


def test_biased_rules_on_real_mnist(mnist):
    y = mnist.y_train
    new, mask = flips.apply("biased", y, 10, 20, 0, select="random", biased_rule="readme")
    assert ((new[mask] == 0).sum(), (new[mask] == 1).sum()) == (10_783, 1_217)  # the figures the issue measured
    new, mask = flips.apply("biased", y, 10, 20, 0, select="last", biased_rule="code")
    chosen = np.arange(len(y)) >= len(y) - 12_000
    assert mask.sum() == 12_000 and np.array_equal(mask, chosen)
    assert (new[chosen & (y == 0)] == 1).all() and (new[chosen & (y == 1)] == 0).all()  # 0 and 1 swapped
    high = new[chosen & (y >= 2)]
    assert set(np.unique(high)) == {0, 1}
    zeros, n = int((high == 0).sum()), len(high)
    assert abs(zeros - n / 2) < 4 * math.sqrt(n / 4), (zeros, n)  # 50/50 within 4 standard deviations
    with pytest.raises(Exception, match="biased rule"):
        flips.apply("biased", y, 10, 20, 0, biased_rule="keras")


def test_code_rule_break_points_are_computed_not_guessed(mnist):
    """Below 2/3 poisoned, every class >= 2 keeps its true label as the most common label of its items; above, none
    does; classes 0 and 1 break at 1/2. break_points says so for K = 10, and only 1/2 for K = 2."""
    y = mnist.y_train
    plural = lambda labels, c: np.bincount(labels[y == c], minlength=10).argmax() == c  # noqa: E731
    for percent, holds in ((45, True), (60, True), (72, False)):
        new, _ = flips.apply("biased", y, 10, percent, 1, select="random", biased_rule="code")
        assert all(plural(new, c) == holds for c in range(2, 10)), percent
        assert all(plural(new, c) == (percent < 50) for c in (0, 1)), percent
    assert [round(p, 2) for p, _, _ in break_points({"biased": {"code"}}, 10)] == [50.0, 66.67]
    assert [p for p, _, _ in break_points({"biased": {"code"}}, 2)] == [50.0]
    assert [p for p, _, _ in break_points({"biased": {None}, "random": {None}}, 10)] == [90.0, 50.0]


def test_plateau_cuts_at_the_fifth_bad_epoch_with_keras_rules_and_the_sixth_with_torch():
    accuracies = [0.5, 0.6] + [0.6] * 8  # the best at epoch 2, then no gain
    cuts = {}
    for rule in ("keras", "torch"):
        plateau = Plateau(1, TrainConfig(plateau=rule))
        lrs = [float(plateau.step(np.array([a]), np.array([0]))[0]) for a in accuracies]
        cuts[rule] = lrs.index(1e-4) + 1 - 2  # bad epochs after the best one when the cut came
    assert cuts == {"keras": 5, "torch": 6}
    keras, torch_ = Plateau(1, TrainConfig(plateau="keras")), Plateau(1, TrainConfig())
    for p in (keras, torch_):
        p.step(np.array([0.001]), np.array([0]))
        p.step(np.array([0.00101]), np.array([0]))  # a relative gain of 1 %, an absolute one of 1e-5
    assert keras.bad[0] == 1 and torch_.bad[0] == 0


def test_keras_adam_steps_as_keras_does():
    """Keras: p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + 1e-7); torch's Adam with keras_epsilon(t) and the
    stacked trainer's denominator give that step, also for gradients small enough for epsilon to matter."""
    b1, b2 = BETAS
    grads = [torch.tensor([1e-7, -3e-6, 0.5]), torch.tensor([2e-7, 1e-6, -0.2]), torch.tensor([-1e-7, 5e-6, 0.1])]
    keras_p, m, v = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64), 0.0, 0.0
    param = torch.nn.Parameter(keras_p.clone())
    opt = torch.optim.Adam([param], lr=1e-3)
    stacked_p, sm, sv = keras_p.clone(), torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    for t, g in enumerate(grads, start=1):
        g = g.double()
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        keras_p = keras_p - 1e-3 * math.sqrt(1 - b2**t) / (1 - b1**t) * m / (v.sqrt() + 1e-7)
        param.grad = g.clone()
        opt.param_groups[0]["eps"] = keras_epsilon(t)
        opt.step()
        sm, sv = sm * b1 + (1 - b1) * g, sv * b2 + (1 - b2) * g * g
        stacked_p = stacked_p - 1e-3 / (1 - b1**t) * sm / adam_denominator(sv, math.sqrt(1 - b2**t), "keras")
    assert torch.allclose(param.detach(), keras_p, rtol=1e-12, atol=1e-15)
    assert torch.allclose(stacked_p, keras_p, rtol=1e-12, atol=1e-15)
    g = grads[0].double()  # torch's own rule takes another first step where the gradient is small
    torch_first = 1e-3 / (1 - b1) * ((1 - b1) * g) / adam_denominator((1 - b2) * g * g, math.sqrt(1 - b2), "torch")
    keras_first = 1e-3 * math.sqrt(1 - b2) / (1 - b1) * ((1 - b1) * g) / (((1 - b2) * g * g).sqrt() + 1e-7)
    assert not torch.isclose(torch_first[0], keras_first[0], rtol=0.1) and torch.isclose(torch_first[2], keras_first[2])


def test_preset_settings_and_overrides():
    base, selects = resolve("original")
    assert (base.model, base.val, base.biased_rule, base.preset, selects) == ("original", "test", "code", "original", ["last"])
    assert (base.train.max_epochs, base.train.batch_size, base.train.plateau, base.train.adam) == (100, 256, "keras", "keras")
    base, selects = resolve("original", model="smallcnn", select=["random"], epochs=7)
    assert (base.model, selects, base.train.max_epochs, base.train.plateau) == ("smallcnn", ["random"], 7, "keras")
    base, selects = resolve(None)
    assert (base.model, base.val, base.biased_rule, base.preset, selects) == ("smallcnn", "split", "readme", None, ["random"])
    assert base.to_dict() == resolve(None)[0].to_dict() and "plateau" not in base.to_dict()["train"]


def test_preset_run_on_real_mnist_records_and_resumes(cli, tmp_path, shared_data):
    out = tmp_path / "runs"
    args = ["train", "--preset", "original", "--dataset", "mnist", "--dataset-size", "1000", "--kinds", "random,biased",
            "--percents", "30", "--epochs", "2", "--data-dir", shared_data, "--no-download", "--out", out]
    assert cli.code(*args) == 0
    run = json.loads((out / "models" / "b_mnist_1000_original_valtest_last_coderule" / "30" / "seed0" / "run.json").read_text())
    config = run["config"]
    assert (config["preset"], config["model"], config["select"], config["biased_rule"], config["val"]) == \
        ("original", "original", "last", "code", "test")
    assert config["train"] == {"max_epochs": 2, "batch_size": 256, "lr": 1e-3, "patience": 10, "lr_patience": 5,
                               "lr_factor": 0.1, "precision": "auto", "plateau": "keras", "adam": "keras"}
    assert run["model"]["parameters"] == 80_874 and run["split"]["n_val"] == 10_000
    assert run["poison"]["indices"] == list(range(700, 1000)) and run["poison"]["biased_rule"] == "code"
    assert set(run["poison"]["new_labels"]) == {0, 1}
    history = run["training"]["history"]
    assert len(history) == 2 and all(0 <= row["train_accuracy"] <= 1 for row in history)
    random = json.loads((out / "models" / "mnist_1000_original_valtest_last" / "30" / "seed0" / "run.json").read_text())
    assert "biased_rule" not in random["config"] and random["poison"]["indices"] == list(range(700, 1000))
    code, text = cli.text(*args)
    assert code == 0 and "2 of 2 runs already finished" in text
    # the same settings without the preset are another study: the run is not silently reused
    cli.fails("preset original -> None", "train", "--model", "original", "--select", "last", "--val", "test",
              "--biased-rule", "code", "--dataset", "mnist", "--dataset-size", "1000", "--kinds", "biased",
              "--percents", "30", "--epochs", "2", "--data-dir", shared_data, "--no-download", "--out", out)
