"""Sweeps: every (dataset, size, kind, percent, seed) run, or (size, human label set, seed), resumable, with a progress bar and ETA."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from poisonlab import datasets, store
from poisonlab.attacks.humanlabels import HumanLabels
from poisonlab.studies.resume import reusable
from poisonlab.studies.run import RunSpec, run
from poisonlab.training.saving import save_model


def plan(
    base: RunSpec, datasets_: Iterable[str], sizes: Iterable[int], kinds: Iterable[str],
    percents: Iterable[float], seeds: Iterable[int], selects: Iterable[str] = ("random",),
) -> list[RunSpec]:
    """Every run of the sweep, in dataset, size, kind, item selection, percent, seed order."""
    return [
        replace(base, dataset=d, dataset_size=n, kind=k, select=c, percent=float(p), seed=s)
        for d, n, k, c, p, s in itertools.product(datasets_, sizes, kinds, selects, percents, seeds)
    ]


def plan_human(base: RunSpec, sizes: Iterable[int], sets: Iterable[HumanLabels], seeds: Iterable[int]) -> list[RunSpec]:
    """Every CIFAR-10 run on human labels: kind "cifar10n:KEY", percent the measured noise rate of the items used."""
    return [
        replace(base, dataset="cifar10", dataset_size=n, kind=h.kind, percent=h.percent(n), seed=s)
        for n, h, s in itertools.product(sizes, sets, seeds)
    ]


def execute(
    specs: list[RunSpec], out: Path, data_dir: str | Path | None = None, download: bool = True,
    overwrite: bool = False, console: Console | None = None, loader: Callable = datasets.load,
    human: Iterable[HumanLabels] = (), model=None,
) -> dict:
    """Run every spec not already finished under `out` (human-label kinds on `human`; `model` replaces the built-in one).

    Returns the trained and skipped counts and every run's record, in `specs` order."""
    human_by_kind = {h.kind: h for h in human}
    store.ensure_writable(out)
    console = console or Console(stderr=True)
    todo, records = [], {}
    for spec in specs:
        saved = reusable(out / spec.folder(), spec.to_dict(), overwrite)
        if saved is None:
            todo.append(spec)
        else:
            records[spec] = saved
            store.record(out, saved, out / spec.folder())
    if len(todo) < len(specs):
        console.print(f"resuming: {len(specs) - len(todo)} of {len(specs)} runs already finished in {out}")
    loaded = {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[status]}"))
    with Progress(*columns, console=console, disable=not console.is_terminal) as bar:  # logs and pipes: lines only
        task = bar.add_task("runs", total=len(todo), status="")
        for spec in todo:
            key = (spec.dataset, spec.dataset_size)
            if key not in loaded:
                loaded.clear()
                loaded[key] = loader(spec.dataset, data_dir=data_dir, dataset_size=spec.dataset_size, download=download)
            label = (f"{spec.dataset}{'_' + str(spec.dataset_size) if spec.dataset_size else ''} {spec.kind}"
                     f"{' ' + spec.select if spec.select != 'random' else ''} {spec.percent:g}% seed{spec.seed}")
            bar.update(task, description=label, status="")

            def show(row: dict) -> None:
                bar.update(task, status=f"epoch {row['epoch']} val {row.get('val_accuracy', float('nan')):.3f}")

            record, fitted = run(spec, loaded[key], model=model, human=human_by_kind.get(spec.kind), on_epoch=show)
            run_dir = out / spec.folder()
            data = loaded[key]
            save_model(run_dir, fitted, {"name": spec.model, "shape": list(data.x_train.shape[1:]),
                                              "num_classes": data.num_classes, "seed": spec.seed})
            store.write_json(run_dir / store.RUN_FILE, record)
            store.record(out, record, run_dir)
            records[spec] = record
            bar.update(task, advance=1, status=f"test acc {record['metrics']['accuracy']:.3f}")
            bar.console.print(f"[{bar.tasks[0].completed:.0f}/{len(todo)}] {label}: test accuracy "
                              f"{record['metrics']['accuracy']:.3f} in {record['timings']['total_s']:.1f}s", highlight=False)
    return {"trained": len(todo), "skipped": len(specs) - len(todo), "records": [records[s] for s in specs]}
