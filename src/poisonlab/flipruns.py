"""Flip runs on disk: train each (N, seed) once under the output folder, reuse finished ones, show progress."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from poisonlab import store, targeted
from poisonlab.datasets import Dataset
from poisonlab.errors import PoisonlabError
from poisonlab.experiment import Tensors
from poisonlab.targeted import FlipSpec
from poisonlab.train import pick_device


class Runner:
    """Trains or reloads flip runs of one base spec on one dataset, with a progress bar."""

    def __init__(self, base: FlipSpec, data: Dataset, out: Path, console: Console, overwrite: bool = False):
        self.base, self.data, self.console, self.overwrite = base, data, console, overwrite
        self.out = store.ensure_writable(out)
        self.tensors, self.trained, self.reused = Tensors(pick_device()), 0, 0
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("{task.fields[status]}"))
        self.plain = not console.is_terminal
        self.progress = Progress(*columns, console=console, disable=self.plain)
        self.task = self.progress.add_task("flip runs", total=None, status="")

    def __enter__(self) -> Runner:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def expect(self, count: int) -> None:
        """Set the bar's total to `count` runs."""
        self.progress.update(self.task, total=count)

    def saved(self, spec: FlipSpec) -> dict | None:
        """The finished record of `spec`, None when it must train; a run with other settings is an error."""
        record = store.read_run(self.out / spec.folder())
        if record is None or self.overwrite:
            return None
        if record["config"] != spec.to_dict():
            changed = sorted(k for k, v in spec.to_dict().items() if record["config"].get(k) != v)
            raise PoisonlabError(f"{self.out / spec.folder()} holds a run made with other settings ({', '.join(changed)}); "
                                 "pass --overwrite to replace it or choose another --out")
        return record

    def get(self, n: int, seed: int) -> dict:
        """The record of N flips with `seed`: reloaded when finished, else trained and saved."""
        spec = replace(self.base, n=n, seed=seed)
        record = self.saved(spec)
        label = f"N={n} seed {seed}"
        if record is not None:
            self.reused += 1
            self.progress.update(self.task, advance=1, description=label, status="already done")
            return record
        self.progress.update(self.task, description=label, status="training")

        def show(row: dict) -> None:
            self.progress.update(self.task, status=f"epoch {row['epoch']}/{spec.epochs} loss {row['train_loss']:.3f}")

        record, model = targeted.run(spec, self.data, self.tensors, show)
        run_dir = self.out / spec.folder()
        store.save_model(run_dir, model, {"name": spec.model, "shape": list(self.data.x_train.shape[1:]),
                                          "num_classes": self.data.num_classes, "seed": seed})
        store.write_json(run_dir / store.RUN_FILE, record)
        self.trained += 1
        accuracy = record["metrics"]["overall_accuracy"]
        self.progress.update(self.task, advance=1, status=f"test acc {accuracy:.4f}")
        if self.plain:
            self.console.print(f"{label}: test accuracy {accuracy:.4f} in {record['train_seconds']:.1f}s", highlight=False)
        return record
