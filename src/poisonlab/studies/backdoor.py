"""The backdoor study: per (percent, seed) stamp a trigger on training items, train, and measure clean test accuracy
and attack success rate (ASR); resumable on disk with a progress bar, then backdoor.json and its figures."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from poisonlab import store
from poisonlab.attacks.backdoor import (Trigger, attack_success_rate, backdoor, pattern, poison_indices, stamp,
                                        triggered)
from poisonlab.datasets import Dataset
from poisonlab.defences import strip
from poisonlab.errors import PoisonlabError
from poisonlab.reporting import backdoorplots
from poisonlab.studies import claims, defence
from poisonlab.studies.resume import pending
from poisonlab.datasets import dataset_record
from poisonlab.studies.run import DEFAULT_MODEL, environment, split_indices
from poisonlab.training import TORCH_MODELS, fitting, metrics, models
from poisonlab.training.loop import TrainConfig, pick_device, settings
from poisonlab.training.parallel import check_jobs, pmap

ASR_GOAL = 0.9
BACKDOOR_FILE = "backdoor.json"


@dataclass(frozen=True)
class BackdoorSpec:
    """Everything that defines one backdoor run."""

    dataset: str
    target: int
    percent: float = 0.0
    seed: int = 0
    dataset_size: int = 0
    trigger: Trigger = field(default_factory=Trigger)
    clean_label: bool = False
    model: str = DEFAULT_MODEL
    val: str = "split"
    val_fraction: float = 0.1
    train: TrainConfig = field(default_factory=TrainConfig)
    defence: str = "none"

    def __post_init__(self) -> None:
        defence.check_defence(self.defence, backdoor=True)

    @property
    def kind(self) -> str:
        """The results table's kind: backdoor, or backdoor-clean-label."""
        return "backdoor-clean-label" if self.clean_label else "backdoor"

    def to_dict(self) -> dict:
        """The config recorded in run.json; `defence` only when not "none", so older runs stay reusable."""
        config = {"kind": self.kind, **settings(self)}
        if config["defence"] == "none":
            del config["defence"]
        return config

    def name(self) -> str:
        """backdoor_{dataset}[_{size}][_{model}]_{trigger}{size}-{position}_to{target}[_cleanlabel][_{defence}]."""
        name = f"backdoor_{store.slug(self.dataset)}" + (f"_{self.dataset_size}" if self.dataset_size else "")
        name += f"_{store.slug(self.model)}" if self.model != DEFAULT_MODEL else ""
        name += f"_{self.trigger.kind}" + (f"{self.trigger.size}-{self.trigger.position}" if self.trigger.kind == "patch" else "")
        name += f"_to{self.target}" + ("_cleanlabel" if self.clean_label else "")
        return name + (f"_{store.slug(self.defence)}" if self.defence != "none" else "")

    def folder(self) -> Path:
        """models/{name}/{percent}/seed{S} relative to the output folder."""
        return Path("models") / self.name() / f"{self.percent:g}" / f"seed{self.seed}"


def run(spec: BackdoorSpec, data: Dataset, *, model: models.ModelSpec | None = None,
        on_epoch: Callable[[dict], None] | None = None) -> tuple[dict, object]:
    """Carry out one backdoor run, with its defence (a cleaning step before training, a training remedy, a repair of
    the trained model or STRIP in front of it); returns (run.json record, trained model)."""
    started = time.perf_counter()
    x, labels, idx = backdoor(data.x_train, data.y_train, trigger=spec.trigger, target=spec.target,
                              percent=spec.percent, clean_label=spec.clean_label, seed=spec.seed)
    mask = np.zeros(len(labels), bool)
    mask[idx] = True
    trained, keep, defended = defence.clean(spec.defence, x, labels, mask, data.num_classes, spec.seed)
    fit_idx, val_idx = split_indices(len(labels), spec.val_fraction, spec.seed)
    fit_idx, val_idx = fit_idx[keep[fit_idx]], val_idx[keep[val_idx]]
    fitted = fitting.build(spec.model if model is None else model, x.shape[1:], data.num_classes, spec.seed)
    device = pick_device() if isinstance(fitted, torch.nn.Module) else torch.device("cpu")
    t0 = time.perf_counter()
    training = fitting.fit(fitted, x[fit_idx], trained[fit_idx], x[val_idx], trained[val_idx], config=spec.train,
                           seed=spec.seed, device=device, on_epoch=on_epoch, remedy=defence.remedy(spec.defence))
    train_s = time.perf_counter() - t0
    x_trig, y_trig = triggered(data.x_test, data.y_test, trigger=spec.trigger, target=spec.target, seed=spec.seed + 1)
    summary = measure(fitted, data, x_trig, y_trig, spec.target)
    if defence.uses_trusted(spec.defence):
        before = {key: summary[key] for key in ("accuracy", "attack_success_rate")}
        if spec.defence.partition(":")[0] == "strip":
            trusted = x[defence.trusted_items(mask, defence.trusted_share(spec.defence), spec.seed)]
            defended = guard(spec, fitted, trusted, data, x_trig, y_trig, summary)
        else:
            defended = defence.repair(spec.defence, fitted, x, labels, mask, spec.seed)
            summary = measure(fitted, data, x_trig, y_trig, spec.target)
        defended["before"] = before
    record = {
        "status": "complete",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": spec.to_dict(),
        "dataset": dataset_record(data),
        "poison": {"kind": spec.kind, "percent": spec.percent, "n_poisoned": len(idx),
                   "rate": len(idx) / len(labels), "indices": idx.tolist(),
                   "original_labels": data.y_train[idx].tolist(), "new_labels": labels[idx].tolist(),
                   "target": spec.target, "target_name": data.classes[spec.target], "trigger": spec.trigger.to_dict(),
                   "clean_label": spec.clean_label},
        "split": {"val": spec.val, "n_fit": len(fit_idx), "n_val": len(val_idx),
                  "val_label": "held-out 10% of the poisoned (stamped) training data"},
        "training": training,
        **({"defence": defended or defence.settings(spec.defence)} if spec.defence != "none" else {}),
        "metrics": summary,
        "model": {"name": spec.model, "parameters": models.count_parameters(fitted) if isinstance(fitted, torch.nn.Module) else None},
        "timings": {"train_s": round(train_s, 3), "total_s": round(time.perf_counter() - started, 3)},
        "environment": environment(device),
    }
    return record, fitted


def measure(model, data: Dataset, x_trig: np.ndarray, y_trig: np.ndarray, target: int) -> dict:
    """`model`'s test metrics (see `metrics.summary`) with its attack success rate on the triggered test items."""
    summary = metrics.summary(data.y_test, fitting.predict(model, data.x_test), data.num_classes)
    summary["attack_success_rate"] = attack_success_rate(fitting.predict(model, x_trig), y_trig, target)
    summary["triggered_test_items"] = len(y_trig)
    return summary


def guard(spec: BackdoorSpec, model, trusted: np.ndarray, data: Dataset, x_trig: np.ndarray, y_trig: np.ndarray,
          summary: dict) -> dict:
    """STRIP in front of `model`, its overlays drawn from the `trusted` images, its threshold set at strip.FRR on the
    clean test images. `summary`'s accuracy, per-class accuracy and attack success rate become the guarded model's
    (a rejected input is neither correct nor a success; the confusion matrix stays the model's own). Returns the
    defence's record with STRIP's figures."""
    started = time.perf_counter()
    clean = strip.entropy(model, data.x_test, trusted, data.num_classes, seed=spec.seed)
    stamped = strip.entropy(model, x_trig, trusted, data.num_classes, seed=spec.seed)
    found = strip.scores(clean, stamped)
    correct = (fitting.predict(model, data.x_test) == data.y_test) & (clean >= found["threshold"])
    totals = np.bincount(data.y_test, minlength=data.num_classes)
    hits = np.bincount(data.y_test[correct], minlength=data.num_classes)
    summary["accuracy"] = float(correct.mean())
    summary["per_class_accuracy"] = [float(h / t) if t else None for h, t in zip(hits, totals)]
    accepted = np.where(stamped >= found["threshold"], fitting.predict(model, x_trig), -1)
    summary["attack_success_rate"] = attack_success_rate(accepted, y_trig, spec.target)
    return {**defence.settings(spec.defence), "n_trusted": len(trusted), "overlays": strip.OVERLAYS, "strip": found,
            "rejected_clean": int((clean < found["threshold"]).sum()), "seconds": round(time.perf_counter() - started, 3)}


def check(data: Dataset, base: BackdoorSpec, percents: list[float]) -> None:
    """Reject a target outside the classes, non-image data, a trigger that does not fit, a trusted-set defence
    without a torch model, or too large a percent."""
    if not 0 <= base.target < data.num_classes:
        raise PoisonlabError(f"target class {base.target} is outside 0..{data.num_classes - 1}; give a class of {data.name}")
    if data.x_train.dtype != np.uint8 or data.x_train.ndim != 4:
        raise PoisonlabError(f"{data.name} items are {data.x_train.dtype} {data.x_train.shape[1:]}, not uint8 images; "
                             "backdoor triggers need an image dataset")
    pattern(base.trigger, data.x_train.shape[1:])
    if defence.uses_trusted(base.defence) and isinstance(base.model, str) and base.model not in TORCH_MODELS:
        raise PoisonlabError(f"defence {base.defence} needs a torch model, not {base.model}; choose one of "
                             f"{', '.join(TORCH_MODELS)}")
    for percent in percents:
        poison_indices(data.y_train, target=base.target, percent=percent, clean_label=base.clean_label, seed=base.seed)


def claimed(spec: BackdoorSpec, data: Dataset, out: Path, overwrite: bool = False, model=None,
            note: Callable[[str], None] = lambda text: print(text, file=sys.stderr),
            on_epoch: Callable[[dict], None] | None = None) -> tuple[str, dict]:
    """Under the run folder's claim: ("reused", record) when another command finished the run meanwhile (unless
    `overwrite`), else train it, write its folder and return ("done", record)."""
    return claims.trained(out / spec.folder(), spec.to_dict(), lambda: run(spec, data, model=model, on_epoch=on_epoch),
                          {"name": spec.model, "shape": list(data.x_train.shape[1:]), "num_classes": data.num_classes,
                           "seed": spec.seed}, overwrite=overwrite, note=note, row=True, data=dataset_record(data))


def claimed_in_worker(shared: tuple, spec: BackdoorSpec) -> tuple[str, dict]:
    """`claimed` in a worker process, `shared` being (data, out, overwrite, model)."""
    return claimed(spec, *shared)


def label(spec: BackdoorSpec) -> str:
    """A backdoor run's short label: its name, percent and seed."""
    return f"{spec.name()} {spec.percent:g}% seed{spec.seed}"


def execute(specs: list[BackdoorSpec], data: Dataset, out: Path, *, overwrite: bool = False,
            console: Console | None = None, model=None, jobs: int = 1) -> dict:
    """Run every spec not already finished under `out` (reusing those made with the same settings), `jobs` at a time
    in worker processes (each writing its own run folder), saving each run's results-table row here; returns the
    trained and skipped counts and the records in `specs` order."""
    check_jobs(jobs)
    store.ensure_writable(out)
    console = console or Console(stderr=True)
    todo, records = pending(specs, out, overwrite, console.print, dataset_record(data))
    if len(todo) < len(specs):
        console.print(f"resuming: {len(specs) - len(todo)} of {len(specs)} backdoor runs already finished in {out}")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[status]}"))
    trained = 0
    with Progress(*columns, console=console, disable=not console.is_terminal) as bar:
        task = bar.add_task("backdoor runs", total=len(todo), status="")

        def finished(spec: BackdoorSpec, kind: str, record: dict) -> None:
            """Record a finished run in the results table (only this process writes it) and show it."""
            nonlocal trained
            trained += kind == "done"
            store.record(out, record, out / spec.folder())
            records[spec] = record
            found = record["metrics"]
            bar.update(task, advance=1, status=f"ASR {found['attack_success_rate']:.3f}")
            bar.console.print(f"[{bar.tasks[0].completed:.0f}/{len(todo)}] {label(spec)}: clean accuracy "
                              f"{found['accuracy']:.3f}, attack success rate {found['attack_success_rate']:.3f}",
                              highlight=False)

        if jobs == 1:
            for spec in todo:
                bar.update(task, description=label(spec), status="")
                finished(spec, *claimed(spec, data, out, overwrite, model, bar.console.print, lambda row: bar.update(
                    task, status=f"epoch {row['epoch']} val {row.get('val_accuracy', float('nan')):.3f}")))
        else:
            bar.update(task, description=f"{len(todo)} backdoor runs, {jobs} at a time")
            pmap(claimed_in_worker, todo, jobs, context=(data, out, overwrite, model),
                 on_result=lambda index, result: finished(todo[index], *result), note=bar.console.print, label=label)
    return {"trained": trained, "skipped": len(specs) - trained, "records": [records[s] for s in specs]}


def _spread(values: list[float]) -> dict:
    """Mean, min, max and sample std (None for one seed) of per-seed values."""
    a = np.asarray(values, dtype=float)
    return {"mean": float(a.mean()), "min": float(a.min()), "max": float(a.max()),
            "std": float(a.std(ddof=1)) if len(a) > 1 else None}


def document(base: BackdoorSpec, data: Dataset, records: list[dict]) -> dict:
    """The backdoor.json document: settings, one row per run, the per-percent seed summary and the smallest percent
    whose mean ASR reaches ASR_GOAL; a defence that works on the trained model (finetune, fineprune, strip) adds the
    figures before it (`before`) and STRIP its false acceptance at each false-rejection rate (`strip_curve`)."""
    runs = []
    for r in records:
        row = {"percent": r["config"]["percent"], "seed": r["config"]["seed"], "n_poisoned": r["poison"]["n_poisoned"],
               "accuracy": r["metrics"]["accuracy"], "attack_success_rate": r["metrics"]["attack_success_rate"],
               "run_dir": replace(base, percent=r["config"]["percent"], seed=r["config"]["seed"]).folder().as_posix()}
        if "before" in r.get("defence", {}):
            row["before"] = r["defence"]["before"]
        if "strip" in r.get("defence", {}):
            row["strip_curve"] = r["defence"]["strip"]["curve"]
        runs.append(row)
    summary = []
    for percent in sorted({r["percent"] for r in runs}):
        rows = [r for r in runs if r["percent"] == percent]
        summary.append({"percent": percent, "n_poisoned": rows[0]["n_poisoned"], "seeds": len(rows),
                        "accuracy": _spread([r["accuracy"] for r in rows]),
                        "attack_success_rate": _spread([r["attack_success_rate"] for r in rows])})
        if all("before" in r for r in rows):
            summary[-1]["before"] = {key: _spread([r["before"][key] for r in rows])
                                     for key in ("accuracy", "attack_success_rate")}
        if all("strip_curve" in r for r in rows):
            curves = [r["strip_curve"] for r in rows]
            summary[-1]["strip_curve"] = [{"frr": point["frr"], "far": float(np.mean([c[i]["far"] for c in curves]))}
                                          for i, point in enumerate(curves[0])]
    reached = [s["percent"] for s in summary if s["attack_success_rate"]["mean"] >= ASR_GOAL]
    return {"dataset": base.dataset, "dataset_size": base.dataset_size, "name": base.name(), "kind": base.kind,
            "target": base.target, "target_name": data.classes[base.target], "classes": data.classes,
            "trigger": base.trigger.to_dict(), "clean_label": base.clean_label, "model": base.model,
            "train": base.train.to_dict(), "defence": base.defence, "n_train": len(data.y_train), "n_test": len(data.y_test),
            "seeds": sorted({r["seed"] for r in runs}), "asr_goal": ASR_GOAL,
            "smallest_percent_reaching_goal": min(reached) if reached else None, "runs": runs, "summary": summary}


def study(data: Dataset, base: BackdoorSpec, percents: list[float], seeds: list[int], out: Path, *,
          overwrite: bool = False, console: Console | None = None, model=None, jobs: int = 1) -> dict:
    """Every (percent, seed) run under `out` (resuming; `jobs` at a time, see `execute`), then {out}/backdoor/{name}/backdoor.json and its figures.

    Returns the document, the figure paths and the trained and skipped counts."""
    check(data, base, percents)
    specs = [replace(base, percent=float(p), seed=s) for p in dict.fromkeys(percents) for s in dict.fromkeys(seeds)]
    done = execute(specs, data, out, overwrite=overwrite, console=console, model=model, jobs=jobs)
    doc = document(base, data, done["records"])
    folder = out / "backdoor" / base.name()
    store.write_json(folder / BACKDOOR_FILE, doc)
    stamped = (data.y_train == base.target) if base.clean_label else (data.y_train != base.target)
    x_show = data.x_train[np.flatnonzero(stamped)[: backdoorplots.GRID]]
    figures = backdoorplots.write_all(doc, x_show, stamp(x_show, base.trigger, seed=base.seed), folder)
    return {"doc": doc, "files": [folder / BACKDOOR_FILE, *figures], "trained": done["trained"], "skipped": done["skipped"]}
