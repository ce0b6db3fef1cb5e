"""Sweeps: planning (poison grids and human label sets), resume after an interrupt (in-process and a real Ctrl-C), settings guard."""

import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from poisonlab import datasets, store
from poisonlab.attacks import humanlabels
from poisonlab.studies import executors, sweep
from poisonlab.errors import PoisonlabError
from poisonlab.studies.run import RunSpec, run
from poisonlab.training.loop import TrainConfig

BASE = RunSpec(dataset="digits", train=TrainConfig(max_epochs=2))


def test_plan_covers_the_grid_in_order():
    specs = sweep.plan(BASE, ["digits"], [0, 500], ["random", "biased"], [0, 10], [0, 1])
    assert len(specs) == 16 and specs[0].percent == 0.0 and specs[-1] == RunSpec(
        dataset="digits", dataset_size=500, kind="biased", percent=10.0, seed=1, train=BASE.train)
    assert str(specs[-1].folder()) == "models/b_digits_500/10/seed1"


def test_interrupted_sweep_resumes_where_it_stopped(tmp_path, monkeypatch):
    specs = sweep.plan(BASE, ["digits"], [0], ["random"], [0, 30, 60], [0])
    real_run, calls = executors.run, []

    def interrupting_run(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_run(*args, **kwargs)

    monkeypatch.setattr(executors, "run", interrupting_run)
    with pytest.raises(KeyboardInterrupt):
        sweep.execute(specs, tmp_path)
    assert store.read_run(tmp_path / specs[0].folder()) is not None
    assert not (tmp_path / specs[1].folder() / store.RUN_FILE).exists()
    first_created = (tmp_path / specs[0].folder() / store.RUN_FILE).stat().st_mtime_ns
    monkeypatch.setattr(executors, "run", real_run)
    result = sweep.execute(specs, tmp_path)
    assert (result["trained"], result["skipped"]) == (2, 1) and len(result["records"]) == 3
    assert (tmp_path / specs[0].folder() / store.RUN_FILE).stat().st_mtime_ns == first_created
    assert [r["percent"] for r in store.results(tmp_path)] == [0.0, 30.0, 60.0]
    assert sweep.execute(specs, tmp_path, overwrite=True)["trained"] == 3


def test_existing_run_with_other_settings_is_not_silently_reused(tmp_path):
    spec = sweep.plan(BASE, ["digits"], [0], ["random"], [10], [0])
    sweep.execute(spec, tmp_path)
    other = sweep.plan(RunSpec(dataset="digits", train=TrainConfig(max_epochs=3)), ["digits"], [0], ["random"], [10], [0])
    with pytest.raises(PoisonlabError, match=r"other settings \(train.max_epochs 2 -> 3\); retrain it \(overwrite\) or write to another output folder"):
        sweep.execute(other, tmp_path)


def test_runs_saved_before_precision_existed_count_as_fp32(tmp_path):
    spec = sweep.plan(BASE, ["digits"], [0], ["random"], [10], [0])
    sweep.execute(spec, tmp_path)
    path = tmp_path / spec[0].folder() / store.RUN_FILE
    saved = store.read_run(path.parent)
    del saved["config"]["train"]["precision"]
    store.write_json(path, saved)
    fp32 = [replace(spec[0], train=replace(BASE.train, precision="fp32"))]
    assert sweep.execute(fp32, tmp_path)["skipped"] == 1
    with pytest.raises(PoisonlabError, match=r"other settings \(train.precision fp32 -> auto\)"):
        sweep.execute(spec, tmp_path)


def test_ctrl_c_keeps_finished_runs_and_rerun_resumes(tmp_path):
    cmd = [sys.executable, "-m", "poisonlab.cli", "train", "--dataset", "embedded", "--dataset-size", "2000",
           "--percents", "0,10,20,30,40,50,60,70", "--epochs", "2", "--out", str(tmp_path)]
    restore_ctrl_c = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731  (background shells ignore it)
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, preexec_fn=restore_ctrl_c)
    deadline = time.time() + 120
    while not list(tmp_path.glob("models/*/*/seed0/run.json")) and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "run the same command again to resume" in err
    done = len(list(tmp_path.glob("models/*/*/seed0/run.json")))
    assert 1 <= done < 8
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"resuming: {done} of 8 runs already finished" in result.stderr
    assert len(store.results(tmp_path)) == 8


def test_human_label_runs_are_planned_at_their_measured_noise_rate(shared_data):
    sets = humanlabels.read(shared_data / "cifar_n" / "cifar10n_labels.npz", ["aggre", "worse"])
    specs = sweep.plan_human(BASE, [0, 500], sets, [0, 1])
    assert [(s.dataset, s.dataset_size, s.kind, s.seed) for s in specs[:3]] == [
        ("cifar10", 0, "cifar10n:aggre", 0), ("cifar10", 0, "cifar10n:aggre", 1), ("cifar10", 0, "cifar10n:worse", 0)]
    assert [s.percent for s in specs[::2]] == [9.01, 40.208, 9.6, 44.0]
    assert str(specs[-1].folder()) == "models/cifar10_500_cifar10n-worse/seed1"
    assert str(replace(specs[0], model="svc", val="test").folder()) == "models/cifar10_svc_valtest_cifar10n-aggre/seed0"


def test_a_human_label_run_needs_its_labels():
    with pytest.raises(ValueError, match="cifar10n:aggre run needs those labels"):
        run(RunSpec(dataset="digits", kind="cifar10n:aggre"), datasets.load("digits"))
