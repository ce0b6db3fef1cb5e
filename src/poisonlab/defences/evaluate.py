"""The one evaluator: a detection against the true poison mask (the only place that sees the ground truth)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

from poisonlab.checks import check_mask
from poisonlab.defences.detectors import Detection


def score(detection: Detection, true_mask: np.ndarray) -> dict:
    """Precision, recall and F1 of the flagged set, ROC AUC of the scores (None when the mask is all one value), and
    precision at n: the share of poisoned items among the n highest scores, n the number of poisoned items (a
    detector's ranking judged without its own threshold; None without poisoned items)."""
    truth, flagged = check_mask(true_mask, len(detection.scores)), np.asarray(detection.flagged, bool)
    both = truth.any() and not truth.all()
    top = np.argsort(-np.asarray(detection.scores, dtype=np.float64), kind="stable")[: int(truth.sum())]
    return {
        "precision": float(precision_score(truth, flagged, zero_division=0)),
        "recall": float(recall_score(truth, flagged, zero_division=0)),
        "f1": float(f1_score(truth, flagged, zero_division=0)),
        "roc_auc": float(roc_auc_score(truth, detection.scores)) if both else None,
        "precision_at_n": float(truth[top].mean()) if truth.any() else None,
        "flagged": int(flagged.sum()),
        "true_poisoned": int(truth.sum()),
        "seconds": float(detection.seconds),
    }
