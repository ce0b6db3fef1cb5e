"""A flip study on disk: every (N, seed) run trained once under the output folder, resumed, with progress; then its files."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from poisonlab import store
from poisonlab.attacks import flips
from poisonlab.datasets import Dataset, dataset_record, resolve_class
from poisonlab.checks import check_choice
from poisonlab.reporting import flipplots
from poisonlab.reporting import flips as flipreport
from poisonlab.studies import flip
from poisonlab.studies.flip import FLIP_TRAINING, FlipSpec, check_request, load_data
from poisonlab.studies.claims import trained
from poisonlab.studies.resume import reusable
from poisonlab.training import MODELS
from poisonlab.training.loop import TrainConfig
from poisonlab.training.parallel import check_jobs, pmap


def claimed(spec: FlipSpec, data: Dataset, out: Path, overwrite: bool = False, model=None,
            note: Callable[[str], None] = lambda text: print(text, file=sys.stderr),
            on_epoch: Callable[[dict], None] | None = None) -> tuple[str, dict]:
    """Under the run folder's claim: ("reused", record) when another command finished the run meanwhile (unless
    `overwrite`), else train it, write its folder and return ("done", record)."""
    return trained(out / spec.folder(), spec.to_dict(), lambda: flip.run(spec, data, model=model, on_epoch=on_epoch),
                   {"name": spec.model, "shape": list(data.x_train.shape[1:]), "num_classes": data.num_classes,
                    "seed": spec.seed}, overwrite=overwrite, note=note)


def claimed_in_worker(shared: tuple, spec: FlipSpec) -> tuple[str, dict]:
    """`claimed` in a worker process, `shared` being (data, out, overwrite, model)."""
    return claimed(spec, *shared)


class Runner:
    """Trains or reloads flip runs of one base spec on one dataset, `jobs` at a time, with a progress bar."""

    def __init__(self, base: FlipSpec, data: Dataset, out: Path, console: Console | None = None, overwrite: bool = False,
                 *, model=None, jobs: int = 1):
        self.base, self.data, self.overwrite, self.model, self.jobs = base, data, overwrite, model, check_jobs(jobs)
        self.console = console or Console(stderr=True)
        self.out = store.ensure_writable(out)
        self.trained, self.reused = 0, 0
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("{task.fields[status]}"))
        self.progress = Progress(*columns, console=self.console, disable=not self.console.is_terminal)
        self.task = self.progress.add_task("flip runs", total=None, status="")

    def __enter__(self) -> Runner:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def expect(self, count: int) -> None:
        """Set the bar's total to `count` runs."""
        self.progress.update(self.task, total=count)

    def get(self, n: int, seed: int) -> dict:
        """The record of N flips with `seed`: reloaded when finished, else trained here and saved under the run's claim."""
        spec = replace(self.base, n=n, seed=seed)
        note = self.progress.console.print
        record = reusable(self.out / spec.folder(), spec.to_dict(), self.overwrite, note, data=dataset_record(self.data))
        if record is None:
            self.progress.update(self.task, description=label(spec), status="training")

            def show(row: dict) -> None:
                self.progress.update(self.task, status=f"epoch {row['epoch']}/{spec.train.max_epochs} loss {row['train_loss']:.3f}")

            kind, record = claimed(spec, self.data, self.out, self.overwrite, self.model, note, show)
        else:
            kind = "reused"
        self._count(spec, kind, record)
        return record

    def get_all(self, pairs: list[tuple[int, int]]) -> list[dict]:
        """The records of each (N, seed): with 1 job one `get` after another, else the unfinished runs `jobs` at a
        time in worker processes (each writing its own run folder)."""
        if self.jobs == 1:
            return [self.get(n, seed) for n, seed in pairs]
        specs = [replace(self.base, n=n, seed=seed) for n, seed in pairs]
        records: dict[FlipSpec, dict] = {}
        for spec in specs:
            record = reusable(self.out / spec.folder(), spec.to_dict(), self.overwrite, self.progress.console.print,
                              data=dataset_record(self.data))
            if record is not None:
                records[spec] = record
                self._count(spec, "reused", record)
        todo = [spec for spec in specs if spec not in records]
        self.progress.update(self.task, description=f"{len(todo)} runs, {self.jobs} at a time", status="training")

        def collect(index: int, result: tuple[str, dict]) -> None:
            records[todo[index]] = result[1]
            self._count(todo[index], *result)

        pmap(claimed_in_worker, todo, self.jobs, context=(self.data, self.out, self.overwrite, self.model),
             on_result=collect, note=self.progress.console.print, label=label)
        return [records[spec] for spec in specs]

    def _count(self, spec: FlipSpec, kind: str, record: dict) -> None:
        """Count and show one finished run: "done" (trained now) or "reused"."""
        if kind == "reused":
            self.reused += 1
            self.progress.update(self.task, advance=1, description=label(spec), status="already done")
            return
        self.trained += 1
        accuracy = record["metrics"]["overall_accuracy"]
        self.progress.update(self.task, advance=1, status=f"test acc {accuracy:.4f}")
        self.progress.console.print(f"{label(spec)}: test accuracy {accuracy:.4f} in {record['train_seconds']:.1f}s",
                                    highlight=False)


def label(spec: FlipSpec) -> str:
    """A flip run's short label, e.g. "N=5 seed 0"."""
    return f"N={spec.n} seed {spec.seed}"


def prepare(dataset: str | Dataset, source: str | int, target: str | int, counts: list[int], *, model: str = "simplecnn",
            select: str = "first", train_size: int = 0, test_size: int = 0, train: TrainConfig = FLIP_TRAINING,
            data_dir: str | Path | None = None, download: bool = True) -> tuple[FlipSpec, Dataset]:
    """Check the settings, load the data (or take the given `Dataset`) and resolve the classes.

    Returns the clean run's spec and the data."""
    check_choice(model, MODELS, "model")
    check_choice(select, flips.SELECTIONS, "selection")
    if isinstance(dataset, Dataset):
        data, name = dataset, dataset.name
    else:
        data, name = load_data(dataset, data_dir, train_size, test_size, download), dataset
    src, tgt = resolve_class(source, data.classes), resolve_class(target, data.classes)
    check_request(data.y_train, data.classes, src, tgt, counts)
    base = FlipSpec(dataset=name, source=src, target=tgt, n=0, select=select, model=model, train_size=train_size,
                    test_size=test_size, train=train)
    return base, data


def default_out(kind: str, base: FlipSpec, data: Dataset) -> Path:
    """runs/{kind}-{dataset}-{source}-{target}."""
    return Path("runs") / store.slug(f"{kind}-{base.dataset}-{data.classes[base.source]}-{data.classes[base.target]}")


def run_flip(base: FlipSpec, data: Dataset, counts: list[int], seeds: list[int], out: Path, console: Console | None = None,
             *, overwrite: bool = False, json_path: Path | None = None, model=None, jobs: int = 1) -> dict:
    """Train the clean model and each N for every seed (resuming; `jobs` runs at a time, see `Runner.get_all`), then
    write flip.json, report.md and figures/ (in this process only)."""
    ns = sorted({0, *counts})
    with Runner(base, data, out, console, overwrite, model=model, jobs=jobs) as runner:
        runner.expect(len(ns) * len(seeds))
        records = runner.get_all([(n, seed) for n in ns for seed in seeds])
    doc = flipreport.document(records, base.source, base.target)
    for path in (out / "flip.json", json_path):
        if path is not None:
            store.write_json(path, doc)
    store.atomic_write(out / "report.md", flipreport.markdown(doc))
    figures = flipplots.write_all(doc, data, out / "figures")
    return {"doc": doc, "figures": figures, "trained": runner.trained, "reused": runner.reused,
            "files": [out / "flip.json", out / "report.md", *([json_path] if json_path else [])]}
