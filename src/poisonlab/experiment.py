"""One run: poison the training labels, split off validation, train, evaluate on the untouched test set."""

from __future__ import annotations

import platform
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import sklearn
import torch

from poisonlab import __version__, humanlabels, metrics, models, poison
from poisonlab.datasets import Dataset
from poisonlab.errors import PoisonlabError
from poisonlab.humanlabels import HumanLabels
from poisonlab.train import TrainConfig, fit_sklearn, fit_torch, flatten01, predict, seed_everything, to_tensor

VAL_MODES = ("split", "test")
DEFAULT_MODEL = "smallcnn"


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines a run; equal specs give equal results."""

    dataset: str
    kind: str = "random"
    percent: float = 0.0
    seed: int = 0
    dataset_size: int = 0
    model: str = DEFAULT_MODEL
    val: str = "split"
    val_fraction: float = 0.1
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    def folder(self) -> Path:
        """models/[b_]{dataset}[_{size}][_{model}][_valtest]/{percent}/seed{S} relative to the output folder;
        human labels: models/{dataset}[_{size}][_{model}][_valtest]_{source}-{key}/seed{S}."""
        name = ("b_" if self.kind == "biased" else "") + slug(self.dataset)
        name += f"_{self.dataset_size}" if self.dataset_size else ""
        name += f"_{self.model}" if self.model != DEFAULT_MODEL else ""
        name += "_valtest" if self.val == "test" else ""
        if humanlabels.is_kind(self.kind):
            return Path("models") / f"{name}_{slug(self.kind)}" / f"seed{self.seed}"
        return Path("models") / name / f"{self.percent:g}" / f"seed{self.seed}"


def slug(spec: str) -> str:
    """A folder-safe name for a dataset spec (imagefolder:PATH becomes imagefolder-<stem>)."""
    if spec.startswith("imagefolder:"):
        spec = "imagefolder-" + Path(spec.split(":", 1)[1].split("?")[0]).name.split(".")[0]
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", spec)


def split_indices(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (fit, validation) index split holding out `fraction` of n items (at least one)."""
    order = np.random.default_rng([seed, 3]).permutation(n)
    n_val = max(1, int(round(n * fraction)))
    if n_val >= n:
        raise PoisonlabError(f"training set of {n} items is too small to hold out validation; use a larger --dataset-size")
    return np.sort(order[n_val:]), np.sort(order[:n_val])


class Tensors:
    """The current dataset's images converted once to device tensors, reused by every run on it."""

    def __init__(self, device: torch.device):
        self.device, self._data, self._cache = device, None, {}

    def get(self, data: Dataset, split: str) -> torch.Tensor:
        if self._data is not data:
            self._data, self._cache = data, {}
        if split not in self._cache:
            self._cache[split] = to_tensor(getattr(data, f"x_{split}"), self.device)
        return self._cache[split]


def environment(device: torch.device) -> dict:
    """Versions and device behind a result."""
    return {"poisonlab": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "scikit-learn": sklearn.__version__, "device": str(device),
            "threads": torch.get_num_threads()}


def run(spec: RunSpec, data: Dataset, tensors: Tensors, on_epoch: Callable[[dict], None] | None = None,
        human: HumanLabels | None = None):
    """Carry out one run (on `human` labels instead of poisoning when given); returns (run.json record, trained model)."""
    started = time.perf_counter()
    if humanlabels.is_kind(spec.kind):
        if human is None or human.kind != spec.kind:
            raise ValueError(f"a {spec.kind} run needs those labels passed as `human`")
        labels, mask = human.apply(data.y_train)
    else:
        labels, mask = poison.apply(spec.kind, data.y_train, data.num_classes, spec.percent, spec.seed)
    if spec.val == "split":
        fit_idx, val_idx = split_indices(len(labels), spec.val_fraction, spec.seed)
    elif spec.val == "test":
        fit_idx, val_idx = np.arange(len(labels)), np.array([], dtype=np.int64)
    else:
        raise PoisonlabError(f"unknown validation mode '{spec.val}'; choose split or test")
    seed_everything(spec.seed)
    model = models.build(spec.model, data.x_train.shape[1:], data.num_classes, spec.seed)
    t0 = time.perf_counter()
    if isinstance(model, torch.nn.Module):
        device = tensors.device
        model.to(device, memory_format=torch.channels_last)
        x_all = tensors.get(data, "train")
        x_val, y_val = (x_all[val_idx], labels[val_idx]) if spec.val == "split" else (tensors.get(data, "test"), data.y_test)
        y_fit = torch.from_numpy(labels[fit_idx]).to(device)
        training = fit_torch(model, x_all[fit_idx], y_fit, x_val, y_val, spec.train, spec.seed, on_epoch)
        train_s = time.perf_counter() - t0
        predicted = predict(model, tensors.get(data, "test"))
        n_params = models.count_parameters(model)
    else:
        device = torch.device("cpu")
        x_val, y_val = (data.x_train[val_idx], labels[val_idx]) if spec.val == "split" else (data.x_test, data.y_test)
        if len(np.unique(labels[fit_idx])) < 2:
            raise PoisonlabError(f"{spec.model} cannot train on a single class (all labels equal after poisoning); use a torch model")
        training = fit_sklearn(model, data.x_train[fit_idx], labels[fit_idx], x_val, y_val)
        train_s = time.perf_counter() - t0
        predicted = model.predict(flatten01(data.x_test))
        n_params = None
    eval_s = time.perf_counter() - t0 - train_s
    poisoned = np.flatnonzero(mask)
    record = {
        "status": "complete",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": spec.to_dict(),
        "dataset": {"name": data.name, "classes": data.classes, "num_classes": data.num_classes,
                    "n_train": len(labels), "n_test": len(data.y_test), "shape": list(data.x_train.shape[1:]),
                    "sources": data.sources, "notes": data.notes},
        "poison": {"kind": spec.kind, "percent": spec.percent, "n_poisoned": int(mask.sum()),
                   "rate": float(mask.mean()) if len(mask) else 0.0, "indices": poisoned.tolist(),
                   "original_labels": data.y_train[poisoned].tolist(), "new_labels": labels[poisoned].tolist()},
        **({"labels": human.provenance(mask)} if humanlabels.is_kind(spec.kind) else {}),
        "split": {"val": spec.val, "n_fit": len(fit_idx), "n_val": len(val_idx) if spec.val == "split" else len(data.y_test),
                  "val_label": "held-out 10% of the poisoned training data" if spec.val == "split"
                  else "clean test set (original protocol: test data used for model selection)"},
        "training": training,
        "metrics": metrics.summary(data.y_test, predicted, data.num_classes),
        "model": {"name": spec.model, "parameters": n_params},
        "timings": {"train_s": round(train_s, 3), "eval_s": round(eval_s, 3), "total_s": round(time.perf_counter() - started, 3)},
        "environment": environment(device),
    }
    return record, model

