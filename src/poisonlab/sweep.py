"""Sweeps: every (dataset, size, kind, percent, seed) run, or (size, human label set, seed), resumable, with a progress bar and ETA."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from poisonlab import datasets, store
from poisonlab.errors import PoisonlabError
from poisonlab.experiment import RunSpec, Tensors, run
from poisonlab.humanlabels import HumanLabels
from poisonlab.train import pick_device

DEFAULT_PERCENTS = (0, 1, 2, 3, 4, 5, 7, 10, 15, 20, 25, 30, 35, 40, 50, 60, 70, 80, 90, 100)


def plan(
    base: RunSpec, datasets_: Iterable[str], sizes: Iterable[int], kinds: Iterable[str],
    percents: Iterable[float], seeds: Iterable[int],
) -> list[RunSpec]:
    """Every run of the sweep, in dataset, size, kind, percent, seed order."""
    return [
        replace(base, dataset=d, dataset_size=n, kind=k, percent=float(p), seed=s)
        for d, n, k, p, s in itertools.product(datasets_, sizes, kinds, percents, seeds)
    ]


def plan_human(base: RunSpec, sizes: Iterable[int], sets: Iterable[HumanLabels], seeds: Iterable[int]) -> list[RunSpec]:
    """Every CIFAR-10 run on human labels: kind "cifar10n:KEY", percent the measured noise rate of the items used."""
    return [
        replace(base, dataset="cifar10", dataset_size=n, kind=h.kind, percent=h.percent(n), seed=s)
        for n, h, s in itertools.product(sizes, sets, seeds)
    ]


def finished(out: Path, spec: RunSpec, overwrite: bool) -> dict | None:
    """The saved record of `spec` when it may be reused, None when the run must (re)train."""
    saved = store.read_run(out / spec.folder())
    if saved is None or overwrite:
        return None
    if saved["config"] != spec.to_dict():
        changed = sorted(k for k in spec.to_dict() if saved["config"].get(k) != spec.to_dict()[k])
        raise PoisonlabError(
            f"{out / spec.folder()} holds a run made with other settings ({', '.join(changed)}); "
            "pass --overwrite to replace it or choose another --out"
        )
    return saved


def execute(
    specs: list[RunSpec], out: Path, data_dir: str | Path | None = None, download: bool = True,
    overwrite: bool = False, console: Console | None = None, loader: Callable = datasets.load,
    human: Iterable[HumanLabels] = (),
) -> dict:
    """Run every spec not already finished under `out` (human-label kinds on `human`); returns trained and skipped counts."""
    human_by_kind = {h.kind: h for h in human}
    store.ensure_writable(out)
    console = console or Console(stderr=True)
    todo = []
    for spec in specs:
        saved = finished(out, spec, overwrite)
        if saved is None:
            todo.append(spec)
        else:
            store.record(out, saved, out / spec.folder())
    if len(todo) < len(specs):
        console.print(f"resuming: {len(specs) - len(todo)} of {len(specs)} runs already finished in {out}")
    tensors, loaded = Tensors(pick_device()), {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[status]}"))
    plain = not console.is_terminal  # logs and pipes get one line per run instead of a live bar
    with Progress(*columns, console=console, disable=plain) as bar:
        task = bar.add_task("runs", total=len(todo), status="")
        for spec in todo:
            key = (spec.dataset, spec.dataset_size)
            if key not in loaded:
                loaded.clear()
                loaded[key] = loader(spec.dataset, data_dir=data_dir, dataset_size=spec.dataset_size, download=download)
            label = f"{spec.dataset}{'_' + str(spec.dataset_size) if spec.dataset_size else ''} {spec.kind} {spec.percent:g}% seed{spec.seed}"
            bar.update(task, description=label, status="")

            def show(row: dict) -> None:
                bar.update(task, status=f"epoch {row['epoch']} val {row.get('val_accuracy', float('nan')):.3f}")

            record, model = run(spec, loaded[key], tensors, show, human_by_kind.get(spec.kind))
            run_dir = out / spec.folder()
            data = loaded[key]
            store.save_model(run_dir, model, {"name": spec.model, "shape": list(data.x_train.shape[1:]),
                                              "num_classes": data.num_classes, "seed": spec.seed})
            store.write_json(run_dir / store.RUN_FILE, record)
            store.record(out, record, run_dir)
            bar.update(task, advance=1, status=f"test acc {record['metrics']['accuracy']:.3f}")
            if plain:
                console.print(f"[{bar.tasks[0].completed:.0f}/{len(todo)}] {label}: test accuracy "
                              f"{record['metrics']['accuracy']:.3f} in {record['timings']['total_s']:.1f}s", highlight=False)
    return {"trained": len(todo), "skipped": len(specs) - len(todo)}
