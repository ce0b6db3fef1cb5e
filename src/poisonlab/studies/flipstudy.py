"""A flip study on disk: every (N, seed) run trained once under the output folder, resumed, with progress; then its files."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from poisonlab import store
from poisonlab.attacks import flips
from poisonlab.datasets import Dataset, resolve_class
from poisonlab.errors import check_choice
from poisonlab.reporting import flipplots
from poisonlab.reporting import flips as flipreport
from poisonlab.studies import flip
from poisonlab.studies.flip import FLIP_TRAINING, FlipSpec, check_request, load_data
from poisonlab.studies.claims import claim
from poisonlab.studies.resume import finish, reusable
from poisonlab.training import MODELS
from poisonlab.training.loop import TrainConfig


class Runner:
    """Trains or reloads flip runs of one base spec on one dataset, with a progress bar."""

    def __init__(self, base: FlipSpec, data: Dataset, out: Path, console: Console | None = None, overwrite: bool = False,
                 *, model=None):
        self.base, self.data, self.overwrite, self.model = base, data, overwrite, model
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
        """The record of N flips with `seed`: reloaded when finished, else trained and saved under the run's claim."""
        spec = replace(self.base, n=n, seed=seed)
        run_dir, label, note = self.out / spec.folder(), f"N={n} seed {seed}", self.progress.console.print
        record = reusable(run_dir, spec.to_dict(), self.overwrite, note)
        if record is None:
            with claim(run_dir, spec.to_dict(), wait=True, note=note):
                record = None if self.overwrite else reusable(run_dir, spec.to_dict(), False)
                if record is None:
                    return self._train(spec, run_dir, label)
        self.reused += 1
        self.progress.update(self.task, advance=1, description=label, status="already done")
        return record

    def _train(self, spec: FlipSpec, run_dir: Path, label: str) -> dict:
        """Train, save and return the record of one flip run."""
        self.progress.update(self.task, description=label, status="training")

        def show(row: dict) -> None:
            self.progress.update(self.task, status=f"epoch {row['epoch']}/{spec.train.max_epochs} loss {row['train_loss']:.3f}")

        record, model = flip.run(spec, self.data, model=self.model, on_epoch=show)
        record = finish(run_dir, record, model, {"name": spec.model, "shape": list(self.data.x_train.shape[1:]),
                                                 "num_classes": self.data.num_classes, "seed": spec.seed})
        self.trained += 1
        accuracy = record["metrics"]["overall_accuracy"]
        self.progress.update(self.task, advance=1, status=f"test acc {accuracy:.4f}")
        self.progress.console.print(f"{label}: test accuracy {accuracy:.4f} in {record['train_seconds']:.1f}s", highlight=False)
        return record


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
             *, overwrite: bool = False, json_path: Path | None = None, model=None) -> dict:
    """Train the clean model and each N for every seed (resuming), then write flip.json, report.md and figures/."""
    ns = sorted({0, *counts})
    with Runner(base, data, out, console, overwrite, model=model) as runner:
        runner.expect(len(ns) * len(seeds))
        records = [runner.get(n, seed) for n in ns for seed in seeds]
    doc = flipreport.document(records, base.source, base.target)
    for path in (out / "flip.json", json_path):
        if path is not None:
            store.write_json(path, doc)
    store.atomic_write(out / "report.md", flipreport.markdown(doc))
    figures = flipplots.write_all(doc, data, out / "figures")
    return {"doc": doc, "figures": figures, "trained": runner.trained, "reused": runner.reused,
            "files": [out / "flip.json", out / "report.md", *([json_path] if json_path else [])]}
