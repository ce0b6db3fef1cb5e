"""Targeted flips: N labels of a source class relabelled as a target class; clean and poisoned models compared."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.metrics import classification_report

from poisonlab import datasets
from poisonlab.attacks import flips
from poisonlab.datasets import Dataset, dataset_record
from poisonlab.errors import PoisonlabError
from poisonlab.training import fitting, metrics
from poisonlab.training.loop import TrainConfig, settings

FLIP_TRAINING = TrainConfig(max_epochs=5, batch_size=128, precision="fp32")  # fp32: flip effects are tiny, keep them comparable


@dataclass(frozen=True)
class FlipSpec:
    """Everything that defines one flip run; n=0 is the clean model. Torch models train `train.max_epochs` epochs."""

    dataset: str
    source: int
    target: int
    n: int
    seed: int = 0
    select: str = "first"
    model: str = "simplecnn"
    train_size: int = 0
    test_size: int = 0
    train: TrainConfig = field(default_factory=lambda: FLIP_TRAINING)

    def to_dict(self) -> dict:
        return settings(self)

    def folder(self) -> Path:
        """runs/n{N}/seed{S} relative to the output folder."""
        return Path("runs") / f"n{self.n}" / f"seed{self.seed}"


def load_data(dataset: str, data_dir: str | Path | None, train_size: int, test_size: int, download: bool) -> Dataset:
    """The dataset with its first `train_size` training and first `test_size` test items (0 = all)."""
    return datasets.load(dataset, data_dir=data_dir, dataset_size=train_size, download=download, test_size=test_size)


def check_request(labels: np.ndarray, classes: list[str], source: int, target: int, counts: list[int]) -> None:
    """Reject source == target and flip counts beyond the source class, naming the classes."""
    if source == target:
        raise PoisonlabError(f"source and target are both '{classes[source]}'; choose two different classes")
    available = int((labels == source).sum())
    too_many = [n for n in counts if n > available]
    if too_many:
        raise PoisonlabError(f"cannot flip {max(too_many)} items of '{classes[source]}': the training set has only "
                             f"{available}; give numbers of flips up to {available}")


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


def run(spec: FlipSpec, data: Dataset, *, model=None, on_epoch: Callable[[dict], None] | None = None):
    """Flip `spec.n` source labels to the target, train, evaluate; returns (record for run.json, model)."""
    started = time.perf_counter()
    check_request(data.y_train, data.classes, spec.source, spec.target, [spec.n])
    labels, _ = flips.targeted_flip(data.y_train, spec.source, spec.target, spec.n, spec.select, spec.seed)
    fitted = fitting.build(spec.model if model is None else model, data.x_train.shape[1:], data.num_classes, spec.seed)
    training = fitting.fit(fitted, data.x_train, labels, config=spec.train, seed=spec.seed, on_epoch=on_epoch)
    record = {
        "status": "complete",
        "config": spec.to_dict(),
        "dataset": dataset_record(data),
        "flip": bookkeeping(data.y_train, labels, spec.source, data.num_classes),
        "metrics": evaluate(data.y_test, fitting.predict(fitted, data.x_test), data.classes),
        "history": training["history"],
        "train_seconds": round(time.perf_counter() - started, 3),
    }
    return record, fitted
