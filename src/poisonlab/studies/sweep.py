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
from poisonlab.checks import check_choice
from poisonlab.datasets import dataset_record
from poisonlab.errors import PoisonlabError, RunsFailed
from poisonlab.reporting.tracking import Tracking
from poisonlab.studies import executors
from poisonlab.studies.resume import pending
from poisonlab.studies.run import RunSpec
from poisonlab.training.parallel import check_jobs


def plan(
    base: RunSpec, datasets_: Iterable[str], sizes: Iterable[int], kinds: Iterable[str],
    percents: Iterable[float], seeds: Iterable[int], selects: Iterable[str] = ("random",),
    defences: Iterable[str] = ("none",),
) -> list[RunSpec]:
    """Every run of the sweep, in dataset, size, kind, item selection, defence, percent, seed order."""
    return [
        replace(base, dataset=d, dataset_size=n, kind=k, select=c, defence=f, percent=float(p), seed=s)
        for d, n, k, c, f, p, s in itertools.product(datasets_, sizes, kinds, selects, defences, percents, seeds)
    ]


def plan_human(base: RunSpec, sizes: Iterable[int], sets: Iterable[HumanLabels], seeds: Iterable[int],
               defences: Iterable[str] = ("none",)) -> list[RunSpec]:
    """Every CIFAR-10 run on human labels: kind "cifar10n:KEY", percent the measured noise rate of the items used."""
    return [
        replace(base, dataset="cifar10", dataset_size=n, kind=h.kind, percent=h.percent(n), defence=f, seed=s)
        for n, h, f, s in itertools.product(sizes, sets, defences, seeds)
    ]


def execute(
    specs: list[RunSpec], out: Path, data_dir: str | Path | None = None, download: bool = True,
    overwrite: bool = False, console: Console | None = None, loader: Callable = datasets.load,
    human: Iterable[HumanLabels] = (), model=None, jobs: int = 1, stack: str = "auto", executor: str = "local",
    address: str | None = None, cpus_per_run: int | None = None, gpus_per_run: float | None = None,
    data: dict | None = None, tracking: Tracking | None = None,
) -> dict:
    """Run every spec not already finished under `out`, `jobs` at a time (human-label kinds on `human`; `model`
    replaces the built-in one; with jobs > 1, `loader` and `model` must be picklable); with `stack` "on" (or "auto" on
    a CUDA GPU) the runs that differ only in their labels train together as one stacked model; with executor "ray", as
    Ray tasks on the cluster at `address` declaring `cpus_per_run` and `gpus_per_run` (see executors.executor).
    `data`, the dataset record of the one dataset every spec uses (a user's Dataset), guards reuse (see `pending`).
    Each run trained now is also logged to `tracking` (TensorBoard, MLflow) when given.

    Returns the trained and skipped counts and every run's record, in `specs` order. A run that failed twice
    (crashed worker or exception) raises RunsFailed after the others finished."""
    runner = placed(jobs, executor, address, cpus_per_run, gpus_per_run, stack,
                    specs[0].model if model is None and specs else model)
    store.ensure_writable(out)
    console = console or Console(stderr=True)
    todo, records = pending(specs, out, overwrite, console.print, data or _folder_records(loader, data_dir, download))
    if len(todo) < len(specs):
        console.print(f"resuming: {len(specs) - len(todo)} of {len(specs)} runs already finished in {out}")
    job = executors.Job(out, loader, data_dir, download, model, {h.kind: h for h in human}, overwrite)
    failed: dict[RunSpec, str] = {}
    trained = 0
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[status]}"))
    with Progress(*columns, console=console, disable=not console.is_terminal) as bar:  # logs and pipes: lines only
        task = bar.add_task("runs", total=len(todo), status="")

        def report(event: executors.Event) -> None:
            """Show one run's event; record a finished run in the results table (only this process writes it)."""
            nonlocal trained
            label = describe(event.spec)
            if event.kind == "start":
                bar.update(task, description=label, status="")
            elif event.kind == "epoch":
                bar.update(task, description=label,
                           status=f"epoch {event.detail['epoch']} val {event.detail.get('val_accuracy', float('nan')):.3f}")
            elif event.kind == "note":
                bar.console.print(event.detail, highlight=False)
            elif event.kind == "reused":  # another command on the same folder finished it meanwhile
                records[event.spec] = event.detail
                store.record(out, event.detail, out / event.spec.folder())
                bar.update(task, advance=1)
            elif event.kind == "done":
                trained += 1
                record = records[event.spec] = event.detail
                store.record(out, record, out / event.spec.folder())
                bar.update(task, advance=1, status=f"test acc {record['metrics']['accuracy']:.3f}")
                hint = "; still improving at the last epoch: train more epochs" \
                    if record.get("training", {}).get("still_improving") else ""
                bar.console.print(f"[{bar.tasks[0].completed:.0f}/{len(todo)}] {label}: test accuracy "
                                  f"{record['metrics']['accuracy']:.3f} in {record['timings']['total_s']:.1f}s{hint}",
                                  highlight=False)
                for line in tracking.log(record, out / event.spec.folder(), label) if tracking else ():
                    bar.console.print(line, highlight=False)
            elif event.kind == "retry":
                bar.console.print(f"{label}: failed ({event.detail}); retrying it once", highlight=False)
            else:
                failed[event.spec] = event.detail
                bar.update(task, advance=1)
                bar.console.print(f"{label}: failed again ({event.detail}); not saved", highlight=False)

        runner.run(job, todo, report)
    if failed:
        raise RunsFailed(f"{len(failed)} of {len(todo)} runs failed twice ({'; '.join(describe(s) + ': ' + why for s, why in failed.items())}); "
                         "the other runs are saved: run the same command again to retry the failed ones")
    return {"trained": trained, "skipped": len(specs) - trained, "records": [records[s] for s in specs]}


def _folder_records(loader: Callable, data_dir: str | Path | None, download: bool) -> Callable:
    """spec -> the dataset record of an image-folder spec as its files are now (None for built-in datasets, whose
    files are checked against fixed checksums): a saved run made before those files changed is not reused."""
    made: dict[tuple[str, int], dict] = {}

    def record(spec: RunSpec) -> dict | None:
        if not spec.dataset.startswith("imagefolder:"):
            return None
        key = (spec.dataset, spec.dataset_size)
        if key not in made:
            made[key] = dataset_record(loader(spec.dataset, data_dir=data_dir, dataset_size=spec.dataset_size,
                                              download=download))
        return made[key]

    return record


EXECUTORS = ("local", "ray")


def placed(jobs: int = 1, kind: str = "local", address: str | None = None, cpus_per_run: int | None = None,
           gpus_per_run: float | None = None, stack: str = "off", model: object = None) -> executors.Executor:
    """The executor of a sweep's runs: for kind "local", `executors.executor(jobs, stack, model)`; for "ray", Ray tasks
    on the cluster at `address` declaring `cpus_per_run` and `gpus_per_run`, one per run or per stack group (see
    rayexec.RayExecutor)."""
    check_choice(kind, EXECUTORS, "executor")
    check_jobs(jobs)
    if kind == "ray":
        if jobs != 1:
            raise PoisonlabError(f"{jobs} jobs is a setting of the local executor; the ray executor runs as many "
                                 "runs at once as the cluster has CPUs (and GPUs) for")
        from poisonlab.studies.rayexec import RayExecutor  # imports Ray only when it runs

        return RayExecutor(address, cpus_per_run, gpus_per_run, stack, model)
    check_local(address, cpus_per_run, gpus_per_run)
    return executors.executor(jobs, stack, model)


def check_local(address: str | None = None, cpus_per_run: int | None = None, gpus_per_run: float | None = None) -> None:
    """Refuse Ray cluster settings given to the local executor."""
    given = [f"{what} ({value})" for what, value in (("cluster address", address), ("CPUs per run", cpus_per_run),
                                                     ("GPUs per run", gpus_per_run)) if value is not None]
    if given:
        raise PoisonlabError(f"the local executor takes no {', '.join(given)}; choose the ray executor or leave "
                             f"{'it' if len(given) == 1 else 'them'} out")


def describe(spec: RunSpec) -> str:
    """A run's short label, e.g. "mnist_1000 random 10% seed0"."""
    return (f"{spec.dataset}{'_' + str(spec.dataset_size) if spec.dataset_size else ''} {spec.kind}"
            f"{' (' + spec.biased_rule + ' rule)' if spec.biased_rule != 'readme' else ''}"
            f"{' ' + spec.select if spec.select != 'random' else ''} {spec.percent:g}% seed{spec.seed}"
            f"{' ' + spec.defence if spec.defence != 'none' else ''}")
