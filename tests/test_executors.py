"""Parallel runs: a worker pool gives the same results table as one process, resumes, retries a crashed run once."""

import os
from pathlib import Path

import pytest
import torch

from poisonlab import datasets, store
from poisonlab.errors import PoisonlabError, RunsFailed
from poisonlab.studies import executors, sweep
from poisonlab.studies.run import RunSpec
from poisonlab.training.loop import TrainConfig

BASE = RunSpec(dataset="digits", train=TrainConfig(max_epochs=2, batch_size=128))
SPECS = sweep.plan(BASE, ["digits"], [600], ["random", "biased"], [0, 30], [0])
FLAG = "crash-once"


def crash_once_loader(name: str, *, data_dir: str, dataset_size: int, download: bool):
    """Kill the first worker process that loads data (atomically claimed flag file), then load normally."""
    try:
        os.close(os.open(Path(data_dir) / FLAG, os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return datasets.load(name, None, dataset_size, download)
    os._exit(3)


def always_raising_loader(name: str, **_):
    raise RuntimeError(f"cannot load {name} today")


def bad_input_loader(name: str, **_):
    raise PoisonlabError(f"{name} files are truncated; download them again")


def table(out: Path) -> list[tuple]:
    return [(r["run_dir"], r["kind"], r["percent"], r["n_poisoned"], r["test_accuracy"], r["epochs_run"])
            for r in store.results(out)]


def test_two_jobs_give_the_same_results_table_as_one_and_resume(tmp_path, pool_threads):
    one = sweep.execute(SPECS, tmp_path / "one", jobs=1)
    two = sweep.execute(SPECS, tmp_path / "two", jobs=2)
    assert table(tmp_path / "one") == table(tmp_path / "two") and len(table(tmp_path / "two")) == 4
    assert [r["metrics"] for r in one["records"]] == [r["metrics"] for r in two["records"]]
    assert (tmp_path / "two" / "results.csv").read_text().count("\n") == 5
    assert all(r["training"]["precision"] in ("bf16", "fp32") for r in two["records"])
    again = sweep.execute([*SPECS, sweep.plan(BASE, ["digits"], [600], ["random"], [60], [0])[0]], tmp_path / "two", jobs=2)
    assert (again["trained"], again["skipped"]) == (1, 4) and len(store.results(tmp_path / "two")) == 5


def test_a_killed_worker_is_reported_and_its_run_retried_once(tmp_path, capsys):
    from rich.console import Console

    result = sweep.execute(SPECS[:2], tmp_path / "runs", data_dir=tmp_path, loader=crash_once_loader, jobs=2,
                           console=Console(stderr=True, width=300))
    err = capsys.readouterr().err
    assert (tmp_path / FLAG).exists() and result["trained"] == 2
    assert err.count("retrying it once") == 1 and "worker process died (exit code 3)" in err
    assert len(store.results(tmp_path / "runs")) == 2


def test_a_run_failing_twice_is_reported_not_dropped(tmp_path):
    with pytest.raises(RunsFailed, match=r"1 of 1 runs failed twice \(digits_600 random 0% seed0: RuntimeError: cannot load"):
        sweep.execute(SPECS[:1], tmp_path, loader=always_raising_loader, jobs=2)
    assert store.results(tmp_path) == [] and not (tmp_path / SPECS[0].folder() / "run.json").exists()  # only its claim file


def test_bad_input_in_a_worker_is_the_same_one_error(tmp_path):
    with pytest.raises(PoisonlabError, match="digits files are truncated; download them again"):
        sweep.execute(SPECS, tmp_path, loader=bad_input_loader, jobs=2)


def test_an_unpicklable_model_factory_is_bad_input_for_workers(tmp_path):
    with pytest.raises(PoisonlabError, match="cannot be sent to worker processes"):
        sweep.execute(SPECS[:1], tmp_path, model=lambda shape, k: torch.nn.Linear(1, k), jobs=2)
    with pytest.raises(PoisonlabError, match="jobs must be a whole number of at least 1"):
        executors.executor(0)
