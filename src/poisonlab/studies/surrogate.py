"""The surrogate of informed label flips: out-of-fold class probabilities of a model trained on the CLEAN labels."""

from __future__ import annotations

import numpy as np

from poisonlab.datasets import Dataset
from poisonlab.defences.folds import DetectorConfig, out_of_fold

SURROGATE = DetectorConfig(model="logreg")  # logreg on PCA-50 of the pixels, 5 stratified seeded folds
_cache: dict[tuple[int, int], tuple[Dataset, np.ndarray]] = {}


def probabilities(data: Dataset, seed: int) -> np.ndarray:
    """Out-of-fold class probabilities (N, K) of the surrogate on `data`'s clean training labels, computed once per
    (dataset object, seed) while that dataset is in use."""
    key = (id(data), seed)
    hit = _cache.get(key)
    if hit is None or hit[0] is not data:
        if any(kept is not data for kept, _ in _cache.values()):
            _cache.clear()
        _cache[key] = (data, out_of_fold(data.x_train, data.y_train, data.num_classes, seed, SURROGATE).pred_probs)
    return _cache[key][1]


def describe(probs: np.ndarray, labels: np.ndarray, seed: int) -> dict:
    """The run.json record of the surrogate: model, inputs, folds, seed and its out-of-fold accuracy."""
    return {"model": SURROGATE.model, "inputs": "PCA-50 of the pixels", "folds": SURROGATE.folds, "out_of_fold": True,
            "trained_on": "clean labels", "seed": seed, "accuracy": float((probs.argmax(1) == labels).mean())}
