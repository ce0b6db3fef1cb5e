"""The Python API: the same studies as the commands, on built-in or your own data and models, with typed results.

Everything here is re-exported by `poisonlab` itself; arguments after the data are keyword-only."""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from poisonlab import datasets, display, store
from poisonlab.datasets import Dataset, dataset_record
from poisonlab.datasets.adapters import as_items
from poisonlab.defences import DETECTOR_MODELS, detectors
from poisonlab.defences.detectors import Detection
from poisonlab.defences.evaluate import score as _score
from poisonlab.defences.folds import DetectorConfig
from poisonlab.attacks import BIASED_RULES, KINDS
from poisonlab.attacks.informed import STRATEGIES
from poisonlab.checks import (check_choice, check_fraction, check_int, check_labels, check_nonempty,
                              check_num_classes, check_positive, check_probabilities, check_seed)
from poisonlab.errors import PoisonlabError
from poisonlab.reporting.tracking import Tracking
from poisonlab.studies import DEFAULT_PERCENTS, PRESET_NAMES, executors, flipstudy, presets
from poisonlab.studies.flip import FLIP_TRAINING
from poisonlab.studies import sweep as sweeps
from poisonlab.studies.defence import check_defence
from poisonlab.studies.run import RunSpec, run
from poisonlab.training.loop import PRECISIONS, TrainConfig
from poisonlab.training.fitting import as_features
from poisonlab.training.models import ModelSpec, model_name
from poisonlab.training.saving import check_savable

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DEFAULT_RATES = tuple(p / 100 for p in DEFAULT_PERCENTS)


def load_dataset(name: str, *, data_dir: str | Path | None = None, size: int | None = None,
                 download: bool = True) -> Dataset:
    """Load a built-in dataset, verified against its checksums.

    Parameters
    ----------
    name : str
        mnist, fashion_mnist, cifar10, cifar100 (or cifar100:coarse), digits, embedded, or imagefolder:PATH.
    data_dir : path, optional
        Folder of the dataset files; default $POISONLAB_DATA, else ~/.cache/poisonlab.
    size : int, optional
        Keep the first `size` training items (None or 0: all).
    download : bool
        Fetch missing files from the official locations.

    Returns
    -------
    Dataset
        ``x_train`` uint8 (N, H, W, C), ``y_train`` int64 (N,), ``x_test``, ``y_test``, ``classes`` (K names).
    """
    if not isinstance(name, str) or not name.strip():
        raise PoisonlabError(f"name must be a dataset name such as 'mnist' or 'imagefolder:PATH', got {name!r}")
    return datasets.load(name, data_dir, 0 if size is None else check_int(size, "size", low=0), download)


def _data(data: Dataset | str, data_dir: str | Path | None) -> Dataset:
    """A Dataset as given, or a built-in one by name."""
    if isinstance(data, Dataset):
        return data
    if isinstance(data, str):
        return datasets.load(data, data_dir)
    raise PoisonlabError(f"data must be a Dataset (load_dataset, from_arrays, from_torch) or a dataset name, "
                         f"got {type(data).__name__}")


def _percent(rate: float) -> float:
    """A poison rate (fraction in [0, 1]) as the percent stored with runs."""
    return round(100.0 * check_fraction(rate, "rate"), 10)


def _seeds(seeds: Sequence[int]) -> list[int]:
    """Each seed once, checked (see `check_seed`); a single int is one seed."""
    return [check_seed(seed) for seed in check_nonempty(seeds, "seeds")]


def _training(epochs: int, batch_size: int, **settings) -> TrainConfig:
    """The training settings of a torch model, `epochs` and `batch_size` checked."""
    return TrainConfig(max_epochs=check_int(epochs, "epochs", low=1), batch_size=check_int(batch_size, "batch_size", low=1),
                       **settings)


def _spec(data: Dataset, kind: str, rate: float, seed: int, model: ModelSpec | None, epochs: int | None,
          batch_size: int | None, val: str | None, precision: str, select: str | None = None,
          biased_rule: str | None = None, preset: str | None = None, defence: str = "none") -> RunSpec:
    """The RunSpec of one run on `data` (the model recorded by name), every setting checked; a setting left None is
    the preset's, else poisonlab's default."""
    check_defence(defence)
    check_choice(kind, KINDS, "kind")
    for value, choices, what in ((select, STRATEGIES, "item selection"), (val, ("split", "test"), "val"),
                                 (biased_rule, BIASED_RULES, "biased_rule"), (preset, PRESET_NAMES, "preset")):
        if value is not None:
            check_choice(value, choices, what)
    check_choice(precision, PRECISIONS, "precision")
    base, selects = presets.resolve(
        preset, model=None if model is None else model_name(model), select=None if select is None else [select],
        biased_rule=biased_rule, val=val, epochs=None if epochs is None else check_int(epochs, "epochs", low=1),
        batch_size=None if batch_size is None else check_int(batch_size, "batch_size", low=1), precision=precision)
    return replace(base, dataset=data.name, kind=kind, percent=_percent(rate), seed=seed, select=selects[0],
                   defence=defence)


def _savable(model: ModelSpec, data: Dataset) -> None:
    """Refuse, before training, an estimator whose fitted state cannot be saved without pickle (see check_savable)."""
    if not isinstance(model, str):
        check_savable(model, as_features(data.x_train), data.y_train)


def _given(data: Dataset, *_, **__) -> Dataset:
    """A loader that returns `data` (picklable as functools.partial(_given, data), for worker processes)."""
    return data


def _figure(draw: Callable[[dict], Figure], content: dict) -> Figure:
    """The figure `draw(content)` makes (Agg; dataset and class names as plain text, never mathtext), detached from
    pyplot, so that a notebook shows it once (as the value returned) and nothing is left open."""
    import matplotlib
    import matplotlib.pyplot as plt

    from poisonlab.reporting.flipplots import PLAIN_TEXT

    with matplotlib.rc_context(PLAIN_TEXT):
        fig = draw(content)
    plt.close(fig)
    return fig


def _mean(value: dict | None) -> float | None:
    """The seed mean of a study's summary figure ({mean, min, max, std} or None)."""
    return None if value is None else value["mean"]


def _setting(row: dict, key: str) -> str:
    """A setting of a results row as a series label names it ("" where it does not apply)."""
    if key == "biased_rule":
        return (row.get(key) or "readme") + " rule" if row["kind"] == "biased" else ""
    return str(row.get(key) or "")


def _series(rows: list[dict]) -> list[tuple[str, dict[float, float]]]:
    """Sweep results as (label, {percent: mean test accuracy over seeds}) per series; a label names the settings in
    which the runs differ (dataset, kind, selection, model, defence, ...), or the kind when they differ in none."""
    keys = ("dataset", "kind", "select", "model", "val", "defence", "preset", "biased_rule")
    varying = [k for k in keys if len({_setting(r, k) for r in rows}) > 1] or ["kind"]
    grouped: dict[str, dict[float, list[float]]] = {}
    for row in rows:
        label = " ".join(part for part in (_setting(row, k) for k in varying) if part)
        grouped.setdefault(label, {}).setdefault(row["percent"], []).append(row["test_accuracy"])
    return [(label, {p: float(np.mean(a)) for p, a in by_percent.items()}) for label, by_percent in grouped.items()]


@dataclass(frozen=True)
class RunResult:
    """One trained run: test accuracy, per-class accuracy (K,), confusion (K, K), the training labels used (N,),
    the poison mask (N,), the epoch history, the trained model and the full run.json record."""

    accuracy: float
    per_class_accuracy: np.ndarray
    confusion: np.ndarray
    labels: np.ndarray
    mask: np.ndarray
    history: list[dict]
    model: object
    record: dict

    def _facts(self) -> list[tuple[str, object]]:
        row = store.row_of(self.record, "")
        facts = [("dataset", row["dataset"]), ("kind", row["kind"]),
                 ("rate", f"{row['percent'] / 100:g}"), ("seed", row["seed"]), ("model", row["model"])]
        facts += [(key, row[key]) for key, plain in (("select", "random"), ("defence", "none"))
                  if row.get(key, plain) != plain]
        facts += [("poisoned", f"{row['n_poisoned']}/{row['n_train']}"), ("accuracy", display.number(self.accuracy))]
        return facts + ([("epochs", row["epochs_run"])] if row["epochs_run"] is not None else [])

    def __repr__(self) -> str:
        """One line: dataset, poisoning, seed, model, items poisoned, test accuracy and epochs run; no arrays."""
        return display.summary("RunResult", self._facts())

    def _repr_html_(self) -> str:
        """A small table of the run's settings and figures, and the per-class test accuracy."""
        classes = self.record.get("dataset", {}).get("classes") or [str(k) for k in range(len(self.per_class_accuracy))]
        rows = [(name, display.number(a)) for name, a in zip(classes, self.per_class_accuracy)]
        rows.sort(key=lambda r: (r[1] == "-", r[1]))
        facts = [*self._facts(), ("best validation accuracy", display.number(self.record["training"].get(
            "best_val_accuracy"))), ("seconds", display.number(self.record.get("timings", {}).get("total_s"), 1))]
        return display.block(f"RunResult: {self.record['config']['dataset']}", facts,
                             ("class (worst first)", "test accuracy"), rows)


def _result(record: dict, model, y_train: np.ndarray) -> RunResult:
    """The typed result of one run record and its trained model (`y_train`: the clean training labels)."""
    mask = store.poison_mask(record)
    labels = y_train.copy()
    labels[np.flatnonzero(mask)] = record["poison"]["new_labels"]
    metrics = record["metrics"]
    return RunResult(metrics["accuracy"], np.array([np.nan if a is None else a for a in metrics["per_class_accuracy"]]),
                     np.asarray(metrics["confusion"]), labels, mask, record["training"]["history"], model, record)


def train(data: Dataset | str, *, kind: str = "random", rate: float = 0.0, seed: int = 0, model: ModelSpec | None = None,
          epochs: int | None = None, batch_size: int | None = None, val: str | None = None, precision: str = "auto",
          select: str | None = None, biased_rule: str | None = None, preset: str | None = None,
          defence: str = "none", data_dir: str | Path | None = None,
          on_epoch: Callable[[dict], None] | None = None) -> RunResult:
    """Poison a share of the training labels, train, and evaluate on the untouched test set.

    Parameters
    ----------
    data : Dataset or str
        The data (`load_dataset`, `from_arrays`, `from_torch`) or a built-in dataset name.
    kind : {"random", "biased"}
        How the chosen labels are changed (see `poison_labels`).
    rate : float in [0, 1]
        Share of training labels poisoned (0.2 = 20 %).
    seed : int
        Seed of the poisoning, the validation split, the initial weights and the batch order.
    model : str, callable or estimator, optional
        smallcnn (default), simplecnn, original (the original experiment's network), svc, logreg; a factory
        ``f(shape, num_classes) -> torch.nn.Module`` where shape is (H, W, C) or (D,); or an unfitted scikit-learn
        estimator (cloned for the run).
    epochs, batch_size : int, optional
        Most epochs (default 50; early stopping on validation accuracy, patience 10) and items per step of a torch
        model (default 256).
    val : {"split", "test"}, optional
        Model selection on a seeded 10 % of the poisoned training data (default), or on the clean test set (as the
        original experiment did).
    precision : {"auto", "bf16", "fp32"}
        Arithmetic of a torch model's training steps: bfloat16 autocast (weights stay float32) or float32; auto picks
        bf16 where the CPU (AVX512-BF16 or AMX) or GPU supports it. Evaluation is float32; the record's
        ``training.precision`` says which ran.
    select : {"random", "first", "last", "margin", "confident"}, optional
        Which items are poisoned (default random; see `poison_labels`); margin and confident use a surrogate (logreg
        on PCA-50, out-of-fold over 5 folds) trained on the clean labels, recorded in the run's ``poison.surrogate``.
    biased_rule : {"readme", "code"}, optional
        What biased poisoning does (default readme; see `poison_labels`).
    preset : {"original"}, optional
        Named settings that the arguments given override. "original": the original Keras experiment, exactly: model
        "original" (inputs /255), select "last", biased_rule "code", val "test", 100 epochs, batches of 256, Keras'
        plateau rule (the cut at the 5th epoch without a gain of 1e-4) and Adam epsilon (1e-7). ``run.json``
        records the preset and every resulting setting.
    defence : str
        What the run does against its poisoned labels (torch models): "none"; a training remedy, "gce"
        (generalized cross-entropy), "sce" (symmetric cross-entropy), "elr" (early-learning regularisation),
        "coteach" or "coteach:P" (co-teaching with a peer network, forgetting P % of each batch, default 20), "semi"
        (suspected items keep their image, not their label: pseudo-labels on shifted copies); or
        "clean:METHOD" / "relabel:METHOD" (drop, or relabel, the items detector METHOD flags before training; METHOD
        one of cl, knn, knn-pixels, loss, ensemble). ``run.json`` records it under ``defence``.
    on_epoch : callable, optional
        Called with each epoch's row (epoch, train_loss, train_accuracy, lr, val_accuracy).

    Returns
    -------
    RunResult
    """
    seed, data = check_seed(seed), _data(data, data_dir)
    spec = _spec(data, kind, rate, seed, model, epochs, batch_size, val, precision, select, biased_rule, preset,
                 defence)
    record, fitted = run(spec, data, model=None if model is None or isinstance(model, str) else model,
                         on_epoch=on_epoch)
    return _result(record, fitted, data.y_train)


@dataclass(frozen=True)
class SweepResult:
    """Every run of a sweep as its run.json record (in kind, rate, seed order), and the folder they are saved in."""

    records: list[dict]
    out: Path | None

    def frame(self):
        """One row per run as a pandas DataFrame (the columns of results.csv, plus `rate` as a fraction)."""
        import pandas as pd

        rows = [store.row_of(r, "") for r in self.records]
        frame = pd.DataFrame(rows, columns=list(store.COLUMNS)).drop(columns=["run_dir"])
        frame.insert(frame.columns.get_loc("percent"), "rate", frame["percent"] / 100)
        return frame

    def _facts(self) -> list[tuple[str, object]]:
        rows = [store.row_of(r, "") for r in self.records]
        if not rows:
            return [("runs", 0)]
        accuracy = [r["test_accuracy"] for r in rows]
        facts = [("runs", len(rows)), ("datasets", display.names(sorted({r["dataset"] for r in rows}))),
                 ("kinds", display.names(sorted({r["kind"] for r in rows}))),
                 ("rates", display.span([r["percent"] / 100 for r in rows])), ("seeds", len({r["seed"] for r in rows}))]
        defences = sorted({r.get("defence", "none") for r in rows})
        facts += [("defences", display.names(defences))] if defences != ["none"] else []
        return facts + [("accuracy", f"{min(accuracy):.3f}–{max(accuracy):.3f}"), ("out", self.out)]

    def __repr__(self) -> str:
        """One line: runs, datasets, kinds, rates, seeds, defences, the test accuracy's range and the folder."""
        return display.summary("SweepResult", self._facts())

    def _repr_html_(self) -> str:
        """A small table of the sweep's settings, and its test accuracy (mean over seeds) per rate and series."""
        series = _series([store.row_of(r, "") for r in self.records])[:8]
        percents = sorted({p for _, by_percent in series for p in by_percent})
        rows = [(f"{p / 100:g}", *(display.number(by_percent.get(p)) for _, by_percent in series)) for p in percents]
        return display.block("SweepResult", self._facts(), ("rate", *(label for label, _ in series)), rows)

    def plot(self) -> Figure:
        """Test accuracy against the share of poisoned training labels, as `poisonlab analyse` draws it.

        Returns
        -------
        matplotlib.figure.Figure
            One panel per dataset; one line per series (kind, item selection, model, defence, ... as the runs
            differ), the mean over seeds with a min-max band; the break points and chance marked.
        """
        from poisonlab.reporting import curves

        if not self.records:
            raise PoisonlabError("this sweep has no runs to plot; run it with at least one rate")
        return _figure(curves.figure, curves.curves([store.row_of(r, "") for r in self.records]))


def sweep(data: Dataset | str, *, rates: Sequence[float] = DEFAULT_RATES, kinds: Sequence[str] = ("random",),
          seeds: Sequence[int] = (0,), model: ModelSpec | None = None, epochs: int | None = None,
          batch_size: int | None = None, val: str | None = None, precision: str = "auto",
          select: str | Sequence[str] | None = None, biased_rule: str | None = None, preset: str | None = None,
          defences: Sequence[str] = ("none",), jobs: int = 1, stack: str = "auto", out: str | Path | None = None, overwrite: bool = False,
          data_dir: str | Path | None = None, executor: str = "local", address: str | None = None,
          cpus_per_run: int | None = None, gpus_per_run: float | None = None,
          tracking: Tracking | dict | None = None) -> SweepResult:
    """Train one run per (kind, rate, seed), as `poisonlab train` does; resumable when `out` is given.

    Parameters
    ----------
    data : Dataset or str
        The data, or a built-in dataset name.
    rates : sequence of float in [0, 1]
        Poison rates; default the 20 rates of the original experiment (0, 0.01, ..., 1).
    kinds : sequence of {"random", "biased"}
    seeds : sequence of int
    model, epochs, batch_size, val, precision, biased_rule, preset
        As in `train`; ``preset="original"`` is the original Keras experiment (its network, the last items
        poisoned, its code's biased rule, the test set as validation, Keras' training rules).
    jobs : int
        Runs trained at once in worker processes (spawned), the CPU cores split between them; 1 trains in this
        process. With more, `model` must be a name, an estimator or a module-level factory (not a lambda).
    stack : {"auto", "on", "off"}
        Train the runs that differ only in their labels (same seed) as one stacked torch model, with per-run Adam
        state, learning rate, early stopping and best weights: "auto" does so on a CUDA GPU, where it is faster;
        results equal one-by-one training within float rounding. ``run.json`` records ``training.path``.
    select : str or sequence of str, optional
        Item selections (random, first, last, margin, confident; see `train`), one curve each; default the preset's,
        else random.
    defences : sequence of str
        Defences (see `train`'s `defence`), one curve each; default ("none",). The results' ``defence`` column says
        which.
    out : path, optional
        Results folder: every run is saved there (run.json, weights, results.sqlite/csv) and finished runs are
        reused on the next call, unless they were made on other data (another name, size, shape or fingerprint of
        the arrays): that is an error, never a silent reuse.
    overwrite : bool
        Retrain runs already in `out`.
    executor : {"local", "ray"}
        local: this machine (see `jobs`); ray: one Ray task per run (needs ``pip install 'poisonlab[ray]'``), the
        worker saving the run under `out`, so on a cluster `out` must be on a filesystem every node shares and a
        `model` factory must be importable on every node (the data are sent to the workers).
    address : str, optional
        The Ray cluster, HOST:PORT of its head node; default $RAY_ADDRESS, else a new local Ray instance (a Ray
        session this process already opened is used as is).
    cpus_per_run, gpus_per_run : optional
        CPUs (torch threads) and GPUs each Ray task declares; default 4 CPUs (fewer when no node has 4) and 1 GPU
        when the cluster has GPUs, else 0.
    tracking : Tracking or dict, optional
        Also log each run trained now to TensorBoard and/or MLflow, e.g. ``{"tensorboard": "tb", "mlflow":
        "file:./mlruns"}`` (see `poisonlab.reporting.tracking.Tracking`; needs ``pip install 'poisonlab[tracking]'``).

    Returns
    -------
    SweepResult
        ``.records`` and ``.frame()`` (a pandas DataFrame, with a ``select`` column).
    """
    seed_list, data = _seeds(seeds), _data(data, data_dir)
    base = _spec(data, "biased", 0.0, 0, model, epochs, batch_size, val, precision, None, biased_rule, preset)
    selects = check_nonempty(select, "select") if select is not None else [base.select]
    tracking = _tracking(tracking)
    for name in selects:
        check_choice(name, STRATEGIES, "item selection")
    kind_list = check_nonempty(kinds, "kinds")
    for kind in kind_list:
        check_choice(kind, KINDS, "kind")
    defence_list = [check_defence(name) for name in check_nonempty(defences, "defences")]
    specs = sweeps.plan(base, [data.name], [0], kind_list, [_percent(r) for r in check_nonempty(rates, "rates")],
                        seed_list, selects, defence_list)
    custom = None if model is None or isinstance(model, str) else model
    if out is None and (jobs, executor, address, cpus_per_run, gpus_per_run) == (1, "local", None, None, None) \
            and not executors.stacks(stack, base.model if custom is None else custom) and not tracking:
        return SweepResult([run(spec, data, model=custom)[0] for spec in specs], None)
    _savable(base.model if custom is None else custom, data)
    with nullcontext(out) if out is not None else tempfile.TemporaryDirectory(prefix="poisonlab-sweep-") as folder:
        done = sweeps.execute(specs, Path(folder), overwrite=overwrite, loader=partial(_given, data), model=custom,
                              jobs=jobs, stack=stack, executor=executor, address=address, cpus_per_run=cpus_per_run,
                              gpus_per_run=gpus_per_run, data=dataset_record(data), tracking=tracking)
    return SweepResult(done["records"], None if out is None else Path(out))


@dataclass(frozen=True)
class DefendResult:
    """An attack x defence matrix: matrix.json's content (settings and `cells`, one per attack, percent and defence),
    every run's run.json record, and the folder they are saved in."""

    doc: dict
    records: list[dict]
    out: Path | None

    def frame(self):
        """One row per cell (attack, percent, defence): seeds, accuracy and its std, the share of the damage recovered
        and its std, and the time relative to plain training (a pandas DataFrame, the columns of matrix.csv)."""
        import pandas as pd

        from poisonlab.reporting.matrixplots import CSV_COLUMNS

        return pd.DataFrame(self.doc["cells"], columns=list(CSV_COLUMNS))

    def _facts(self) -> list[tuple[str, object]]:
        doc = self.doc
        return [("dataset", doc["dataset"]), ("model", doc["model"]),
                ("attacks", display.names(doc["attacks"])), ("rates", display.span([p / 100 for p in doc["percents"]])),
                ("defences", display.names(doc["defences"])), ("seeds", len(doc["seeds"])), ("cells", len(doc["cells"]))]

    def __repr__(self) -> str:
        """One line: dataset, model, attacks, rates, defences, seeds and the number of cells."""
        return display.summary("DefendResult", self._facts())

    def _repr_html_(self) -> str:
        """A small table of the settings, and per cell the test accuracy and the share of the damage recovered."""
        rows = [(c["attack"], f"{c['percent'] / 100:g}", c["defence"], c["seeds"], display.number(c["accuracy"]),
                 display.number(c["recovered"], 2)) for c in self.doc["cells"]]
        return display.block("DefendResult", self._facts(),
                             ("attack", "rate", "defence", "seeds", "accuracy", "recovered"), rows)


def defend(data: Dataset | str, *, attacks: Sequence[str] = ("random",), rates: Sequence[float] = (0.0, 0.2, 0.4),
           defences: Sequence[str] = ("none", "gce", "sce", "elr", "coteach", "semi", "clean:cl", "clean:loss"),
           seeds: Sequence[int] = (0,), model: ModelSpec | None = None, epochs: int | None = None,
           batch_size: int | None = None, jobs: int = 1, stack: str = "auto", out: str | Path | None = None,
           overwrite: bool = False, data_dir: str | Path | None = None, target: str | int = 0) -> DefendResult:
    """Train every (attack, rate, defence, seed) and measure the share of the damage each defence recovers, as
    `poisonlab defend` does; resumable when `out` is given.

    Parameters
    ----------
    data : Dataset or str
        The data, or a built-in dataset name.
    attacks : sequence of {"random", "biased", "informed:margin", "informed:confident", "backdoor:patch", "backdoor:blend"}
        Label-flip attacks and backdoors, each at every rate above 0 (human label sets: the command line's
        cifar10n:KEY). A backdoor's damage is its attack success rate.
    rates : sequence of float in [0, 1]
        Poison rates; 0 trains every defence on clean labels. The clean run without defence, the baseline of the
        recovery, is always trained.
    defences : sequence of str
        Defences (see `train`'s `defence`; with backdoor attacks also `backdoor`'s trusted-set defences, which the
        label-flip attacks skip).
    seeds, model, epochs, batch_size, jobs, stack, overwrite
        As in `sweep`.
    target : str or int
        The class the backdoor attacks steer to (name or number).
    out : path, optional
        Results folder (runs, results table, matrix.json, matrix.csv, matrix.png); a temporary one when None.

    Returns
    -------
    DefendResult
        ``.doc`` (matrix.json), ``.records`` and ``.frame()``; per cell, ``recovered`` is (defended - poisoned) /
        (clean - poisoned) test accuracy, mean over seeds (None where the poison cost under half a point).
    """
    from poisonlab.reporting.matrixplots import write_outputs
    from poisonlab.studies import matrix

    seed_list, data = _seeds(seeds), _data(data, data_dir)
    base = _spec(data, "random", 0.0, 0, model, epochs, batch_size, None, "auto")
    attack_list = [matrix.check_attack(a) for a in check_nonempty(attacks, "attacks")]
    if any(a.startswith("cifar10n:") for a in attack_list):
        raise PoisonlabError("human label sets are an attack of the command line (poisonlab defend --attacks "
                             "cifar10n:KEY); give label-flip attacks here")
    stamps = any(matrix.is_backdoor(a) for a in attack_list)
    defence_list = [check_defence(name, backdoor=stamps) for name in check_nonempty(defences, "defences")]
    percents = [_percent(r) for r in check_nonempty(rates, "rates")]
    custom = None if model is None or isinstance(model, str) else model
    _savable(base.model if custom is None else custom, data)
    with nullcontext(out) if out is not None else tempfile.TemporaryDirectory(prefix="poisonlab-defend-") as folder:
        doc, records = matrix.study(base, attack_list, percents, defence_list, seed_list, Path(folder),
                                    overwrite=overwrite, loader=partial(_given, data), model=custom, jobs=jobs,
                                    stack=stack, data=dataset_record(data), target=target)
        if out is not None:
            write_outputs(doc, Path(out))
    return DefendResult(doc, records, None if out is None else Path(out))


def _tracking(tracking: Tracking | dict | None) -> Tracking | None:
    """`tracking` as a checked Tracking (a dict gives its fields: tensorboard, mlflow, experiment), or None."""
    if tracking is None or isinstance(tracking, Tracking):
        made = tracking
    elif isinstance(tracking, dict) and set(tracking) <= {"tensorboard", "mlflow", "experiment"}:
        made = Tracking(**tracking)
    else:
        raise PoisonlabError(f"tracking must be a Tracking or a dict with keys tensorboard, mlflow, experiment; got "
                             f"{tracking!r:.100}")
    if made:
        made.check()
    return made


@dataclass(frozen=True)
class FlipResult:
    """A targeted-flip study: the flip.json document (settings, runs, seed summary per N) and the files written."""

    doc: dict
    files: list[Path]

    def frame(self):
        """One row per N: overall, source and target accuracy (seed means) and their change against the clean model."""
        import pandas as pd

        keys = ("overall_accuracy", "source_accuracy", "target_accuracy", "delta_overall_accuracy",
                "delta_source_accuracy", "delta_target_accuracy")
        return pd.DataFrame([{"n": s["n"], "n_changed": s["n_changed"],
                              **{k: None if s[k] is None else s[k]["mean"] for k in keys}} for s in self.doc["summary"]])

    def _facts(self) -> list[tuple[str, object]]:
        doc, summary = self.doc, self.doc["summary"]
        first, last = summary[0], max(summary, key=lambda s: s["n"])
        return [("dataset", doc["dataset"]), ("model", doc["model"]),
                ("flip", f"{display.clip(doc['source']['name'], 16)} → {display.clip(doc['target']['name'], 16)}"),
                ("n", display.names([s["n"] for s in summary], shown=6)), ("seeds", len(doc["seeds"])),
                ("accuracy", f"{display.number(_mean(first['overall_accuracy']))} → "
                             f"{display.number(_mean(last['overall_accuracy']))}")]

    def __repr__(self) -> str:
        """One line: dataset, model, the flip, the numbers of flips N, seeds, and the overall test accuracy of the
        first N (the clean model) and of the largest."""
        return display.summary("FlipResult", self._facts())

    def _repr_html_(self) -> str:
        """A small table of the settings, and per N the overall, source and target test accuracy (seed means)."""
        rows = [(s["n"], s["n_changed"], *(display.number(_mean(s[key])) for key in
                 ("overall_accuracy", "source_accuracy", "target_accuracy", "delta_overall_accuracy")))
                for s in self.doc["summary"]]
        return display.block("FlipResult", self._facts(),
                             ("N", "changed", "accuracy", "source accuracy", "target accuracy", "change"), rows)

    def plot(self) -> Figure:
        """The overall test accuracy per number of flips N, beside its change against the clean model.

        Returns
        -------
        matplotlib.figure.Figure
            Two panels: a bar per N (the clean model first) of the test accuracy in percent (seed means, the seed
            spread as error bars), and a bar per N of the change in percentage points.
        """
        from poisonlab.reporting import flipplots

        return _figure(flipplots.accuracy_figure, self.doc)


def flip(data: Dataset | str, *, source: str | int, target: str | int, n: Sequence[int] = (1, 5, 10, 50, 100),
         seeds: Sequence[int] = (0,), model: ModelSpec = "simplecnn", epochs: int = 5, batch_size: int = 128,
         select: str = "first", jobs: int = 1, out: str | Path | None = None, overwrite: bool = False,
         data_dir: str | Path | None = None) -> FlipResult:
    """Flip `n` training labels of class `source` to `target` and compare with the clean model of each seed.

    Parameters
    ----------
    data : Dataset or str
    source, target : str or int
        Class names or numbers.
    n : sequence of int
        Numbers of flipped labels; the clean model (0) is always added.
    seeds, model, epochs, batch_size
        As in `train`; torch models train exactly `epochs` epochs.
    select : {"first", "last", "random"}
        The lowest-index source items, the highest-index ones, or a seeded choice per seed.
    jobs : int
        Runs trained at once in spawned worker processes, the CPU cores split between them; 1 trains in this
        process. With more, `model` must be a name, an estimator or a module-level factory (not a lambda).
    out : path, optional
        Folder of the runs, flip.json, report.md and figures (default: a temporary folder, removed afterwards).

    Returns
    -------
    FlipResult
    """
    seed_list, data = _seeds(seeds), _data(data, data_dir)
    counts = [check_int(c, "n", low=0) for c in check_nonempty(n, "n")]
    base, data = flipstudy.prepare(data, source, target, counts, select=select,
                                   train=replace(FLIP_TRAINING, max_epochs=check_int(epochs, "epochs", low=1),
                                                 batch_size=check_int(batch_size, "batch_size", low=1)))
    base = replace(base, model=model_name(model))
    custom = None if isinstance(model, str) else model
    _savable(model, data)
    if out is not None:
        result = flipstudy.run_flip(base, data, counts, seed_list, Path(out), overwrite=overwrite, model=custom, jobs=jobs)
        return FlipResult(result["doc"], [*result["files"], *result["figures"]])
    with tempfile.TemporaryDirectory(prefix="poisonlab-flip-") as folder:
        result = flipstudy.run_flip(base, data, counts, seed_list, Path(folder), model=custom, jobs=jobs)
    return FlipResult(result["doc"], [])


@dataclass(frozen=True)
class BackdoorResult:
    """A backdoor study: the backdoor.json document (settings, runs, seed summary per percent) and the files written."""

    doc: dict
    files: list[Path]

    def frame(self):
        """One row per percent: items stamped, clean test accuracy and attack success rate (seed means and min/max)."""
        import pandas as pd

        return pd.DataFrame([{"percent": s["percent"], "n_poisoned": s["n_poisoned"], "seeds": s["seeds"],
                              **{f"{key}_{stat}": s[key][stat] for key in ("accuracy", "attack_success_rate")
                                 for stat in ("mean", "min", "max")}} for s in self.doc["summary"]])

    def _facts(self) -> list[tuple[str, object]]:
        doc, summary = self.doc, self.doc["summary"]
        last = max(summary, key=lambda s: s["percent"])
        trigger = f"{doc['trigger']['kind']} → {display.clip(doc['target_name'], 16)}"
        facts = [("dataset", doc["dataset"]), ("model", doc["model"]),
                 ("trigger", trigger + (" (clean-label)" if doc["clean_label"] else "")),
                 ("stamped", display.span([s["percent"] for s in summary], " %")), ("seeds", len(doc["seeds"])),
                 ("accuracy", f"{display.number(_mean(summary[0]['accuracy']))} → "
                              f"{display.number(_mean(last['accuracy']))}"),
                 ("asr", f"{display.number(_mean(last['attack_success_rate']))} at {last['percent']:g} %")]
        if doc.get("defence", "none") != "none":
            facts.insert(3, ("defence", doc["defence"]))
        return facts

    def __repr__(self) -> str:
        """One line: dataset, model, trigger and target, percents stamped, seeds, the clean test accuracy of the
        clean model and of the largest percent, and the attack success rate there."""
        return display.summary("BackdoorResult", self._facts())

    def _repr_html_(self) -> str:
        """A small table of the settings, and per percent stamped the clean test accuracy and the attack success
        rate (seed means)."""
        rows = [(f"{s['percent']:g}", s["n_poisoned"], s["seeds"], display.number(_mean(s["accuracy"])),
                 display.number(_mean(s["attack_success_rate"]))) for s in self.doc["summary"]]
        facts = [*self._facts(), ("smallest % reaching the goal", self.doc.get("smallest_percent_reaching_goal"))]
        return display.block("BackdoorResult", facts,
                             ("% stamped", "items", "seeds", "clean accuracy", "attack success rate"), rows)

    def plot(self) -> Figure:
        """The attack success rate and the clean test accuracy against the share of training items stamped.

        Returns
        -------
        matplotlib.figure.Figure
            Two lines (seed means, min-max bands) on a symlog axis of percents, the ASR goal marked.
        """
        from poisonlab.reporting import backdoorplots

        return _figure(backdoorplots.curves_figure, self.doc)


def backdoor(data: Dataset | str, *, target: str | int, rates: Sequence[float] | None = None,
             percents: Sequence[float] | None = None,
             trigger: str = "patch", size: int = 3, position: str = "corner", clean_label: bool = False,
             seeds: Sequence[int] = (0,), model: ModelSpec = "smallcnn", epochs: int = 10, batch_size: int = 256,
             defence: str = "none", jobs: int = 1, out: str | Path | None = None, overwrite: bool = False,
             data_dir: str | Path | None = None) -> BackdoorResult:
    """Stamp a trigger on a share of the training images, relabel them as `target` (BadNets), train, and measure the
    clean test accuracy and the attack success rate (ASR) on triggered test images of the other classes.

    Parameters
    ----------
    data : Dataset or str
        uint8 images (N, H, W, C), or a built-in dataset name.
    target : str or int
        The class the trigger steers to (name or number).
    rates : sequence of float in [0, 1]
        Shares (FRACTIONS, as everywhere in Python) of all N training items stamped; default 0.001, 0.005, 0.01,
        0.05, 0.1. The clean model (0) is always added.
    percents : sequence of float in [0, 100], deprecated
        The same shares in percent (the earlier spelling; a FutureWarning): pass `rates` instead.
    trigger : {"patch", "blend"}
        A `size` x `size` checkerboard patch, or a seeded noise image blended in with weight 0.2.
    size : int
        Patch side in pixels.
    position : {"corner", "random"}
        Bottom-right corner (1 pixel in) or a seeded place per image.
    clean_label : bool
        Stamp only items of the target class and keep every label.
    seeds, model, epochs, batch_size
        As in `train`.
    defence : str
        What every run does against the stamped items (see `train`'s `defence`); the backdoor detectors clean too:
        "clean:correlation", "clean:spectral", "clean:ac", "clean:ac-exclusionary"; "abl[:P]" unlearns the P %
        (default 10) lowest-loss items; with a trusted clean share of the untouched training items ("NAME:P", P %,
        default 5), "finetune" and "fineprune" repair the trained model and "strip" rejects triggered test inputs.
        ``run.json``'s ``defence.before`` keeps the figures before a defence that works on the trained model.
    jobs : int
        Runs trained at once in spawned worker processes (as in `flip`); 1 trains in this process.
    out : path, optional
        Folder of the runs (resumed), the results table, backdoor/<name>/backdoor.json and figures (default: a
        temporary folder, removed afterwards).

    Returns
    -------
    BackdoorResult
        ``.doc`` (runs, summary, ``smallest_percent_reaching_goal``) and ``.frame()``.
    """
    from poisonlab.attacks.backdoor import Trigger
    from poisonlab.studies import backdoor as backdoors

    seed_list, data = _seeds(seeds), _data(data, data_dir)
    base = backdoors.BackdoorSpec(dataset=data.name, target=datasets.resolve_class(target, data.classes),
                                  trigger=Trigger(trigger, size, position), clean_label=clean_label,
                                  model=model_name(model), train=_training(epochs, batch_size),
                                  defence=check_defence(defence, backdoor=True))
    percent_list = sorted({0.0, *_backdoor_percents(rates, percents)})
    custom = None if isinstance(model, str) else model
    _savable(model, data)
    if out is not None:
        result = backdoors.study(data, base, percent_list, seed_list, Path(out), overwrite=overwrite, model=custom,
                                 jobs=jobs)
        return BackdoorResult(result["doc"], result["files"])
    with tempfile.TemporaryDirectory(prefix="poisonlab-backdoor-") as folder:
        result = backdoors.study(data, base, percent_list, seed_list, Path(folder), model=custom, jobs=jobs)
    return BackdoorResult(result["doc"], [])


@dataclass(frozen=True)
class CertifyResult:
    """A certify study: certify.json's content (clean and certified accuracy, median radius, settings), the
    per-image votes (M, K), predictions (M,), certified radii (M,) and test labels (M,), the files written, and with
    attack budgets attacks.json's content (the accuracy kept under each attack beside the certified bound)."""

    doc: dict
    votes: np.ndarray
    predicted: np.ndarray
    radius: np.ndarray
    labels: np.ndarray
    files: list[Path]
    attacks: dict | None = None

    def frame(self):
        """One row per test image: votes_0 .. votes_{K-1}, predicted, label, radius (a pandas DataFrame)."""
        from poisonlab.studies.certify import frame

        return frame({"votes": self.votes, "predicted": self.predicted, "radius": self.radius, "labels": self.labels})

    def _facts(self) -> list[tuple[str, object]]:
        doc = self.doc
        spread = [("spread", doc["spread"])] if doc.get("spread", 1) > 1 else []
        return [("dataset", doc["dataset"]), ("method", doc["method"]),
                ("partitions", doc["partitions"]), *spread, ("model", doc["model"]), ("test", len(self.labels)),
                ("clean_accuracy", display.number(doc["clean_accuracy"])),
                ("median_radius", display.number(doc["median_radius"], 1))]

    def __repr__(self) -> str:
        """One line: dataset, certificate, partitions, base model, test images, clean accuracy and median radius."""
        return display.summary("CertifyResult", self._facts())

    def _repr_html_(self) -> str:
        """A small table of the settings, and the certified accuracy per poison budget of each certificate."""
        figures = self.doc.get("methods") or {self.doc["method"]: self.doc}  # older studies: one, at the top level
        by_budget = {name: {row["budget"]: row["accuracy"] for row in f["certified_accuracy"]}
                     for name, f in figures.items()}
        budgets = sorted({b for values in by_budget.values() for b in values})
        rows = [(b, *(display.number(by_budget[name].get(b)) for name in figures)) for b in budgets]
        return display.block("CertifyResult", self._facts(),
                             ("budget", *(f"certified accuracy ({name})" for name in figures)), rows)

    def plot(self) -> Figure:
        """Certified accuracy against the number of poisoned training items.

        Returns
        -------
        matplotlib.figure.Figure
            A step line per certificate (e.g. DPA and ROE): the accuracy guaranteed under ANY B poisoned items, with
            the clean accuracy of the aggregate and of one base model for reference.
        """
        from poisonlab.reporting import certifyplots

        return _figure(certifyplots.certified_figure, self.doc)


def certify(data: Dataset | str, *, partitions: int, model: ModelSpec = "smallcnn", method: str | None = None,
            spread: int = 1, kind: str = "none", rate: float = 0.0, select: str = "random",
            target: int | str = 0, trigger: str = "patch", cifar_n: str | Path | None = None, seed: int = 0,
            epochs: int = 10, batch_size: int = 64, lr: float = 1e-3, augment: str = "none", attack_budgets: Sequence[int] | None = None,
            attacks: Sequence[str] = ("random", "biased", "confident"), ordinary_epochs: int | None = None,
            key: str = "poisonlab-dpa", budgets: Sequence[int] | None = None, jobs: int = 1,
            executor: str = "local", address: str | None = None, cpus_per_run: int | None = None,
            stack: str = "auto", out: str | Path | None = None, overwrite: bool = False,
            data_dir: str | Path | None = None) -> CertifyResult:
    """Certify every test prediction against training-set poisoning by partition aggregation (DPA, FA, ROE).

    The training items are split into `partitions` by a keyed hash of their content; one base model is trained per
    partition (FA: k*spread models, each on `spread` of k*spread buckets) and the test images get the class most
    models vote for (ROE: a run-off between the two classes with the most votes). A prediction with certified radius
    r provably survives ANY r poisoned training items (insertions, removals or label flips).

    Parameters
    ----------
    data : Dataset or str
    partitions : int
        k, the number of base models (more: larger radii, weaker base models).
    model : str, callable or estimator
        The base model, as in `train`; torch models train exactly `epochs` epochs on their partition.
    method : {"dpa", "roe", "fa", "fa+roe"}, optional
        The certificate of the result's ``predicted`` and ``radius``: Deep Partition Aggregation, Run-Off Election
        (the same models, two rounds), Finite Aggregation, FA with ROE; default dpa, or fa with a spread above 1.
        ``.doc["methods"]`` holds both certificates the models give (DPA and ROE, or FA and FA+ROE).
    spread : int
        d, the number of models each item trains (FA); 1 for DPA and ROE.
    kind : {"none", "random", "biased", "backdoor"} or "cifar10n:KEY"
        Poison the training set first (`rate` of its items), to certify a model trained on poisoned data: flip
        labels, or stamp `trigger` on items of other classes and relabel them as `target` (``.doc["backdoor"]``:
        the attack success rate of the aggregate and of one base model, and the share of triggered test images
        certified unaffected by every stamped item); or train on CIFAR-10N's human labels (KEY aggre, worse,
        random1..3; the file `cifar_n`, default in `data_dir`).
    rate : float in [0, 1]
    select : {"random", "first", "last", "margin", "confident"}
        Which items label flips change (margin, confident: informed, from a clean-label surrogate).
    target : int or str
        The backdoor's class (number or name).
    trigger : {"patch", "blend"}
    cifar_n : path, optional
    seed : int
        Seed of the poisoning and of each base model (partition i uses seed + i).
    epochs, batch_size : int
    lr : float
        Adam's learning rate (torch base models).
    augment : {"none", "shift", "shift+flip"}
        Torch CNN base models see each item shifted by up to 2 pixels each way (and mirrored left-right).
    attack_budgets : sequence of int, optional
        Then, for each B, flip B labels by each of `attacks` (random, biased, confident: where a clean ordinary
        model is surest), train again the base models they reach and one ordinary model on all items, and record
        their test accuracy beside the certified bound (``.attacks``, attacks.json and guarantee.png).
    attacks : sequence of str
    ordinary_epochs : int, optional
        Epochs of the ordinary torch model; default `epochs`.
    key : str
        The partition hash key (keep it secret from an attacker who could otherwise choose partitions).
    budgets : sequence of int, optional
        Poison budgets B at which to report certified accuracy; default 0 .. the largest radius + 1.
    jobs : int
        Worker processes that train groups of base models (1: in this process; on a CPU, CNN base models train
        one thread per worker).
    executor : {"local", "ray"}
        "ray": groups of base models as Ray tasks of `cpus_per_run` CPUs on the cluster at `address` (default
        $RAY_ADDRESS, else a local Ray instance started and stopped here).
    address : str, optional
    cpus_per_run : int, optional
    stack : {"auto", "on", "off"}
        Train CNN base models 64 at a time as one wide model: "auto" on a CUDA GPU (where it is faster), "on" on a
        CPU too, "off" never.
    out : path, optional
        Folder of certify.json, certify.csv (per image), certified_accuracy.png and each base model's saved test
        predictions (an interrupted study resumes); default a temporary folder.

    Returns
    -------
    CertifyResult
        ``.doc`` (``clean_accuracy``, ``median_radius``, ``certified_accuracy`` per budget, ...) and ``.frame()``.
    """
    from poisonlab.attacks import humanlabels
    from poisonlab.studies import guarantee
    from poisonlab.studies.certify import CertifySpec, placed, study

    seed, data = check_seed(seed), _data(data, data_dir)
    spread = check_int(spread, "spread", low=1)
    method = method if method is not None else ("dpa" if spread == 1 else "fa")
    spec = CertifySpec(partitions=check_int(partitions, "partitions", low=1), model=model_name(model), method=method,
                       spread=spread, augment=augment, kind=kind, select=select, percent=_percent(rate),
                       trigger=trigger, target=datasets.resolve_class(target, data.classes), seed=seed, key=key,
                       train=_training(epochs, batch_size, lr=check_positive(lr, "lr")))
    budget_list = None if budgets is None else [check_int(b, "budgets", low=0) for b in check_nonempty(budgets, "budgets")]
    attack_list = [] if attack_budgets is None else [check_int(b, "attack_budgets", low=1)
                                                     for b in check_nonempty(attack_budgets, "attack_budgets")]
    custom = None if isinstance(model, str) else model
    human = humanlabels.one(kind, data.name, None if cifar_n is None else Path(cifar_n), data_dir, []) \
        if humanlabels.is_kind(kind) else None
    ray = placed(executor, address, cpus_per_run)
    with nullcontext(out) if out is not None else tempfile.TemporaryDirectory(prefix="poisonlab-certify-") as folder:
        result = study(data, spec, Path(folder), model=custom, jobs=check_int(jobs, "jobs", low=1),
                       budgets=budget_list, overwrite=overwrite, human=human, ray=ray, stack=stack)
        attacked = guarantee.study(data, spec, Path(folder), result["doc"], attack_list, kinds=tuple(attacks),
                                   model=custom, jobs=jobs, ordinary_epochs=ordinary_epochs) if attack_list else None
    files = result["files"] + ([Path(out) / "attacks.json", Path(out) / "guarantee.png"] if attacked else [])
    return CertifyResult(result["doc"], result["votes"], result["predicted"], result["radius"], result["labels"],
                         files if out is not None else [], attacked)


def detect(x, labels, *, methods: Sequence[str] = ("cl", "knn", "loss"), pred_probs: np.ndarray | None = None,
           num_classes: int | None = None, seed: int = 0, model: str = "auto", folds: int = 5, epochs: int = 5,
           k: int = 10, members: int = 5, jobs: int = 1) -> dict[str, Detection]:
    """Score every training item for a wrong label and flag the suspicious ones.

    Parameters
    ----------
    x : ndarray, shape (N, H, W[, C]) uint8 images, or (N, D) float features
    labels : array-like of int, shape (N,)
        The (possibly poisoned) labels to check.
    methods : sequence of str
        cl (cleanlab's find_label_issues), knn, knn-pixels, loss, ensemble.
    pred_probs : ndarray, shape (N, K), optional
        Your own out-of-fold class probabilities, as with cleanlab; then no fold models are trained: cl uses them,
        loss ranks their cross-entropy, knn compares the items themselves.
    num_classes : int, optional
        K; default that of `pred_probs`, else max(labels) + 1.
    seed : int
    model : {"auto", "logreg", "smallcnn", "simplecnn"}
        Fold and ensemble model: "auto" is smallcnn for images and logreg (on PCA-50 of the inputs) for feature rows.
    folds, epochs, k, members : int
        Out-of-fold folds, torch epochs, kNN neighbours, ensemble members.
    jobs : int
        Fold and ensemble models trained at once in spawned worker processes, the CPU cores split between them;
        1 trains them in this process. Results equal those of 1 job when each worker trains on the same number of
        torch threads.

    Returns
    -------
    dict of str to Detection
        Per method: ``scores`` (N,) higher = more suspicious, ``flagged`` (N,) bool, ``suggested`` (N,) labels,
        ``seconds``.
    """
    seed = check_seed(seed)
    method_list = check_nonempty(methods, "methods")
    x = as_items(x, "x")
    labels = check_labels(labels, len(x), "labels")
    if pred_probs is not None:
        pred_probs = check_probabilities(pred_probs, len(x))
    default = pred_probs.shape[1] if pred_probs is not None else max(int(labels.max()) + 1, 2)
    k_classes = check_num_classes(default if num_classes is None else num_classes, labels)
    if pred_probs is not None and pred_probs.shape[1] != k_classes:
        raise PoisonlabError(f"pred_probs has {pred_probs.shape[1]} columns but num_classes is {k_classes}; "
                             "give one probability column per class")
    check_choice(model, DETECTOR_MODELS, "detector model")
    config = DetectorConfig(model, check_int(folds, "folds", low=2), check_int(epochs, "epochs", low=1),
                            check_int(k, "k", low=1), check_int(members, "members", low=1), check_int(jobs, "jobs", low=1))
    return {d.method: d for d in detectors.run(method_list, x, labels, k_classes, seed, config, pred_probs)}


def score(detection: Detection, mask) -> dict:
    """Precision, recall, F1 of the flagged items and ROC AUC of the scores against the true poison `mask` (N,)."""
    if not isinstance(detection, Detection):
        raise PoisonlabError(f"detection must be a Detection (a value of the dict pl.detect returns), "
                             f"got {type(detection).__name__}")
    return _score(detection, mask)


def _backdoor_percents(rates: Sequence[float] | None, percents: Sequence[float] | None) -> list[float]:
    """The stamped shares in percent (as the study records them), from `rates` (fractions) or the deprecated
    `percents`."""
    if rates is not None and percents is not None:
        raise PoisonlabError("give rates (fractions) or percents (deprecated), not both")
    if percents is None:
        return [round(100.0 * check_fraction(r, "rates"), 10) for r in check_nonempty((0.001, 0.005, 0.01, 0.05, 0.1)
                                                                              if rates is None else rates, "rates")]
    warnings.warn("backdoor(percents=...) is deprecated: pass rates= as fractions (percents=[5] is rates=[0.05])",
                  FutureWarning, stacklevel=3)
    listed = check_nonempty(percents, "percents")
    for percent in listed:
        if isinstance(percent, bool) or not isinstance(percent, (int, float, np.integer, np.floating)) \
                or not 0 <= float(percent) <= 100:
            raise PoisonlabError(f"percents must be numbers from 0 to 100 (percent of the training items), "
                                 f"got {percent!r}")
    return [float(p) for p in listed]


def results(out: str | Path):
    """Every run saved under results folder `out` as a pandas DataFrame (one row per run, the columns of results.csv)."""
    return store.results_frame(Path(out))
