"""The correlation screen on real MNIST: correlations as numpy computes them, a 10 % patch backdoor and a 1 % blend
found whole, nothing flagged on clean labels, and cleaning with it removing a 10 % backdoor that spectral
signatures and activation clustering leave in place."""

import json

import numpy as np
import pytest

from poisonlab import datasets
from poisonlab.attacks.backdoor import Trigger, backdoor
from poisonlab.defences import correlation
from poisonlab.defences.detectors import correlation_screen
from poisonlab.defences.evaluate import score


@pytest.fixture(scope="module")
def mnist(shared_data):
    return datasets.load("mnist", shared_data, dataset_size=3000)


def test_correlations_are_pearsons(mnist):
    corr = correlation.correlations(mnist.x_train, mnist.y_train, 10)
    pixels = mnist.x_train.reshape(3000, -1).astype(float)
    for j, c in ((400, 1), (350, 0), (600, 7)):
        assert corr[j, c] == pytest.approx(np.corrcoef(pixels[:, j], mnist.y_train == c)[0, 1], abs=1e-9)
    assert corr[0, 0] == 0  # a constant corner pixel correlates with nothing


def _stamped(mnist, kind: str, percent: float):
    x, labels, idx = backdoor(mnist.x_train, mnist.y_train, trigger=Trigger(kind=kind), target=0, percent=percent,
                              seed=0)
    mask = np.zeros(len(labels), bool)
    mask[idx] = True
    return x, labels, mask


def test_a_ten_percent_patch_backdoor_is_found_whole(mnist):
    x, labels, mask = _stamped(mnist, "patch", 10)
    result = score(correlation_screen(x, labels, 10, 0), mask)
    assert result["f1"] > 0.95 and result["roc_auc"] > 0.95, result


def test_a_trusted_reference_finds_a_one_percent_blend(mnist):
    x, labels, mask = _stamped(mnist, "blend", 1)
    assert not correlation_screen(x, labels, 10, 0).flagged.any()  # alone, 30 blended items do not stand out
    result = score(correlation_screen(x, labels, 10, 0, trusted=(mnist.x_test[:1000], mnist.y_test[:1000])), mask)
    assert result["f1"] > 0.9, result


@pytest.mark.parametrize("trusted", [False, True])
def test_clean_labels_flag_nothing(mnist, trusted):
    reference = (mnist.x_test[:1000], mnist.y_test[:1000]) if trusted else None
    assert not correlation_screen(mnist.x_train, mnist.y_train, 10, 0, trusted=reference).flagged.any()


def test_cleaning_with_the_screen_removes_a_ten_percent_backdoor(mnist, shared_data, tmp_path, cli):
    code = cli.code("detect", "--dataset", "mnist", "--dataset-size", "3000", "--data-dir", shared_data,
                    "--no-download", "--poison", "backdoor", "--target", "0", "--percents", "10", "--method",
                    "correlation,spectral,ac", "--detector-epochs", "3", "--then", "clean", "--epochs", "5",
                    "--out", tmp_path)
    assert code == 0
    row = json.loads((tmp_path / "detect.json").read_text())["rows"][0]
    after = {m["method"]: m["asr_after"] for m in row["methods"]}
    assert row["poisoned_asr"] > 0.9 and after["correlation"] < 0.1, (row["poisoned_asr"], after)
    assert after["correlation"] < min(after["spectral"], after["ac"]) - 0.5, after
