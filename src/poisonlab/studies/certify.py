"""The certify study: k base models on content-hashed partitions of the (possibly poisoned) training set, their
votes on the test set, and the certified radius of every prediction (see `defences.certify`).

Each partition's test predictions are saved as soon as its model is trained (`<out>/partitions/<i>.npy`), so an
interrupted study resumes where it stopped; a folder made with other settings or data is refused."""

from __future__ import annotations

import copy
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from poisonlab import store
from poisonlab.attacks import flips
from poisonlab.checks import check_choice, check_int
from poisonlab.datasets import Dataset, dataset_record
from poisonlab.defences.certify import ABSTAIN, certificates, certified_accuracy, partitions, vote_counts
from poisonlab.errors import PoisonlabError
from poisonlab.files import MAX_RECORD_BYTES, read_json
from poisonlab.reporting.certifyplots import certified_plot
from poisonlab.training import TORCH_MODELS, fitting
from poisonlab.training.loop import TrainConfig, pick_device, settings
from poisonlab.training.models import ModelSpec
from poisonlab.training.stacked import fit_on_own_items, predict_each, wide
from poisonlab.training.parallel import pmap

STACK = 64  # partitions trained at once as one wide model on a GPU (on a CPU grouped convolutions are slower: 1)
METHODS = ("dpa",)  # Finite Aggregation and Run-Off Election are not built yet
KINDS = ("none", "random", "biased")


@dataclass(frozen=True)
class CertifySpec:
    """What defines a certify study (besides the data): partitions, base model, poisoning and training."""

    partitions: int
    model: str = "logreg"
    method: str = "dpa"
    kind: str = "none"
    percent: float = 0.0
    seed: int = 0
    key: str = "poisonlab-dpa"
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_epochs=10))

    def to_dict(self) -> dict:
        return settings(self)


def poisoned(data: Dataset, spec: CertifySpec) -> tuple[np.ndarray, np.ndarray]:
    """The training labels the base models learn (and the mask of changed ones)."""
    if spec.kind == "none":
        return data.y_train.copy(), np.zeros(len(data.y_train), bool)
    return flips.apply(spec.kind, data.y_train, data.num_classes, spec.percent, spec.seed)


def _fixed_votes(labels: np.ndarray, n_test: int) -> np.ndarray | None:
    """The votes of a partition with no model to train: ABSTAIN without items, its one class for a one-class
    partition; None when it has two classes or more."""
    seen = np.unique(labels)
    return np.full(n_test, ABSTAIN if not len(seen) else seen[0], dtype=np.int64) if len(seen) < 2 else None


def _partition_votes(context: tuple, item: tuple[int, np.ndarray]) -> np.ndarray:
    """One base model's test predictions (see `_fixed_votes` for partitions that train none)."""
    x, labels, x_test, model, config, seed, num_classes = context
    index, members = item
    fixed = _fixed_votes(labels[members], len(x_test))
    if fixed is not None:
        return fixed
    fitted = fitting.build(model, x.shape[1:], num_classes, seed + index)
    fitting.fit(fitted, x[members], labels[members], config=config, seed=seed + index)
    return np.asarray(fitting.predict(fitted, x_test), dtype=np.int64)


def stackable(model: ModelSpec, data: Dataset) -> bool:
    """Whether the base models train stacked (Sequential CNNs of common layers on images): one wide pass for many
    partitions, each on its own items (see `stacked.fit_on_own_items`)."""
    if data.x_train.ndim != 4 or (isinstance(model, str) and model not in TORCH_MODELS):
        return False
    built = fitting.build(model, data.x_train.shape[1:], data.num_classes, 0)
    return isinstance(built, nn.Module) and wide(copy.deepcopy(built).to("meta")) is not None


def _stacked_votes(data: Dataset, labels: np.ndarray, model: ModelSpec, spec: CertifySpec,
                   todo: list[tuple[int, np.ndarray]], keep) -> None:
    """Train the partitions STACK at a time as one wide model on a GPU, one at a time (the same procedure) on a CPU
    (model i seeded seed + i), and `keep` each one's test predictions as it finishes (empty partitions abstain,
    one-class ones vote their class)."""
    device = pick_device()
    x, x_test = fitting.as_tensor(data.x_train, device), fitting.as_tensor(data.x_test, device)
    y = torch.from_numpy(labels).to(device)
    rest = []
    for n, item in enumerate(todo):
        fixed = _fixed_votes(labels[item[1]], len(data.y_test))
        if fixed is None:
            rest.append((n, item))
        else:
            keep(n, fixed)
    size = STACK if device.type == "cuda" else 1
    for start in range(0, len(rest), size):
        group = rest[start : start + size]
        models = [fitting.build(model, data.x_train.shape[1:], data.num_classes, spec.seed + i).to(device)
                  for _, (i, _) in group]
        fit_on_own_items(models, x, [m for _, (_, m) in group], y, spec.train, [spec.seed + i for _, (i, _) in group])
        for (n, _), votes in zip(group, predict_each(models, x_test)):
            keep(n, votes.astype(np.int64))


def study(data: Dataset, spec: CertifySpec, out: Path, *, model: ModelSpec | None = None, jobs: int = 1,
          budgets: list[int] | None = None, overwrite: bool = False, console: Console | None = None) -> dict:
    """Train the k base models (resuming), aggregate their votes and certify every test prediction.

    Returns {"doc": certify.json's content, "votes": (M, K), "predicted", "radius", "files": written paths}."""
    check_choice(spec.method, METHODS, "certification method")
    check_choice(spec.kind, KINDS, "poisoning kind")
    k = check_int(spec.partitions, "partitions", low=1, high=len(data.y_train))
    console = console or Console(stderr=True)
    labels, mask = poisoned(data, spec)
    parts = partitions(data.x_train, k, key=spec.key.encode())
    settings = json.loads(json.dumps({"spec": spec.to_dict(), "data": dataset_record(data)}))  # as saved
    folder = out / "partitions"
    _claim_folder(out, settings, overwrite)
    todo = [i for i in range(k) if overwrite or _saved(folder / f"{i}.npy", len(data.y_test), data.num_classes) is None]
    members = [np.flatnonzero(parts == i) for i in range(k)]
    started = time.perf_counter()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn())
    if len(todo) < k:
        console.print(f"resuming: {k - len(todo)} of {k} base models already trained in {out}")
    with Progress(*columns, console=console, disable=not console.is_terminal) as bar:
        task = bar.add_task("base models", total=len(todo))

        def keep(index: int, votes: np.ndarray) -> None:
            buf = io.BytesIO()
            np.save(buf, votes, allow_pickle=False)
            store.atomic_write(folder / f"{todo[index]}.npy", buf.getvalue())
            bar.update(task, advance=1)

        base = model if model is not None else spec.model
        if stackable(base, data):
            _stacked_votes(data, labels, base, spec, [(i, members[i]) for i in todo], keep)
        else:
            context = (data.x_train, labels, data.x_test, base, spec.train, spec.seed, data.num_classes)
            pmap(_partition_votes, [(i, members[i]) for i in todo], jobs, context=context, on_result=keep,
                 note=console.print, label=lambda item: f"partition {item[0]}")
    predictions = np.stack([_saved(folder / f"{i}.npy", len(data.y_test), data.num_classes) for i in range(k)])
    votes = vote_counts(predictions, data.num_classes)
    predicted, radius = certificates(votes)
    budgets = list(range(0, int(radius.max(initial=0)) + 2)) if budgets is None else budgets
    accuracy = certified_accuracy(predicted, radius, data.y_test, np.array(budgets))
    base = [(p[p != ABSTAIN] == data.y_test[p != ABSTAIN]).mean() for p in predictions if (p != ABSTAIN).any()]
    sizes = np.bincount(parts, minlength=k)
    doc = {
        "dataset": data.name, "method": spec.method, "partitions": k, "model": spec.model, "n_train": len(labels),
        "n_test": len(data.y_test), "poison": {"kind": spec.kind, "percent": spec.percent, "rate": spec.percent / 100,
                                               "n_poisoned": int(mask.sum())},
        "clean_accuracy": float((predicted == data.y_test).mean()), "median_radius": float(np.median(radius)),
        "base_accuracy_mean": float(np.mean(base)) if base else None,
        "certified_accuracy": [{"budget": int(b), "accuracy": float(a)} for b, a in zip(budgets, accuracy)],
        "partition_sizes": {"min": int(sizes.min()), "median": float(np.median(sizes)), "max": int(sizes.max()),
                            "empty": int((sizes == 0).sum())},
        "seconds": round(time.perf_counter() - started, 3), "status": "complete", "settings": settings,
    }
    files = [out / "certify.json", out / "certify.csv", out / "certified_accuracy.png"]
    store.write_json(files[0], doc)
    store.atomic_write(files[1], per_image_csv(votes, predicted, data.y_test, radius))
    certified_plot(doc, files[2])
    return {"doc": doc, "votes": votes, "predicted": predicted, "radius": radius, "labels": data.y_test,
            "files": files}


def per_image_csv(votes: np.ndarray, predicted: np.ndarray, labels: np.ndarray, radius: np.ndarray) -> str:
    """One line per test image: votes_0..votes_{K-1}, predicted, label, radius."""
    header = [f"votes_{c}" for c in range(votes.shape[1])] + ["predicted", "label", "radius"]
    table = np.column_stack([votes, predicted, labels, radius])
    buf = io.StringIO()
    np.savetxt(buf, table, fmt="%d", delimiter=",", header=",".join(header), comments="")
    return buf.getvalue()


def _claim_folder(out: Path, settings: dict, overwrite: bool) -> None:
    """Record the study's settings in `out` (certify.json), or refuse a folder holding another study's partitions."""
    path = out / "certify.json"
    saved = read_json(path, f"certify study {path}", MAX_RECORD_BYTES, "pass overwrite to start it again") \
        if path.exists() and not overwrite else None
    if not overwrite and (out / "partitions").is_dir() and not isinstance(saved, dict):
        raise PoisonlabError(f"{out} holds base-model predictions but no certify.json naming their settings; pass "
                             "overwrite or choose another output folder")
    if isinstance(saved, dict) and saved.get("settings") != settings:
        raise PoisonlabError(f"{out} holds a certify study with other settings or data; pass overwrite or choose "
                             "another output folder")
    if saved is None:
        store.write_json(path, {"settings": settings, "status": "running"})


def _saved(path: Path, n_test: int, num_classes: int) -> np.ndarray | None:
    """A partition's saved test predictions, or None when missing or not (n_test,) classes (or ABSTAIN)."""
    try:
        votes = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    ok = votes.shape == (n_test,) and votes.dtype == np.int64 and votes.min(initial=0) >= ABSTAIN \
        and votes.max(initial=0) < num_classes
    return votes if ok else None


def frame(result: dict):
    """The per-image table as a pandas DataFrame (votes_0.., predicted, label, radius)."""
    import pandas as pd

    votes = result["votes"]
    table = pd.DataFrame(votes, columns=[f"votes_{c}" for c in range(votes.shape[1])])
    table["predicted"], table["label"], table["radius"] = result["predicted"], result["labels"], result["radius"]
    return table
