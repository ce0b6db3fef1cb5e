"""Score the detectors on one label set and measure the test accuracy regained by cleaning and retraining."""

from __future__ import annotations

import numpy as np
import torch

from poisonlab import models
from poisonlab.datasets import Dataset
from poisonlab.defend import detect as detectors
from poisonlab.defend.evaluate import score
from poisonlab.defend.features import DetectorConfig
from poisonlab.defend.labelsets import LabelSet
from poisonlab.errors import PoisonlabError
from poisonlab.experiment import split_indices
from poisonlab.train import TrainConfig, fit_sklearn, fit_torch, flatten01, predict, seed_everything, to_tensor

RETRAIN_BATCH = 64


def retrained_accuracy(data: Dataset, labels: np.ndarray, keep: np.ndarray, model_name: str, epochs: int, seed: int) -> float:
    """Train `model_name` on the kept items (10% of them held out for validation); accuracy on the untouched test set."""
    idx = np.flatnonzero(keep)
    fit_pos, val_pos = split_indices(len(idx), 0.1, seed)
    fit_idx, val_idx = idx[fit_pos], idx[val_pos]
    seed_everything(seed)
    model = models.build(model_name, data.x_train.shape[1:], data.num_classes, seed)
    if isinstance(model, torch.nn.Module):
        model.to(memory_format=torch.channels_last)
        x = to_tensor(data.x_train)
        fit_torch(model, x[fit_idx], torch.from_numpy(labels[fit_idx]), x[val_idx], labels[val_idx],
                  TrainConfig(max_epochs=epochs, batch_size=RETRAIN_BATCH), seed)
        predicted = predict(model, to_tensor(data.x_test))
    else:
        if len(np.unique(labels[fit_idx])) < 2:
            raise PoisonlabError(f"{model_name} cannot train on a single class after cleaning; use a torch --model")
        fit_sklearn(model, data.x_train[fit_idx], labels[fit_idx], data.x_train[val_idx], labels[val_idx])
        predicted = model.predict(flatten01(data.x_test))
    return float((predicted == data.y_test).mean())


def check_one(data: Dataset, item: LabelSet, names: list[str], config: DetectorConfig, seed: int, then: str,
              retrain: tuple[str, int], clean_accuracy: float | None) -> dict:
    """Detect on one label set, score each method, and (with `then`) retrain on the cleaned labels."""
    row = {"kind": item.kind, "setting": item.setting, "percent": item.percent, "n_poisoned": int(item.mask.sum()),
           "rate": float(100 * item.mask.mean()), "poisoned_accuracy": None, "methods": []}
    if then != "none":
        row["poisoned_accuracy"] = retrained_accuracy(data, item.labels, np.ones(len(item.labels), bool), *retrain, seed)
    for detection in detectors.run(names, data.x_train, item.labels, data.num_classes, seed, config):
        result = {"method": detection.method, **score(detection, item.mask), "accuracy_after": None, "recovered": None}
        if then != "none":
            keep = ~detection.flagged if then == "clean" else np.ones(len(item.labels), bool)
            labels = np.where(detection.flagged, detection.suggested, item.labels) if then == "relabel" else item.labels
            result["accuracy_after"] = after = retrained_accuracy(data, labels, keep, *retrain, seed)
            lost = clean_accuracy - row["poisoned_accuracy"]
            result["recovered"] = (after - row["poisoned_accuracy"]) / lost if lost > 0 else None
        row["methods"].append(result)
    return row
