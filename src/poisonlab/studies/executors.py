"""Executors of a sweep's independent runs: in this process, or in worker processes, behind one small interface.

An executor takes a `Job`, the specs to train and a callback that receives each run's `Event`s; the caller alone
writes the results table.
Each finished run's folder (weights, then run.json, atomically) is written where it trained. `Stacked` trains the runs
that differ only in their labels as one stacked model (the fast path on a GPU). Ray tasks on a cluster are one more
class with the same `run` method (rayexec.RayExecutor)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from poisonlab.attacks.humanlabels import HumanLabels
from poisonlab.errors import PoisonlabError
from poisonlab.studies import claims
from poisonlab.studies.resume import finish, reusable
from poisonlab.studies.run import RunSpec, run, run_stacked, stack_key
from poisonlab.training import STACK_MODES, TORCH_MODELS
from poisonlab.training.loop import pick_device
from poisonlab.training.parallel import check_jobs, stream

STACK_LIMIT = 64  # most runs trained in one stack


@dataclass(frozen=True)
class Job:
    """What every run of a sweep shares: the output folder, how to load its data, the model, the human label sets."""

    out: Path
    loader: Callable
    data_dir: str | Path | None = None
    download: bool = True
    model: object = None
    human: dict[str, HumanLabels] = field(default_factory=dict)
    overwrite: bool = False


@dataclass(frozen=True)
class Event:
    """What happened to one run: "start", "epoch" (detail: the epoch row), "note" (detail: text), "done" or "reused"
    (the run.json record; reused: another command finished it meanwhile), "retry" or "failed" (detail: why)."""

    kind: str
    spec: RunSpec
    detail: object = None


class Trainer:
    """Trains and saves the runs of one job in this process, keeping the last dataset loaded."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.loaded: dict[tuple[str, int], object] = {}

    def __call__(self, spec: RunSpec, on_epoch: Callable[[dict], None] | None = None,
                 note: Callable[[str], None] = lambda text: None, wait: bool = True) -> tuple[str, dict | None]:
        """Train `spec` while holding its run folder's claim and write the folder (weights, then run.json).

        Returns ("done", record), ("reused", record) when another command finished the run meanwhile, or, without
        `wait`, ("busy", None) when another command holds the claim."""
        run_dir = self.job.out / spec.folder()
        with claims.claim(run_dir, spec.to_dict(), wait=wait, note=note) as held:
            if not held:
                return "busy", None
            saved = None if self.job.overwrite else reusable(run_dir, spec.to_dict(), False, note, row=True)
            if saved is not None:
                return "reused", saved
            data = self.data(spec)
            record, fitted = run(spec, data, model=self.job.model, human=self.job.human.get(spec.kind), on_epoch=on_epoch)
            return "done", self.finish(spec, record, fitted)

    def data(self, spec: RunSpec):
        """The dataset of `spec`, loaded once for consecutive runs on it."""
        key = (spec.dataset, spec.dataset_size)
        if key not in self.loaded:
            self.loaded.clear()
            self.loaded[key] = self.job.loader(spec.dataset, data_dir=self.job.data_dir,
                                               dataset_size=spec.dataset_size, download=self.job.download)
        return self.loaded[key]

    def finish(self, spec: RunSpec, record: dict, fitted) -> dict:
        """Write a trained run's folder; returns its record with the weights' SHA-256."""
        data = self.loaded[(spec.dataset, spec.dataset_size)]
        return finish(self.job.out / spec.folder(), record, fitted, {"name": spec.model, "shape": list(data.x_train.shape[1:]),
                                                                     "num_classes": data.num_classes, "seed": spec.seed})

    def stacked(self, specs: list[RunSpec], on_epoch: Callable[[RunSpec, dict], None],
                note: Callable[[str], None]) -> tuple[list[tuple[RunSpec, str, dict]], list[RunSpec]]:
        """Train runs of one stack key together while holding their claims; returns ((spec, "done" or "reused",
        record) of each, the specs another command holds)."""
        results, busy, todo = [], [], []
        with ExitStack() as held:
            for spec in specs:
                run_dir = self.job.out / spec.folder()
                if not held.enter_context(claims.claim(run_dir, spec.to_dict(), wait=False, note=note)):
                    busy.append(spec)
                    continue
                saved = None if self.job.overwrite else reusable(run_dir, spec.to_dict(), False, note, row=True)
                if saved is None:
                    todo.append(spec)
                else:
                    results.append((spec, "reused", saved))
            if todo:
                trained = run_stacked(todo, self.data(todo[0]), model=self.job.model, human=self.job.human,
                                      on_epoch=on_epoch)
                results += [(spec, "done", self.finish(spec, record, fitted)) for spec, (record, fitted) in zip(todo, trained)]
        return results, busy


class Executor(Protocol):
    """Runs specs of a job, reporting each run's events as they happen."""

    def run(self, job: Job, specs: list[RunSpec], report: Callable[[Event], None]) -> None:
        """Train every spec; report start, epoch, done, retry and failed events."""
        ...


class InProcess:
    """One run after another in this process, on torch's own thread count; exceptions propagate as raised.

    Runs another command is training are left for last, then waited for (so two commands share the work)."""

    def run(self, job: Job, specs: list[RunSpec], report: Callable[[Event], None]) -> None:
        trainer, deferred = Trainer(job), []
        for wait, batch in ((False, specs), (True, deferred)):
            for spec in batch:
                report(Event("start", spec))
                kind, record = trainer(spec, on_epoch=lambda row, spec=spec: report(Event("epoch", spec, row)),
                                       note=lambda text, spec=spec: report(Event("note", spec, text)), wait=wait)
                if kind == "busy":
                    deferred.append(spec)
                else:
                    report(Event(kind, spec, record))


def stack_groups(specs: list[RunSpec], limit: int = STACK_LIMIT) -> list[list[RunSpec]]:
    """`specs` grouped by what a stack shares (first-seen order), at most `limit` runs per group."""
    by_key: dict[RunSpec, list[RunSpec]] = {}
    for spec in specs:
        by_key.setdefault(stack_key(spec), []).append(spec)
    return [group[i : i + limit] for group in by_key.values() for i in range(0, len(group), limit)]


class Stacked:
    """The runs that differ only in their labels trained as one stacked model, group after group, in this process;
    runs another command is training are left for last and then trained one by one."""

    def run(self, job: Job, specs: list[RunSpec], report: Callable[[Event], None]) -> None:
        trainer, deferred = Trainer(job), []
        for group in stack_groups(specs):
            for spec in group:
                report(Event("start", spec))
            results, busy = trainer.stacked(group, on_epoch=lambda spec, row: report(Event("epoch", spec, row)),
                                            note=lambda text: report(Event("note", group[0], text)))
            for spec, kind, record in results:
                report(Event(kind, spec, record))
            deferred += busy
        InProcess().run(job, deferred, report)


def _train_one(trainer: Trainer, spec: RunSpec, send: Callable[[tuple[str, object]], None]) -> tuple[str, dict]:
    """Worker task: train and save `spec`, sending its ("epoch", row) and ("note", text) messages as they happen."""
    return trainer(spec, on_epoch=lambda row: send(("epoch", row)), note=lambda text: send(("note", text)))


class ProcessPool:
    """`jobs` runs at once in spawned worker processes of cores // jobs torch threads each, each worker keeping its
    last dataset loaded (training.parallel.stream).

    A run whose worker raised or died is reported and retried once in a fresh worker; a bad-input error
    (PoisonlabError) in a worker ends the sweep with that error."""

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs

    def run(self, job: Job, specs: list[RunSpec], report: Callable[[Event], None]) -> None:
        def on_event(kind: str, index: int, detail: object) -> None:
            """A worker's message ("epoch" or "note", detail) or result ("done" or "reused", record) as the spec's
            event; start, retry and failed as they are."""
            kind, detail = detail if kind in ("message", "ok") else (kind, detail)
            report(Event(kind, specs[index], detail))

        stream(_train_one, specs, self.jobs, on_event=on_event, context=job, setup=Trainer)


def stacks(stack: str, model: object, gpu: bool | None = None) -> bool:
    """Whether runs train stacked: "on", or "auto" with a torch model where they train on a GPU (`gpu`; default:
    this machine has CUDA). On a CPU one run at a time is faster."""
    if stack not in STACK_MODES:
        raise PoisonlabError(f"stack must be one of {', '.join(STACK_MODES)}, got {stack!r}")
    torch_model = model in TORCH_MODELS or (model is not None and not isinstance(model, str) and not hasattr(model, "fit"))
    if stack == "on" and not torch_model:
        raise PoisonlabError(f"model {model!r} is not a torch model and cannot train stacked; use stack off or auto")
    if stack != "auto" or not torch_model:
        return stack == "on"
    return pick_device().type == "cuda" if gpu is None else gpu


def executor(jobs: int = 1, stack: str = "off", model: object = None) -> Executor:
    """The local executor of a sweep's runs: `Stacked` when `stack` and `model` (a model name, factory or estimator)
    say so (see `stacks`), else in this process for 1 job or a pool of `jobs` worker processes."""
    check_jobs(jobs)
    if stacks(stack, model):
        return Stacked()
    return InProcess() if jobs == 1 else ProcessPool(jobs)
