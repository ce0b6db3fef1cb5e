"""Targeted label flips: class lookup, flip bookkeeping and one clean-or-poisoned training run."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import classification_report

from poisonlab import datasets, metrics, models, poison
from poisonlab.datasets import Dataset
from poisonlab.errors import PoisonlabError
from poisonlab.experiment import Tensors
from poisonlab.train import TrainConfig, fit_sklearn, fit_torch, flatten01, predict, seed_everything


@dataclass(frozen=True)
class FlipSpec:
    """Everything that defines one flip run; n=0 is the clean model."""

    dataset: str
    source: int
    target: int
    n: int
    seed: int = 0
    select: str = "first"
    model: str = "simplecnn"
    train_size: int = 0
    test_size: int = 0
    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-3

    def to_dict(self) -> dict:
        return asdict(self)

    def folder(self) -> Path:
        """runs/n{N}/seed{S} relative to the output folder."""
        return Path("runs") / f"n{self.n}" / f"seed{self.seed}"


def resolve_class(text: str, classes: list[str]) -> int:
    """A class index from its name (case-insensitive) or its number."""
    lowered = [c.lower() for c in classes]
    if text.strip().lower() in lowered:
        return lowered.index(text.strip().lower())
    if text.strip().isdigit() and int(text) < len(classes):
        return int(text)
    raise PoisonlabError(f"unknown class '{text}'; choose a name or number 0..{len(classes) - 1}: {', '.join(classes)}")


def load_data(dataset: str, data_dir: str | Path | None, train_size: int, test_size: int, download: bool) -> Dataset:
    """The dataset with its first `train_size` training and first `test_size` test items (0 = all)."""
    data = datasets.load(dataset, data_dir=data_dir, dataset_size=train_size, download=download)
    if test_size < 0 or test_size > len(data.y_test):
        raise PoisonlabError(f"test size {test_size} is outside 0..{len(data.y_test)} (the test items of {data.name}); "
                             "pass 0 for all")
    if test_size:
        data = replace(data, x_test=data.x_test[:test_size], y_test=data.y_test[:test_size],
                       notes=[*data.notes, f"first {test_size} test items"])
    return data


def check_request(labels: np.ndarray, classes: list[str], source: int, target: int, counts: list[int]) -> None:
    """Reject source == target and flip counts beyond the source class, naming the classes."""
    if source == target:
        raise PoisonlabError(f"source and target are both '{classes[source]}'; choose two different classes")
    available = int((labels == source).sum())
    too_many = [n for n in counts if n > available]
    if too_many:
        raise PoisonlabError(f"cannot flip {max(too_many)} items of '{classes[source]}': the training set has only "
                             f"{available}; give --n values up to {available}")


def bookkeeping(labels: np.ndarray, new_labels: np.ndarray, source: int, num_classes: int) -> dict:
    """Which items changed, the corruption rate of the whole set, the share of the source class, class counts."""
    changed = np.flatnonzero(new_labels != labels)
    n_source = int((labels == source).sum())
    return {
        "changed_indices": changed.tolist(),
        "n_changed": len(changed),
        "corruption_rate": len(changed) / len(labels),
        "source_share": len(changed) / n_source if n_source else 0.0,
        "counts_before": np.bincount(labels, minlength=num_classes).tolist(),
        "counts_after": np.bincount(new_labels, minlength=num_classes).tolist(),
    }


def evaluate(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict:
    """Accuracy, per-class accuracy, confusion, right/wrong per predicted class and a classification report."""
    summary = metrics.summary(y_true, y_pred, len(classes))
    matrix = np.asarray(summary["confusion"])
    report = {"labels": list(range(len(classes))), "target_names": classes, "zero_division": 0}
    return {
        "overall_accuracy": summary["accuracy"],
        "per_class_accuracy": summary["per_class_accuracy"],
        "confusion": summary["confusion"],
        "correct_by_predicted": np.diag(matrix).tolist(),
        "incorrect_by_predicted": (matrix.sum(axis=0) - np.diag(matrix)).tolist(),
        "classification_report": classification_report(y_true, y_pred, output_dict=True, **report),
        "classification_report_text": classification_report(y_true, y_pred, digits=3, **report),
    }


def train_and_predict(spec: FlipSpec, data: Dataset, labels: np.ndarray, tensors: Tensors,
                      on_epoch: Callable[[dict], None] | None) -> tuple[object, np.ndarray, list]:
    """Fit `spec.model` on the given labels (seeded init and data order) and predict the test set."""
    seed_everything(spec.seed)
    model = models.build(spec.model, data.x_train.shape[1:], data.num_classes, spec.seed)
    if isinstance(model, torch.nn.Module):
        model.to(tensors.device, memory_format=torch.channels_last)
        x = tensors.get(data, "train")
        config = TrainConfig(max_epochs=spec.epochs, batch_size=spec.batch_size, lr=spec.lr)
        y = torch.from_numpy(labels).to(tensors.device)
        training = fit_torch(model, x, y, x[:0], labels[:0], config, spec.seed, on_epoch)
        return model, predict(model, tensors.get(data, "test")), training["history"]
    fit_sklearn(model, data.x_train, labels, data.x_train[:0], labels[:0])
    return model, model.predict(flatten01(data.x_test)), []


def run(spec: FlipSpec, data: Dataset, tensors: Tensors, on_epoch: Callable[[dict], None] | None = None):
    """Flip `spec.n` source labels to the target, train, evaluate; returns (record for run.json, model)."""
    started = time.perf_counter()
    check_request(data.y_train, data.classes, spec.source, spec.target, [spec.n])
    labels, _ = poison.targeted_flip(data.y_train, spec.source, spec.target, spec.n, spec.select, spec.seed)
    model, predicted, history = train_and_predict(spec, data, labels, tensors, on_epoch)
    record = {
        "status": "complete",
        "config": spec.to_dict(),
        "dataset": {"name": data.name, "classes": data.classes, "n_train": len(labels), "n_test": len(data.y_test),
                    "shape": list(data.x_train.shape[1:]), "notes": data.notes},
        "flip": bookkeeping(data.y_train, labels, spec.source, data.num_classes),
        "metrics": evaluate(data.y_test, predicted, data.classes),
        "history": history,
        "train_seconds": round(time.perf_counter() - started, 3),
    }
    return record, model
