"""Correlation analysis: pixels (or features) whose correlation with a class is unexpected, and the items they mark.

A trigger makes a few pixels predict one label: in the poisoned set those pixels correlate with the target class far
more than any pixel correlates with a class by nature. Every (pixel, class) pair gets its correlation (Pearson's,
between the pixel and the indicator of the class) and a robust z-score of it against all pairs; with a trusted clean
subset, against the same pair's correlation there instead. The pairs above Z are the unexpected relationships; an
item of class c scores the mean standardised value of its pixels in class c's unexpected pairs (an item that lights
up the trigger's pixels scores high), and the high component of a two-component mixture of the scores is flagged when
it stands apart from the rest (Ashman's D above SEPARATED)."""

from __future__ import annotations

import numpy as np

from poisonlab.training.fitting import as_features
from poisonlab.mixture import low_share

Z = 8.0  # robust z of a (pixel, class) correlation above which the pair is unexpected
SEPARATED = 10.0  # Ashman's D a class's high-score group must reach (clean MNIST classes: 2.3-5.0; a trigger's class: 45 and more)


def correlations(x: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Pearson correlation (D, K) of every feature of items `x` (N, ...) with the indicator of every class (0 where a
    feature or class is constant)."""
    features = as_features(x).astype(np.float64)
    onehot = np.eye(num_classes)[labels]
    centred, classes = features - features.mean(0), onehot - onehot.mean(0)
    scale = np.outer(np.sqrt((centred**2).sum(0)), np.sqrt((classes**2).sum(0)))
    return np.divide(centred.T @ classes, scale, out=np.zeros_like(scale), where=scale > 0)


def robust_z(values: np.ndarray) -> np.ndarray:
    """(values - median) / (1.4826 * median absolute deviation), over all entries."""
    median = np.median(values)
    spread = 1.4826 * np.median(np.abs(values - median))
    return (values - median) / max(float(spread), 1e-12)


def unexpected_pairs(x: np.ndarray, labels: np.ndarray, num_classes: int, *,
                     trusted: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """(D, K) weights of the (feature, class) pairs: how far (in robust deviations) a pair's correlation lies above Z
    from all pairs' (or, given `trusted` (x, labels) clean items, its rise over the trusted correlation does); 0 for
    the expected pairs."""
    corr = correlations(x, labels, num_classes)
    if trusted is not None:
        corr = corr - correlations(*trusted, num_classes)
    return np.maximum(robust_z(corr) - Z, 0.0)


def item_scores(x: np.ndarray, labels: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Each item's standardised values over its class's unexpected features, averaged with the pairs' weights (0
    when its class has none)."""
    features = as_features(x).astype(np.float64)
    standard = (features - features.mean(0)) / np.maximum(features.std(0), 1e-12)
    weights = pairs[:, labels].T  # (N, D): the weights of the item's class's pairs
    total = weights.sum(1)
    return np.divide((standard * weights).sum(1), total, out=np.zeros(len(labels)), where=total > 0)


def correlation_scores(x: np.ndarray, labels: np.ndarray, num_classes: int, *,
                       trusted: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Scores (N,) and flags (N,) bool of the correlation screen (see the module); nothing is flagged when no pair is
    unexpected."""
    pairs = unexpected_pairs(x, labels, num_classes, trusted=trusted)
    scores = item_scores(x, labels, pairs)
    if not pairs.any():
        return scores, np.zeros(len(labels), bool)
    flagged = np.zeros(len(labels), bool)
    for c in np.flatnonzero(pairs.any(0)):  # per class: its items split in two, flagged when the split is clear
        members = np.flatnonzero(labels == c)
        if len(members) < 4:
            continue
        high = low_share(scores[members][None])[0] < 0.5
        if 0 < high.sum() < len(high) and separation(scores[members][high], scores[members][~high]) > SEPARATED:
            flagged[members[high]] = True
    return scores, flagged


def separation(a: np.ndarray, b: np.ndarray) -> float:
    """Ashman's D of two groups of scores: |mean difference| / sqrt(mean of their variances); above 2 the mixture
    of the two is bimodal."""
    return float(abs(a.mean() - b.mean()) / max(np.sqrt((a.var() + b.var()) / 2), 1e-12))
