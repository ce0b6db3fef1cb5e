"""The one evaluator: exact precision, recall, F1 and ROC AUC on hand-made masks and scores."""

import numpy as np
import pytest

from poisonlab.errors import PoisonlabError
from poisonlab.defences.detectors import Detection
from poisonlab.defences.evaluate import score


def detection(scores, flagged, seconds: float = 1.5) -> Detection:
    scores = np.asarray(scores, float)
    return Detection("hand", scores, np.asarray(flagged, bool), np.zeros(len(scores), np.int64), seconds)


def test_counts_and_rates_are_exact():
    truth = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0], bool)
    flagged = np.array([1, 1, 1, 0, 1, 1, 0, 0, 0, 0], bool)
    result = score(detection(flagged.astype(float), flagged), truth)
    assert result["precision"] == pytest.approx(3 / 5)
    assert result["recall"] == pytest.approx(3 / 4)
    assert result["f1"] == pytest.approx(2 * (3 / 5) * (3 / 4) / (3 / 5 + 3 / 4))
    assert (result["flagged"], result["true_poisoned"], result["seconds"]) == (5, 4, 1.5)


def test_perfect_and_reversed_ranking():
    truth = np.array([0, 0, 1, 0, 1, 1], bool)
    ranks = np.array([0.1, 0.2, 0.9, 0.3, 0.8, 0.7])
    assert score(detection(ranks, truth), truth)["roc_auc"] == 1.0
    assert score(detection(-ranks, truth), truth)["roc_auc"] == 0.0
    assert score(detection(np.ones(6), truth), truth)["roc_auc"] == 0.5  # all tied


def test_random_scores_are_near_chance():
    rng = np.random.default_rng(0)
    truth = rng.random(20000) < 0.2
    result = score(detection(rng.random(20000), rng.random(20000) < 0.5), truth)
    assert abs(result["roc_auc"] - 0.5) < 0.02
    assert abs(result["precision"] - 0.2) < 0.02 and abs(result["recall"] - 0.5) < 0.02


@pytest.mark.parametrize("value, precision, recall", [(False, 0.0, 0.0), (True, 1.0, 0.4)])
def test_auc_is_none_when_the_mask_has_one_value(value, precision, recall):
    result = score(detection([0.1, 0.5, 0.2, 0.9, 0.3], [0, 1, 0, 1, 0]), np.full(5, value))
    assert result["roc_auc"] is None
    assert (result["precision"], result["recall"]) == (precision, pytest.approx(recall))


def test_nothing_flagged_scores_zero_not_nan():
    result = score(detection([0.3, 0.1, 0.2], [0, 0, 0]), np.array([1, 0, 0], bool))
    assert (result["precision"], result["recall"], result["f1"], result["flagged"]) == (0.0, 0.0, 0.0, 0)
    assert result["roc_auc"] == 1.0


def test_mask_of_another_length_is_refused():
    with pytest.raises(PoisonlabError, match=r"mask must be a boolean array with one entry per item \(2\), got shape \(3,\)"):
        score(detection([0.1, 0.2], [0, 1]), np.array([1, 0, 0], bool))
