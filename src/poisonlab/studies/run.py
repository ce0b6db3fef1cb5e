"""One run: poison the training labels, split off validation, train, evaluate on the untouched test set."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import sklearn
import torch

from poisonlab import __version__, datasets
from poisonlab.attacks import flips, humanlabels, informed
from poisonlab.attacks.backdoor import Trigger, stamp
from poisonlab.attacks.humanlabels import HumanLabels
from poisonlab.datasets import Dataset, dataset_record
from poisonlab.errors import PoisonlabError
from poisonlab import store
from poisonlab.store import slug
from poisonlab.studies import defence, surrogate
from poisonlab.training import fitting, metrics, models
from poisonlab.training.loop import TrainConfig, pick_device, settings


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
    select: str = "random"
    biased_rule: str = "readme"
    preset: str | None = None
    defence: str = "none"

    def __post_init__(self) -> None:
        defence.check_defence(self.defence)
        if self.kind != "biased":  # the rule of biased poisoning means nothing to other runs
            object.__setattr__(self, "biased_rule", "readme")

    def to_dict(self) -> dict:
        """The config recorded in run.json; `select`, `biased_rule`, `preset` and `defence` only when not the default,
        so older runs stay reusable."""
        config = settings(self)
        for key, default in (("select", "random"), ("biased_rule", "readme"), ("preset", None), ("defence", "none")):
            if config[key] == default:
                del config[key]
        return config

    def folder(self) -> Path:
        """models/[b_]{dataset}[_{size}][_{model}][_valtest][_{select}][_coderule][_{defence}]/{percent}/seed{S}
        relative to the output folder; human labels: models/{dataset}[_{size}][_{model}][_valtest][_{defence}]_{source}-{key}/seed{S}."""
        name = ("b_" if self.kind == "biased" else "") + slug(self.dataset)
        name += f"_{self.dataset_size}" if self.dataset_size else ""
        name += f"_{slug(self.model)}" if self.model != DEFAULT_MODEL else ""
        name += "_valtest" if self.val == "test" else ""
        name += f"_{self.select}" if self.select != "random" else ""
        name += f"_{self.biased_rule}rule" if self.biased_rule != "readme" else ""
        name += f"_{slug(self.defence)}" if self.defence != "none" else ""
        if humanlabels.is_kind(self.kind):
            return Path("models") / f"{name}_{slug(self.kind)}" / f"seed{self.seed}"
        return Path("models") / name / f"{self.percent:g}" / f"seed{self.seed}"


def split_indices(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (fit, validation) index split holding out `fraction` of n items (at least one)."""
    order = np.random.default_rng([seed, 3]).permutation(n)
    n_val = max(1, int(round(n * fraction)))
    if n_val >= n:
        raise PoisonlabError(f"training set of {n} items is too small to hold out validation; use more training items")
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def environment(device: torch.device | str) -> dict:
    """Versions and device behind a result."""
    return {"poisonlab": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "scikit-learn": sklearn.__version__, "device": str(device),
            "threads": torch.get_num_threads(), "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled()}


def poisoned_labels(spec: RunSpec, data: Dataset, human: HumanLabels | None) -> tuple[np.ndarray, np.ndarray, dict]:
    """The run's training labels, the mask of changed items and the poison record's extra fields: poisoned (items
    chosen by `spec.select`; informed strategies record their surrogate), or `human` labels for a human-label kind."""
    if humanlabels.is_kind(spec.kind):
        if human is None or human.kind != spec.kind:
            raise ValueError(f"a {spec.kind} run needs those labels passed as `human`")
        return *human.apply(data.y_train), {}
    rule = {} if spec.biased_rule == "readme" else {"biased_rule": spec.biased_rule}
    if spec.select not in informed.INFORMED:
        labels, mask = flips.apply(spec.kind, data.y_train, data.num_classes, spec.percent, spec.seed, select=spec.select,
                                   biased_rule=spec.biased_rule)
        return labels, mask, {**({} if spec.select == "random" else {"select": spec.select}), **rule}
    probs = surrogate.probabilities(data, spec.seed)
    labels, mask = flips.apply(spec.kind, data.y_train, data.num_classes, spec.percent, spec.seed, select=spec.select,
                               pred_probs=probs, biased_rule=spec.biased_rule)
    return labels, mask, {"select": spec.select, "surrogate": surrogate.describe(probs, data.y_train, spec.seed), **rule}


@dataclass(frozen=True)
class Prepared:
    """A run's inputs: its poisoned training labels and poison mask, the fit/validation split and the validation
    data; `trained` the labels it trains on (the poisoned ones, or relabelled by a cleaning defence, whose record is
    `cleaning`)."""

    labels: np.ndarray
    mask: np.ndarray
    chosen: dict
    fit_idx: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    trained: np.ndarray
    cleaning: dict | None = None


def prepare(spec: RunSpec, data: Dataset, human: HumanLabels | None = None) -> Prepared:
    """Poison the labels of `spec`, clean them when its defence says so (the dropped items leave both the fit and the
    validation part), and split off its validation data (held-out training items, or the clean test set)."""
    labels, mask, chosen = poisoned_labels(spec, data, human)
    trained, keep, cleaning = defence.clean(spec.defence, data.x_train, labels, mask, data.num_classes, spec.seed)
    if spec.val == "split":
        fit_idx, val_idx = split_indices(len(labels), spec.val_fraction, spec.seed)
        val_idx = val_idx[keep[val_idx]]
        return Prepared(labels, mask, chosen, fit_idx[keep[fit_idx]], data.x_train[val_idx], trained[val_idx],
                        trained, cleaning)
    if spec.val == "test":
        return Prepared(labels, mask, chosen, np.flatnonzero(keep), data.x_test, data.y_test, trained, cleaning)
    raise PoisonlabError(f"unknown validation mode '{spec.val}'; choose split or test")


def _record(spec: RunSpec, data: Dataset, prep: Prepared, human: HumanLabels | None, fitted, training: dict,
            timings: dict, device: torch.device) -> dict:
    """The run.json record of a trained run, its test predictions made here."""
    t0 = time.perf_counter()
    predicted = fitting.predict(fitted, data.x_test)
    timings = {**timings, "eval_s": round(time.perf_counter() - t0, 3)}
    timings["total_s"] = round(timings["prepare_s"] + timings["train_s"] + timings["eval_s"], 3)
    poisoned = np.flatnonzero(prep.mask)
    return {
        "status": "complete",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": spec.to_dict(),
        "dataset": dataset_record(data),
        "poison": {"kind": spec.kind, "percent": spec.percent, "n_poisoned": int(prep.mask.sum()),
                   "rate": float(prep.mask.mean()) if len(prep.mask) else 0.0, "indices": poisoned.tolist(),
                   "original_labels": data.y_train[poisoned].tolist(), "new_labels": prep.labels[poisoned].tolist(),
                   **prep.chosen},
        **({"labels": human.provenance(prep.mask)} if humanlabels.is_kind(spec.kind) else {}),
        "split": {"val": spec.val, "n_fit": len(prep.fit_idx), "n_val": len(prep.y_val),
                  "val_label": "held-out 10% of the poisoned training data" if spec.val == "split"
                  else "clean test set (test data used for model selection, as the original experiment did)"},
        "training": training,
        **({"defence": prep.cleaning or defence.settings(spec.defence)} if spec.defence != "none" else {}),
        "metrics": metrics.summary(data.y_test, predicted, data.num_classes),
        "model": {"name": spec.model, "parameters": models.count_parameters(fitted) if isinstance(fitted, torch.nn.Module) else None},
        "timings": timings,
        "environment": environment(device),
    }


def run(spec: RunSpec, data: Dataset, *, model: models.ModelSpec | None = None, human: HumanLabels | None = None,
        on_epoch: Callable[[dict], None] | None = None):
    """Carry out one run (`model` replaces the built-in `spec.model` when given); returns (run.json record, trained model)."""
    t0 = time.perf_counter()
    prep = prepare(spec, data, human)
    fitted = fitting.build(spec.model if model is None else model, data.x_train.shape[1:], data.num_classes, spec.seed)
    device = pick_device() if isinstance(fitted, torch.nn.Module) else torch.device("cpu")
    t1 = time.perf_counter()
    training = fitting.fit(fitted, data.x_train[prep.fit_idx], prep.trained[prep.fit_idx], prep.x_val, prep.y_val,
                           config=spec.train, seed=spec.seed, device=device, on_epoch=on_epoch,
                           remedy=defence.remedy(spec.defence))
    timings = {"prepare_s": round(t1 - t0, 3), "train_s": round(time.perf_counter() - t1, 3)}
    return _record(spec, data, prep, human, fitted, training, timings, device), fitted


def stack_key(spec: RunSpec) -> RunSpec:
    """What the runs trained together as one stack share: everything but the labels (kind, percent, selection); a
    run whose defence cleans its labels trains on items of its own, alone."""
    return spec if defence.cleans(spec.defence) else replace(spec, kind="random", percent=0.0, select="random",
                                                                biased_rule="readme")


def run_stacked(specs: list[RunSpec], data: Dataset, *, model: models.ModelSpec | None = None,
                human: dict[str, HumanLabels] | None = None,
                on_epoch: Callable[[RunSpec, dict], None] | None = None) -> list[tuple[dict, object]]:
    """Carry out runs that differ only in their labels (one `stack_key`) as one stacked torch model; returns each
    run's (run.json record, trained model), in `specs` order."""
    if len({stack_key(s) for s in specs}) != 1:
        raise ValueError("stacked runs must share dataset, size, seed, model, validation and training settings")
    spec0, human = specs[0], human or {}
    t0 = time.perf_counter()
    preps = [prepare(s, data, human.get(s.kind)) for s in specs]
    built = [fitting.build(spec0.model if model is None else model, data.x_train.shape[1:], data.num_classes, spec0.seed)
             for _ in specs]
    if not isinstance(built[0], torch.nn.Module):
        raise PoisonlabError(f"model {models.model_name(spec0.model if model is None else model)} is not a torch "
                             "model; only torch models train stacked: train it one run at a time")
    device = pick_device()
    t1 = time.perf_counter()
    trainings = fitting.fit_stacked(built, data.x_train[preps[0].fit_idx], [p.trained[p.fit_idx] for p in preps],
                                    preps[0].x_val, [p.y_val for p in preps], config=spec0.train, seed=spec0.seed,
                                    device=device, on_epoch=on_epoch and (lambda i, row: on_epoch(specs[i], row)),
                                    remedy=defence.remedy(spec0.defence))
    share = (time.perf_counter() - t1) / len(specs)  # each run's share of the stack's training time
    prepare_s = (t1 - t0) / len(specs)
    return [(_record(s, data, p, human.get(s.kind), m, t, {"prepare_s": round(prepare_s, 3), "train_s": round(share, 3)},
                     device), m) for s, p, m, t in zip(specs, preps, built, trainings)]


def run_dataset(record: dict, data_dir: Path | None = None, download: bool = True) -> Dataset:
    """The dataset a saved run trained on, with the run's poisoned training labels (and backdoor stamps) applied."""
    spec = store.field(record, "config.dataset", str)
    if "poison" in record:
        data = datasets.load(spec, data_dir, store.field(record, "config.dataset_size", int), download)
        indices = store.field(record, "poison.indices", list, int)
        new = store.field(record, "poison.new_labels", list, int)
    elif "flip" in record:
        data = datasets.load(spec, data_dir, dataset_size=store.field(record, "config.train_size", int),
                             download=download, test_size=store.field(record, "config.test_size", int))
        indices = store.field(record, "flip.changed_indices", list, int)
        new = [store.field(record, "config.target", int)] * len(indices)
    else:
        raise PoisonlabError("the run records no poisoned labels (neither 'poison' nor 'flip'); give a run made by poisonlab")
    n_train = store.field(record, "dataset.n_train", int)
    if len(data.y_train) != n_train:
        raise PoisonlabError(f"{spec} here has {len(data.y_train)} training items but the run used "
                             f"{n_train}; use the same dataset files as the run")
    if len(new) != len(indices) or not all(0 <= i < n_train for i in indices) or not all(0 <= v < data.num_classes for v in new):
        raise PoisonlabError(f"the run record's poisoned items are not {len(indices)} indices below {n_train} with "
                             f"labels below {data.num_classes} (a damaged {store.RUN_FILE}); restore it from a copy "
                             "or train the run again")
    labels = data.y_train.copy()
    labels[np.asarray(indices, np.int64)] = new
    trigger = record.get("poison", {}).get("trigger")
    if trigger is None:
        return replace(data, y_train=labels)
    if not isinstance(trigger, dict):
        raise PoisonlabError(f"the run record's trigger is not a mapping (a damaged {store.RUN_FILE}); restore it from a "
                             "copy or train the run again")
    x = data.x_train.copy()  # a backdoor run: its stamped training images too
    x[np.asarray(indices, np.int64)] = stamp(x[np.asarray(indices, np.int64)], Trigger(**trigger),
                                             seed=store.field(record, "config.seed", int))
    return replace(data, x_train=x, y_train=labels)
