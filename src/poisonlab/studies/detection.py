"""The detection study: poisoned (or human) label sets, every detector scored against the true mask, then cleaning
and retraining measured on the untouched test set."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from poisonlab.attacks.backdoor import attack_success_rate, triggered
from poisonlab.datasets import Dataset
from poisonlab.defences import detectors
from poisonlab.defences.cleaning import cleaned
from poisonlab.defences.evaluate import score
from poisonlab.defences.folds import DetectorConfig
from poisonlab.checks import check_choice
from poisonlab.errors import PoisonlabError
from poisonlab.studies.labelsets import LabelSet
from poisonlab.studies.run import split_indices
from poisonlab.training import fitting, remedies
from poisonlab.training.loop import TrainConfig
from poisonlab.training.models import model_name

THEN = ("none", "clean", "relabel")  # and clean+REMEDY, relabel+REMEDY: the retraining with a training remedy
RETRAIN_BATCH = 64


def check_then(then: str) -> tuple[str, str]:
    """The cleaning action and the retraining remedy of `then` ("none", "clean", "relabel", or one of the last two
    with "+REMEDY", e.g. "clean+gce")."""
    action, _, remedy = then.partition("+")
    check_choice(action, THEN, "action after detection")
    if remedy and action == "none":
        raise PoisonlabError(f"{then!r} retrains nothing; a remedy follows clean or relabel, e.g. clean+{remedy}")
    return action, remedies.check_remedy(remedy or "none")


def retrained_accuracy(data: Dataset, labels: np.ndarray, keep: np.ndarray, model, epochs: int, seed: int,
                       item: LabelSet | None = None, remedy: str = "none") -> tuple[float, float | None]:
    """Train `model` on the kept items (10% of them held out for validation), the training images being `item.x` for a
    backdoor set, with the training `remedy`; its accuracy on the untouched test set and, for a backdoor set, its
    attack success rate."""
    x = data.x_train if item is None or item.x is None else item.x
    idx = np.flatnonzero(keep)
    fit_pos, val_pos = split_indices(len(idx), 0.1, seed)
    fit_idx, val_idx = idx[fit_pos], idx[val_pos]
    fitted = fitting.build(model, x.shape[1:], data.num_classes, seed)
    fitting.fit(fitted, x[fit_idx], labels[fit_idx], x[val_idx], labels[val_idx],
                config=TrainConfig(max_epochs=epochs, batch_size=RETRAIN_BATCH), seed=seed, remedy=remedy)
    accuracy = float((fitting.predict(fitted, data.x_test) == data.y_test).mean())
    if item is None or item.trigger is None:
        return accuracy, None
    x_trig, y_trig = triggered(data.x_test, data.y_test, trigger=item.trigger, target=item.target, seed=seed + 1)
    return accuracy, attack_success_rate(fitting.predict(fitted, x_trig), y_trig, item.target)


def check_one(data: Dataset, item: LabelSet, names: list[str], config: DetectorConfig, seed: int, then: str,
              retrain: tuple[object, int], clean_accuracy: float | None,
              trusted: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """Detect on one label set, score each method, and (with `then`) retrain on the cleaned labels, with its remedy
    when `then` names one (for a backdoor set also measuring the attack success rate before and after)."""
    then, remedy = check_then(then)
    row = {"kind": item.kind, "setting": item.setting, "percent": item.percent, "n_poisoned": int(item.mask.sum()),
           "rate": float(item.mask.mean()), "changed_percent": float(100 * item.mask.mean()), "poisoned_accuracy": None, "poisoned_asr": None, "methods": []}
    if then != "none":
        row["poisoned_accuracy"], row["poisoned_asr"] = retrained_accuracy(
            data, item.labels, np.ones(len(item.labels), bool), *retrain, seed, item)
    x = data.x_train if item.x is None else item.x
    for detection in detectors.run(names, x, item.labels, data.num_classes, seed, config, trusted=trusted):
        result = {"method": detection.method, **score(detection, item.mask), "accuracy_after": None, "recovered": None,
                  "asr_after": None}
        if then != "none":
            labels, keep = cleaned(item.labels, detection, then)
            after, result["asr_after"] = retrained_accuracy(data, labels, keep, *retrain, seed, item, remedy)
            result["accuracy_after"] = after
            result["recovered"] = after - row["poisoned_accuracy"]  # accuracy points regained (negative: lost)
        row["methods"].append(result)
    return row


def study(data: Dataset, sets: list[LabelSet], names: list[str], *, config: DetectorConfig = DetectorConfig(),
          seed: int = 0, then: str = "none", model="smallcnn", epochs: int = 10, trusted: int = 0,
          on_row: Callable[[dict, float | None], None] | None = None) -> dict:
    """Check every label set with every method; with `then` also the clean-label, poisoned and cleaned accuracies.
    The first `trusted` test items are the correlation screen's clean reference.

    Returns the detect.json document (rows per label set, methods per row)."""
    action = check_then(then)[0]
    detectors.check_methods(names)
    config = config.for_items(data.x_train)
    config.check_items(len(data.y_train))
    started = time.perf_counter()
    retrain = (model, epochs)
    everything = np.ones(len(data.y_train), bool)
    reference = (data.x_test[:trusted], data.y_test[:trusted]) if trusted else None
    clean_accuracy = None if action == "none" else retrained_accuracy(data, data.y_train, everything, *retrain, seed)[0]
    rows = []
    for item in sets:
        rows.append(check_one(data, item, names, config, seed, then, retrain, clean_accuracy, reference))
        if on_row:
            on_row(rows[-1], clean_accuracy)
    return {"n_train": len(data.y_train), "n_test": len(data.y_test), "seed": seed, "methods": names,
            "detector": {**config.to_dict(), **({"trusted_test_items": trusted} if trusted else {})}, "then": then,
            "retrain": {"model": model_name(model), "epochs": epochs,
                        "val": "held-out 10% of the (cleaned) training data"},
            "clean_accuracy": clean_accuracy, "rows": rows, "seconds": time.perf_counter() - started}
