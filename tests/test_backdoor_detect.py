"""Backdoor detectors on real data: spectral signatures and activation clustering find the stamped items of a real
backdoored MNIST model well above chance (exclusionary reclassification too where the poison is half its class), scored by the one evaluator; `detect --poison backdoor --then clean` end to
end, and cleaning what activation clustering flags takes the attack success rate of a real smallcnn down."""

import json

import numpy as np
import pytest

from poisonlab import datasets
from poisonlab.attacks.backdoor import Trigger, backdoor
from poisonlab.defences import detectors
from poisonlab.defences.evaluate import score
from poisonlab.defences.folds import DetectorConfig


@pytest.fixture(scope="module")
def found(shared_data):
    data = datasets.load("mnist", shared_data, 2000, download=False)
    x, labels, idx = backdoor(data.x_train, data.y_train, trigger=Trigger(), target=0, percent=5, seed=0)
    mask = np.zeros(len(labels), bool)
    mask[idx] = True
    config = DetectorConfig(model="smallcnn", epochs=4)
    return {d.method: score(d, mask) for d in detectors.run(["spectral", "ac"], x, labels, data.num_classes, 0, config)}


@pytest.mark.parametrize("method", ["spectral", "ac"])
def test_backdoor_detectors_beat_chance_on_a_real_backdoored_model(found, method):
    assert found[method]["roc_auc"] > 0.6 and found[method]["recall"] > 0.3, found[method]


def test_detect_backdoor_then_clean_reports_asr(cli, shared_data, tmp_path):
    code = cli.code("detect", "--dataset", "mnist", "--dataset-size", "600", "--poison", "backdoor", "--target", "1",
                    "--percent", "10", "--method", "spectral,ac,cl", "--detector-epochs", "1", "--then", "clean",
                    "--model", "logreg", "--out", tmp_path, "--data-dir", shared_data, "--no-download")
    assert code == 0, cli.err
    row = json.loads((tmp_path / "detect.json").read_text())["rows"][0]
    assert row["kind"] == "backdoor patch->1" and row["n_poisoned"] == 60 and 0 <= row["poisoned_asr"] <= 1
    assert [m["method"] for m in row["methods"]] == ["spectral", "ac", "cl"]
    assert all(0 <= m["asr_after"] <= 1 and m["roc_auc"] is not None for m in row["methods"])


def test_cleaning_what_activation_clustering_flags_removes_a_backdoor(cli, shared_data, tmp_path):
    code = cli.code("detect", "--dataset", "mnist", "--dataset-size", "1500", "--poison", "backdoor", "--target", "0",
                    "--percent", "5", "--method", "ac", "--detector-epochs", "3", "--then", "clean", "--epochs", "3",
                    "--out", tmp_path, "--data-dir", shared_data, "--no-download")
    assert code == 0, cli.err
    row = json.loads((tmp_path / "detect.json").read_text())["rows"][0]
    ac = row["methods"][0]
    assert row["n_poisoned"] == 75 and row["poisoned_asr"] > 0.6 and ac["recall"] > 0.5, row
    assert ac["asr_after"] < row["poisoned_asr"] - 0.5, row


def test_detect_backdoor_needs_a_target(cli, shared_data, tmp_path):
    cli.fails("needs a target class", "detect", "--dataset", "mnist", "--dataset-size", "600", "--poison", "backdoor",
              "--out", tmp_path, "--data-dir", shared_data, "--no-download")


def test_exclusionary_reclassification_finds_a_ten_percent_backdoor_that_the_size_rule_misses(shared_data):
    data = datasets.load("mnist", shared_data, 3000, download=False)
    x, labels, idx = backdoor(data.x_train, data.y_train, trigger=Trigger(), target=0, percent=10, seed=0)
    mask = np.zeros(len(labels), bool)
    mask[idx] = True
    ac, excluded = (score(d, mask) for d in detectors.run(["ac", "ac-exclusionary"], x, labels, data.num_classes, 0))
    assert excluded["f1"] > 0.9 and ac["f1"] < 0.5, (ac, excluded)  # the stamped items are half of class 0
    assert excluded["precision"] > 0.9
