"""Runs of a sweep as Ray tasks, on a Ray cluster or a local Ray instance, behind the `Executor` interface.

Each task declares its CPUs (and GPUs) and trains one run, or, stacked, the runs of one stack group as one model;
the worker writes their run folders, so the output folder must be on a filesystem that every node shares. The caller
alone writes the results table from the events. Progress is coarse: "start" when a run is submitted, then "done" or
"reused", or "retry" and "failed"; no epochs."""

from __future__ import annotations

import logging
import os
import pickle
import re
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from poisonlab.errors import PoisonlabError
from poisonlab.studies.executors import Event, Job, Trainer, stack_groups, stacks
from poisonlab.studies.run import RunSpec
from poisonlab.training.parallel import MAX_ATTEMPTS

CONNECT_TIMEOUT_S = 10.0
MAX_DEFAULT_CPUS = 4  # small CNNs gain little from more threads per run (see training.parallel.default_jobs)
ADDRESS = re.compile(r"(?P<host>\[[0-9a-fA-F:.]+\]|[^:/\s\[\]]+):(?P<port>\d{1,5})")
INSTALL = "pip install 'poisonlab[ray]'"

_trainers: dict[str, Trainer] = {}  # in a Ray worker process: the trainer of the last job, keeping its data loaded


def parse_address(address: str) -> tuple[str, int]:
    """Host and port of a HOST:PORT cluster address."""
    found = ADDRESS.fullmatch(address.strip())
    if found is None or not 0 < int(found["port"]) < 65536:
        raise PoisonlabError(f"Ray cluster address '{address}' is not HOST:PORT, e.g. head-node:6379")
    return found["host"].strip("[]"), int(found["port"])


def _task(fn: Callable, context: object, item: object, threads: int) -> tuple[str, object]:
    """Ray task: fn(context, item) on `threads` torch threads; ("done", its result), or ("bad-input" or "failed",
    why)."""
    import torch

    torch.set_num_threads(threads)
    try:
        return "done", fn(context, item)
    except PoisonlabError as exc:  # bad input: the same error in the caller, not a failure to retry
        return "bad-input", str(exc)
    except Exception as exc:  # noqa: BLE001 - any other failure is reported and retried
        return "failed", f"{type(exc).__name__}: {exc}"


def _train(context: tuple[Job, str], item: tuple[list[RunSpec], bool]) -> list:
    """Train and save a sweep's `specs` on this worker, one by one or `stacked` as one model (runs another command
    holds are then trained one by one after it): [(spec, "done" or "reused", record) of each]."""
    (job, token), (specs, stacked) = context, item
    if token not in _trainers:
        _trainers.clear()
        _trainers[token] = Trainer(job)
    trainer = _trainers[token]
    results, busy = (trainer.stacked(specs, on_epoch=lambda spec, row: None, note=lambda text: None) if stacked
                     else ([], specs))
    return results + [(spec, *trainer(spec)) for spec in busy]


class RayExecutor:
    """Runs as Ray tasks on the cluster at `address` (else $RAY_ADDRESS, else a new local Ray instance, stopped
    afterwards); a Ray session this process already opened is used as is and left open.

    A task declares `cpus_per_run` CPUs (default: 4, or the CPUs of the largest node when fewer) and `gpus_per_run`
    GPUs (default: 1 when the cluster has GPUs, else 0) and trains on as many torch threads as CPUs. It trains one
    run, or with `stack` "on" (or "auto" when tasks declare GPUs and `model` is a torch model) one stack group as one
    model (see executors.stacks). A task that raised or whose worker died is reported and retried once; a bad-input
    error (PoisonlabError) ends the sweep."""

    def __init__(self, address: str | None = None, cpus_per_run: int | None = None,
                 gpus_per_run: float | None = None, stack: str = "off", model: object = None) -> None:
        stacks(stack, model, gpu=False)  # a bad choice fails before any cluster is reached
        if address is not None:
            parse_address(address)
        if cpus_per_run is not None and (not isinstance(cpus_per_run, int) or cpus_per_run < 1):
            raise PoisonlabError(f"CPUs per run must be a whole number of at least 1, got {cpus_per_run!r}")
        if gpus_per_run is not None and (not isinstance(gpus_per_run, (int, float)) or not gpus_per_run >= 0):
            raise PoisonlabError(f"GPUs per run must be 0 or more (a fraction shares a GPU), got {gpus_per_run!r}")
        self.address, self.cpus_per_run, self.gpus_per_run = address, cpus_per_run, gpus_per_run
        self.stack, self.model = stack, model

    def run(self, job: Job, specs: list[RunSpec], report: Callable[[Event], None]) -> None:
        """Train every spec as a Ray task; report start, done or reused, retry and failed events."""
        if not specs:  # nothing left to train: no cluster to reach
            return
        with self.session() as (ray, cpus, gpus):
            stacked = stacks(self.stack, self.model, gpu=gpus > 0)
            groups = stack_groups(specs) if stacked else [[spec] for spec in specs]

            def on_event(kind: str, index: int, detail: object) -> None:
                if kind == "done":
                    for spec, done, record in detail:
                        report(Event(done, spec, record))
                else:
                    for spec in groups[index]:
                        report(Event(kind, spec, detail))

            self.gather(ray, _train, [(group, stacked) for group in groups], (job, uuid.uuid4().hex), cpus, gpus,
                        on_event)

    @contextmanager
    def session(self) -> Iterator[tuple[object, int, float]]:
        """(ray, CPUs, GPUs per task) in a Ray session (see the class), checked against the cluster's nodes; a
        session opened here is closed afterwards."""
        try:
            import ray
        except ImportError:
            raise PoisonlabError(f"the ray executor needs Ray, which is not installed here; {INSTALL}") from None
        opened = self._connect(ray)
        try:
            yield (ray, *self._resources(ray))
        finally:
            if opened:  # disconnects from a cluster; stops a local instance started here
                ray.shutdown()

    def _connect(self, ray) -> bool:
        """Open a Ray session unless this process has one; whether it opened one."""
        if ray.is_initialized():
            return False
        quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
        address = self.address or os.environ.get("RAY_ADDRESS") or None
        if address is None:  # "local": a new instance, even where `ray start` left one running
            ray.init(address="local", include_dashboard=False, **quiet)
            return True
        try:  # Ray itself waits for an unreachable cluster without end
            socket.create_connection(parse_address(address), timeout=CONNECT_TIMEOUT_S).close()
            ray.init(address=address, **quiet)
        except (OSError, RuntimeError, ValueError) as exc:  # ConnectionError, timeouts, refused tokens
            raise PoisonlabError(f"cannot reach a Ray cluster at {address} ({' '.join(str(exc).split()) or type(exc).__name__}); "
                                 "start one there with `ray start --head`, or check the address and port") from None
        return True

    def _resources(self, ray) -> tuple[int, float]:
        """CPUs and GPUs each task declares, checked against the largest node of the cluster."""
        nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
        most_cpus = int(max((node.get("CPU", 0) for node in nodes), default=0))
        most_gpus = max((node.get("GPU", 0) for node in nodes), default=0)
        cpus = self.cpus_per_run or max(1, min(MAX_DEFAULT_CPUS, most_cpus))
        gpus = self.gpus_per_run if self.gpus_per_run is not None else (1 if most_gpus else 0)
        if cpus > most_cpus or gpus > most_gpus:
            raise PoisonlabError(f"a run would need {cpus} CPUs and {gpus:g} GPUs, but the largest node of the Ray "
                                 f"cluster has {most_cpus} CPUs and {most_gpus:g} GPUs; ask for at most that per run")
        return cpus, gpus

    @staticmethod
    def gather(ray, fn: Callable, items: list, context: object, cpus: int, gpus: float,
               on_event: Callable[[str, int, object], None]) -> None:
        """fn(context, item) for every item as a Ray task of `cpus` CPUs (and torch threads) and `gpus` GPUs, `fn` a
        module-level function importable on every node; on_event(kind, index, detail) as they go: "start" (detail
        None), "done" (fn's result), "retry" or "failed" (why). A task that raised or whose worker died is submitted
        again once; bad input (PoisonlabError) in a task is raised here, cancelling the others."""
        try:
            shared = ray.put(context)
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            raise PoisonlabError(f"the model, data or data loader cannot be sent to Ray workers ({exc}); define it at "
                                 "module level, importable on every node") from None
        task = ray.remote(_task).options(num_cpus=cpus, num_gpus=gpus, max_retries=0)  # retried below, reported
        attempts, running = [0] * len(items), {}

        def submit(index: int) -> None:
            attempts[index] += 1
            running[task.remote(fn, shared, items[index], cpus)] = index

        try:
            for index in range(len(items)):
                submit(index)
                on_event("start", index, None)
            while running:
                (ready,), _ = ray.wait(list(running), num_returns=1)
                index = running.pop(ready)
                try:
                    kind, detail = ray.get(ready)
                except ray.exceptions.RayError as exc:  # the worker or its node died
                    kind, detail = "failed", f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"
                if kind == "bad-input":
                    raise PoisonlabError(detail)
                if kind == "done":
                    on_event("done", index, detail)
                    continue
                retry = attempts[index] < MAX_ATTEMPTS
                if retry:
                    submit(index)
                on_event("retry" if retry else "failed", index, detail)
        finally:
            for ref in running:  # interrupted or ended by bad input: stop the others' training
                ray.cancel(ref, force=True)
