"""Training on real data: it learns, it is deterministic, early stopping keeps the best weights."""

import json

import numpy as np
import pytest
import torch

from poisonlab import datasets
from poisonlab.attacks import flips as poison
from poisonlab.studies.run import RunSpec, run, split_indices
from poisonlab.training.models import build
from poisonlab.errors import PoisonlabError
from poisonlab.training.loop import TrainConfig, fit_torch, predict, resolve_precision, to_tensor


@pytest.fixture(scope="module")
def digits():
    return datasets.load("digits")


def test_short_mnist_run_learns_well_above_chance(shared_data):
    data = datasets.load("mnist", shared_data, dataset_size=2000)
    spec = RunSpec(dataset="mnist", dataset_size=2000, train=TrainConfig(max_epochs=2, batch_size=64))
    record, _ = run(spec, data)
    assert record["training"]["epochs_run"] == 2
    assert record["metrics"]["accuracy"] > 0.7  # chance is 0.1
    assert record["dataset"]["n_train"] == 2000 and record["split"]["n_fit"] == 1800
    assert record["training"]["still_improving"] == (record["training"]["best_epoch"] == 2)


def test_same_config_and_seed_give_identical_models(digits):
    spec = RunSpec(dataset="digits", kind="random", percent=20, seed=1, train=TrainConfig(max_epochs=3))
    (a, model_a), (b, model_b) = run(spec, digits), run(spec, digits)
    assert a["metrics"] == b["metrics"] and a["poison"]["indices"] == b["poison"]["indices"]
    sa, sb = model_a.state_dict(), model_b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_early_stopping_restores_best_weights(digits):
    spec = RunSpec(dataset="digits", percent=60, train=TrainConfig(max_epochs=60, patience=3, lr_patience=1))
    record, model = run(spec, digits)
    t = record["training"]
    assert t["epochs_run"] < 60 and t["epochs_run"] == t["best_epoch"] + 3
    assert t["still_improving"] is False  # it stopped early: more epochs would not help
    assert t["best_val_accuracy"] == max(h["val_accuracy"] for h in t["history"])
    labels = np.array(digits.y_train)
    poisoned, _ = poison.random_flip(labels, 10, 60, 0)
    _, val_idx = split_indices(len(labels), 0.1, 0)
    val_acc = (predict(model, to_tensor(digits.x_train[val_idx])) == poisoned[val_idx]).mean()
    assert val_acc == pytest.approx(t["best_val_accuracy"])
    assert any(h["lr"] < 1e-3 for h in t["history"])  # reduced on plateau


def test_poison_hurts_and_sklearn_models_train(digits):
    clean, _ = run(RunSpec(dataset="digits", model="logreg"), digits)
    dirty, _ = run(RunSpec(dataset="digits", model="logreg", kind="biased", percent=60), digits)
    assert clean["metrics"]["accuracy"] > 0.85 and dirty["metrics"]["accuracy"] < 0.5
    assert dirty["poison"]["n_poisoned"] == round(0.6 * len(digits.y_train))


def test_val_test_mode_is_labelled_as_the_original_protocol(digits):
    record, _ = run(RunSpec(dataset="digits", val="test", train=TrainConfig(max_epochs=1)), digits)
    assert record["split"]["n_fit"] == len(digits.y_train) and "clean test set" in record["split"]["val_label"]


def test_without_validation_it_trains_a_fixed_number_of_epochs(digits):
    torch.manual_seed(0)
    model = build("smallcnn", (8, 8, 1), 10)
    x, y = to_tensor(digits.x_train), torch.from_numpy(digits.y_train)
    result = fit_torch(model, x, y, x[:0], digits.y_train[:0], TrainConfig(max_epochs=4, patience=1), seed=0)
    assert result["epochs_run"] == 4 and result["best_epoch"] is None
    assert [h["lr"] for h in result["history"]] == [1e-3] * 4
    assert (predict(model, to_tensor(digits.x_test)) == digits.y_test).mean() > 0.5


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_both_precisions_train_well_and_are_recorded(shared_data, precision):
    data = datasets.load("mnist", shared_data, dataset_size=2000)
    spec = RunSpec(dataset="mnist", dataset_size=2000, train=TrainConfig(max_epochs=2, batch_size=64, precision=precision))
    record, model = run(spec, data)
    assert record["training"]["precision"] == precision and record["config"]["train"]["precision"] == precision
    assert record["metrics"]["accuracy"] > 0.7  # chance is 0.1
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32


def test_auto_precision_is_bf16_only_where_the_device_supports_it(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert resolve_precision("auto", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert resolve_precision("auto", cpu) == "bf16" and resolve_precision("fp32", cpu) == "fp32"


def test_bf16_runs_are_deterministic_and_differ_from_fp32(digits):
    spec = RunSpec(dataset="digits", percent=20, train=TrainConfig(max_epochs=2, precision="bf16"))
    (a, model_a), (b, model_b) = run(spec, digits), run(spec, digits)
    (_, model_c) = run(RunSpec(dataset="digits", percent=20, train=TrainConfig(max_epochs=2, precision="fp32")), digits)
    sa, sb, sc = model_a.state_dict(), model_b.state_dict(), model_c.state_dict()
    assert a["metrics"] == b["metrics"] and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)  # the autocast really ran


def test_unknown_precision_is_bad_input():
    with pytest.raises(PoisonlabError, match="unknown precision 'fp16'; choose one of auto, bf16, fp32"):
        TrainConfig(precision="fp16")


def test_a_run_still_improving_at_its_last_epoch_says_so(tmp_path, cli):
    """MNIST-1000 at 3 epochs scores far below what it can reach: the run line and run.json say why."""
    code, out, err = cli("train", "--dataset", "digits", "--percents", "0", "--epochs", "1", "--out", tmp_path)
    assert code == 0 and "still improving at the last epoch: train more epochs" in out + err
    record = json.loads(next(tmp_path.rglob("run.json")).read_text())
    assert record["training"]["still_improving"] is True and record["training"]["best_epoch"] == 1
