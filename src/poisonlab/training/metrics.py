"""Evaluation maths over label arrays: accuracy, confusion matrix, per-class accuracy."""

from __future__ import annotations

import numpy as np


def confusion(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """K x K counts; rows are true classes, columns predicted classes."""
    flat = np.asarray(y_true, np.int64) * num_classes + np.asarray(y_pred, np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
    """Recall of each true class (NaN for a class with no test items)."""
    totals = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(matrix) / totals, np.nan)


def summary(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict:
    """Overall accuracy, per-class accuracy and the confusion matrix as JSON-ready values."""
    matrix = confusion(y_true, y_pred, num_classes)
    return {
        "accuracy": float(np.trace(matrix) / max(matrix.sum(), 1)),
        "per_class_accuracy": [None if np.isnan(a) else float(a) for a in per_class_accuracy(matrix)],
        "confusion": matrix.tolist(),
    }
