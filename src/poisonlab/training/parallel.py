"""Independent tasks in parallel worker processes: the cores split between them, a crashed task (exception or dead
worker) reported and retried once in a fresh worker, never dropped. `stream` reports each task's messages and result
as they happen; `pmap` built on it returns the results in input order and raises for tasks that failed twice."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import sys
from collections.abc import Callable, Sequence
from functools import partial
from multiprocessing.connection import Connection, wait
from typing import Any, TypeVar

from poisonlab.errors import PoisonlabError, RunsFailed

MAX_ATTEMPTS = 2  # a task whose worker crashed is retried once

Item = TypeVar("Item")


def cores() -> int:
    """CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_jobs() -> int:
    """Parallel runs by default: one per 4 cores (small CNNs gain little from more threads), so 1 on a 2-core machine."""
    return max(1, cores() // 4)


def stop_all(busy: dict, idle: list) -> None:
    """End a pool: kill the busy workers ({conn: (worker, task)}), ask the idle ones ([(worker, conn)]) to exit."""
    for conn, (worker, _) in busy.items():
        worker.kill()
        stop(worker, conn)
    for worker, conn in idle:
        stop(worker, conn)


def check_jobs(jobs: object) -> int:
    """`jobs` as a whole number of at least 1, else a one-line error naming the value."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise PoisonlabError(f"jobs must be a whole number of at least 1, got {jobs!r}; use 1 to run in this process")
    return jobs


def threads_per_job(jobs: int) -> int:
    """Torch threads of each of `jobs` workers: the cores split evenly, at least 1."""
    return max(1, cores() // jobs)


def stop(worker: multiprocessing.Process, conn: Connection) -> None:
    """Ask a worker to exit (None on its pipe), wait briefly, kill it if it does not."""
    try:
        conn.send(None)
    except OSError:
        pass
    worker.join(5)
    if worker.is_alive():
        worker.kill()
        worker.join()
    conn.close()


def _serve(conn: Connection, fn: Callable, setup: Callable, context: Any, threads: int) -> None:
    """Worker process: `state = setup(context)` once, then answer each (index, item) received with ("ok" | "bad-input"
    | "failed", index, result or why), after any ("message", index, payload) that fn(state, item, send) sent."""
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    torch.set_num_threads(threads)
    state = setup(context)
    while (task := conn.recv()) is not None:
        index, item = task
        try:
            conn.send(("ok", index, fn(state, item, lambda payload: conn.send(("message", index, payload)))))
        except PoisonlabError as exc:  # bad input: the same error in the parent, not a crash to retry
            conn.send(("bad-input", index, str(exc)))
        except Exception as exc:  # noqa: BLE001 - any other failure is reported and retried
            conn.send(("failed", index, f"{type(exc).__name__}: {exc}"))


def _same(context: Any) -> Any:
    """The default worker setup: the context as it is."""
    return context


def _without_send(fn: Callable[[Any, Item], Any], state: Any, item: Item, send: Callable) -> Any:
    """fn(state, item) for a task that sends no messages."""
    return fn(state, item)


def stream(fn: Callable[[Any, Item, Callable[[Any], None]], Any], items: Sequence[Item], jobs: int, *,
           on_event: Callable[[str, int, Any], None], context: Any = None,
           setup: Callable[[Any], Any] = _same) -> None:
    """fn(state, item, send) for every item, `jobs` at a time in spawned workers of `threads_per_job(jobs)` torch
    threads each; each worker computes `state = setup(context)` once (`context` sent once per worker).

    `fn` and `setup` must be module-level functions (or partials of them), `context` and the items picklable.
    `on_event(kind, index, detail)` runs in this process: "start", "message" (what fn passed to `send`), "ok" (fn's
    result), "retry" or "failed" (why). A task whose worker raised or died is retried once in a fresh worker, then
    reported failed; a PoisonlabError (bad input) in a worker is raised here as it is, ending the others."""
    try:
        pickle.dumps((fn, setup, context))
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise PoisonlabError(f"the model, data or data loader cannot be sent to worker processes ({exc}); define it at "
                             "module level (not a lambda or local function), or use 1 job") from None
    spawn = multiprocessing.get_context("spawn")
    threads = threads_per_job(jobs)

    def start() -> tuple[multiprocessing.Process, Connection]:
        parent, child = spawn.Pipe()
        worker = spawn.Process(target=_serve, args=(child, fn, setup, context, threads), daemon=True)
        worker.start()
        child.close()
        return worker, parent

    pending, attempts = list(reversed(range(len(items)))), [0] * len(items)
    busy: dict[Connection, tuple[multiprocessing.Process, int]] = {}
    idle: list[tuple[multiprocessing.Process, Connection]] = []
    try:
        while pending or busy:
            while pending and len(busy) < jobs:
                worker, conn = idle.pop() if idle else start()
                if not worker.is_alive():  # an idle worker that died meanwhile
                    stop(worker, conn)
                    worker, conn = start()
                index = pending.pop()
                attempts[index] += 1
                conn.send((index, items[index]))
                busy[conn] = (worker, index)
                on_event("start", index, None)
            by_sentinel = {worker.sentinel: conn for conn, (worker, _) in busy.items()}
            for ready in wait([*busy, *by_sentinel]):
                conn = by_sentinel.get(ready, ready)
                if conn not in busy:  # its pipe and its sentinel were both ready
                    continue
                worker, index = busy[conn]
                try:
                    kind, _, detail = conn.recv()
                except (EOFError, OSError):
                    worker.join(5)
                    kind, detail = "failed", f"worker process died (exit code {worker.exitcode})"
                if kind == "message":
                    on_event(kind, index, detail)
                    continue
                del busy[conn]
                if kind == "bad-input":
                    raise PoisonlabError(detail)
                if kind == "ok":
                    idle.append((worker, conn))
                    on_event("ok", index, detail)
                    continue
                stop(worker, conn)  # a failed task is retried in a fresh process
                if attempts[index] < MAX_ATTEMPTS:
                    pending.append(index)
                on_event("retry" if attempts[index] < MAX_ATTEMPTS else "failed", index, detail)
    finally:
        stop_all(busy, idle)


def pmap(fn: Callable[[Any, Item], Any], items: Sequence[Item], jobs: int, *, context: Any = None,
         on_result: Callable[[int, Any], None] = lambda index, result: None,
         note: Callable[[str], None] = lambda text: print(text, file=sys.stderr),
         label: Callable[[Item], str] = str) -> list:
    """[fn(context, item) for item in items], `jobs` at a time in spawned workers of `threads_per_job(jobs)` torch
    threads each (`context` sent once per worker); with 1 job, or 1 item, in this process, exceptions propagating as
    raised.

    `fn` must be a module-level function and `context` and the items picklable. `on_result(index, result)` runs in
    this process as each task finishes. A task whose worker raised or died is reported through `note` and retried
    once in a fresh worker; after every other task finished, tasks that failed twice raise RunsFailed (named by
    `label`). A PoisonlabError (bad input) in a worker is raised here as it is."""
    if min(check_jobs(jobs), len(items)) <= 1:
        results = []
        for index, item in enumerate(items):
            results.append(fn(context, item))
            on_result(index, results[-1])
        return results
    results: dict[int, Any] = {}
    failed: dict[int, str] = {}

    def on_event(kind: str, index: int, detail: Any) -> None:
        if kind == "ok":
            results[index] = detail
            on_result(index, detail)
        elif kind == "retry":
            note(f"{label(items[index])}: failed ({detail}); retrying it once")
        elif kind == "failed":
            failed[index] = detail
            note(f"{label(items[index])}: failed again ({detail})")

    stream(partial(_without_send, fn), items, jobs, on_event=on_event, context=context)
    if failed:
        raise RunsFailed(f"{len(failed)} of {len(items)} tasks failed twice "
                         f"({'; '.join(f'{label(items[i])}: {why}' for i, why in sorted(failed.items()))}); "
                         "saved runs stay saved: run it again to retry the failed ones")
    return [results[i] for i in range(len(items))]
