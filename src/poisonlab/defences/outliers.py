"""Statistical outliers among images: per-image statistics as robust z-scores within each class, and an isolation forest."""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest

STATISTICS = ("mean", "std", "dark", "saturated", "roughness")
MAD_SCALE = 1.4826  # makes the median absolute deviation estimate the standard deviation of a normal
TAILS_SCALE = 4.653  # the 1st-99th percentile range of a normal, in standard deviations
MIN_SCALE = 0.01  # every statistic lies in [0, 1]: a deviation below 1 % of that never counts as large
MIN_CLASS_ITEMS = 20
PCA_COMPONENTS = 20
PCA_FIT_ITEMS = 5000
TREES = 200
TREE_SAMPLES = 1024
CHUNK = 4096


def image_statistics(x: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """(N, 5) per image, each in [0, 1]: pixel mean and std as shares of the value range, share of pixels at its low
    end (dark) and at its high end (saturated), and roughness (mean absolute difference of neighbouring pixels)."""
    lo, hi = value_range
    span = max(hi - lo, 1)
    out = np.empty((len(x), len(STATISTICS)))
    for start in range(0, len(x), CHUNK):
        chunk = (x[start:start + CHUNK].astype(np.float32) - lo) / span
        flat = chunk.reshape(len(chunk), -1)
        rough = (np.abs(np.diff(chunk, axis=1)).mean((1, 2, 3)) + np.abs(np.diff(chunk, axis=2)).mean((1, 2, 3))) / 2
        out[start:start + len(chunk)] = np.column_stack(
            [flat.mean(1), flat.std(1), (flat <= 0).mean(1), (flat >= 1).mean(1), rough])
    return out


def centre_scale(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column: the median, and a robust spread: 1.4826 x the median absolute deviation, widened to the 1st-99th
    percentile range / 4.65 for heavy-tailed statistics (both estimate a normal's standard deviation), at least MIN_SCALE."""
    centre = np.median(values, axis=0)
    low, high = np.percentile(values, [1, 99], axis=0)
    mad = MAD_SCALE * np.median(np.abs(values - centre), axis=0)
    return centre, np.maximum.reduce([mad, (high - low) / TAILS_SCALE, np.full_like(mad, MIN_SCALE)])


def robust_z(values: np.ndarray, groups: np.ndarray, min_items: int = MIN_CLASS_ITEMS) -> tuple[np.ndarray, np.ndarray]:
    """(value - group median) / group robust scale per item and column, and the median used; groups with fewer than
    `min_items` items are compared with the whole set."""
    z, centres = np.empty(values.shape), np.empty(values.shape)
    everyone = centre_scale(values)
    for group in np.unique(groups):
        idx = groups == group
        centre, scale = centre_scale(values[idx]) if idx.sum() >= min_items else everyone
        z[idx], centres[idx] = (values[idx] - centre) / scale, centre
    return z, centres


def isolation_scores(x: np.ndarray, statistics: np.ndarray, seed: int) -> np.ndarray:
    """Anomaly score in (0, 1) per image (about 0.5 typical, near 1 isolated) of a seeded isolation forest (200 trees
    of 1024 items) on PCA-20 of the [0, 1] pixels (fitted on 5000 seeded items), its reconstruction error and the statistics."""
    pick = np.sort(np.random.default_rng(seed).permutation(len(x))[:PCA_FIT_ITEMS])
    pca = PCA(min(PCA_COMPONENTS, len(pick), x[0].size), random_state=seed).fit(_pixels(x[pick]))
    parts = []
    for start in range(0, len(x), CHUNK):
        pixels = _pixels(x[start:start + CHUNK])
        projected = pca.transform(pixels)
        error = np.sqrt(((pca.inverse_transform(projected) - pixels) ** 2).mean(1))
        parts.append(np.column_stack([projected, error]))
    features = np.hstack([np.concatenate(parts), statistics])
    forest = IsolationForest(n_estimators=TREES, max_samples=min(TREE_SAMPLES, len(x)), random_state=seed).fit(features)
    return -forest.score_samples(features)


def _pixels(x: np.ndarray) -> np.ndarray:
    """uint8 images as float32 rows in [0, 1]."""
    return x.reshape(len(x), -1).astype(np.float32) / 255


def outliers(statistics: np.ndarray, isolation: np.ndarray, labels: np.ndarray, threshold: float) -> list[dict]:
    """Items whose statistic lies more than `threshold` robust z from their class median, or whose isolation score
    lies more than `threshold` robust z above the set's median; each with its reasons, most extreme first."""
    z, centres = robust_z(statistics, labels)
    iso_z, iso_centre = robust_z(isolation[:, None], np.zeros(len(labels), np.int64))
    found = []
    for i in np.flatnonzero((np.abs(z) > threshold).any(1) | (iso_z[:, 0] > threshold)):
        reasons = [{"statistic": name, "value": float(statistics[i, s]), "median": float(centres[i, s]), "z": float(z[i, s])}
                   for s, name in enumerate(STATISTICS) if abs(z[i, s]) > threshold]
        if iso_z[i, 0] > threshold:
            reasons.append({"statistic": "isolation", "value": float(isolation[i]), "median": float(iso_centre[i, 0]),
                            "z": float(iso_z[i, 0])})
        reasons.sort(key=lambda r: -abs(r["z"]))
        found.append({"index": int(i), "label": int(labels[i]), "score": abs(reasons[0]["z"]), "reasons": reasons})
    return sorted(found, key=lambda item: -item["score"])
