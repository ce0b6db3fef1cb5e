"""Runs as Ray tasks: a small real sweep on a local Ray cluster gives the local executor's results for the same seeds
(one run per task, or one stack group per task), resumes without training, retries a failed task once and reports
it, and is reachable from `poisonlab train` and `pl.sweep`."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import ray
import torch

import poisonlab
from poisonlab import datasets, store
from poisonlab.errors import PoisonlabError, RunsFailed
from poisonlab.studies import sweep
from poisonlab.studies.rayexec import RayExecutor, parse_address
from poisonlab.studies.run import RunSpec
from poisonlab.training.loop import TrainConfig

BASE = RunSpec(dataset="digits", train=TrainConfig(max_epochs=2, batch_size=128))
SPECS = sweep.plan(BASE, ["digits"], [600], ["random"], [0, 30, 60], [0])
BROKEN_SIZE = 599  # the dataset size that flaky_loader cannot load
FLAG = "crash-once"
# The test cluster stays on the loopback interface: no token, and 127.0.0.1 is not swapped for the machine's address.
LOOPBACK = {"RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def flaky_loader(name: str, *, data_dir: str, dataset_size: int, download: bool):
    """Kill the first Ray worker that loads data (atomically claimed flag file); never load BROKEN_SIZE items."""
    if dataset_size == BROKEN_SIZE:
        raise RuntimeError(f"cannot load {name} today")
    try:
        os.close(os.open(Path(data_dir) / FLAG, os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return datasets.load(name, None, dataset_size, download)
    os._exit(3)


def bad_input_loader(name: str, **_):
    raise PoisonlabError(f"{name} files are truncated; download them again")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A one-node Ray cluster of 2 CPUs, started once for the module as `ray start --head` and stopped after; its
    workers import poisonlab and this module from here. Its files stay in a folder of its own (not /tmp/ray, where
    a later `ray.init()` would find it)."""
    temp_dir = tempfile.mkdtemp(prefix="plray")  # short: Ray's socket paths must fit in 107 characters
    mp = pytest.MonkeyPatch()
    for name, value in {**LOOPBACK, "RAY_TMPDIR": temp_dir}.items():  # also for local instances started here
        mp.setenv(name, value)
    mp.setattr(ray._private.ray_constants, "ENABLE_RAY_CLUSTER", False)  # read when the driver resolves 127.0.0.1
    port = free_port()
    paths = os.pathsep.join([str(Path(poisonlab.__file__).parents[1]), str(Path(__file__).parent)])
    env = {**os.environ, **LOOPBACK, "PYTHONPATH": paths, "OMP_NUM_THREADS": "1"}
    log = tmp_path_factory.mktemp("ray") / "head.log"
    with log.open("w") as sink:
        head = subprocess.Popen([str(Path(sys.executable).parent / "ray"), "start", "--head", "--block",
                                 "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2", "--num-gpus=0",
                                 f"--dashboard-port={free_port()}",
                                 f"--dashboard-agent-listen-port={free_port()}", "--include-dashboard=false",
                                 "--object-store-memory=100000000", "--disable-usage-stats",
                                 f"--temp-dir={temp_dir}"],
                                env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not listening(port):
            assert head.poll() is None and time.monotonic() < deadline, f"ray start failed: {log.read_text()}"
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        head.terminate()  # stops the processes it started
        try:
            head.wait(60)
        finally:
            try:
                os.killpg(head.pid, signal.SIGKILL)  # anything of its process group still left
            except ProcessLookupError:
                pass
            shutil.rmtree(temp_dir, ignore_errors=True)
            mp.undo()


@pytest.fixture
def one_thread():
    """Train in this process on the 1 torch thread of a 1-CPU Ray task, so both paths compute alike."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def table(out: Path) -> list[tuple]:
    return [(r["run_dir"], r["percent"], r["n_poisoned"], r["test_accuracy"], r["epochs_run"]) for r in store.results(out)]


def test_ray_gives_the_local_results_for_the_same_seeds_and_resumes(cluster, tmp_path, one_thread):
    local = sweep.execute(SPECS, tmp_path / "local")
    remote = sweep.execute(SPECS, tmp_path / "ray", executor="ray", address=cluster, cpus_per_run=1)
    assert remote["trained"] == 3 and len(table(tmp_path / "ray")) == 3
    assert table(tmp_path / "ray") == table(tmp_path / "local")
    for key in ("metrics", "weights_sha256", "poison"):  # the same weights, bit for bit
        assert [r[key] for r in remote["records"]] == [r[key] for r in local["records"]]
    assert all((tmp_path / "ray" / spec.folder() / "model.safetensors").is_file() for spec in SPECS)
    again = sweep.execute(SPECS, tmp_path / "ray", executor="ray", address=cluster, cpus_per_run=1)
    assert (again["trained"], again["skipped"]) == (0, 3) and len(store.results(tmp_path / "ray")) == 3


def test_a_stack_group_is_one_task_and_gives_the_local_stack(cluster, tmp_path, one_thread):
    local = sweep.execute(SPECS, tmp_path / "local", stack="on")
    remote = sweep.execute(SPECS, tmp_path / "ray", stack="on", executor="ray", address=cluster, cpus_per_run=1)
    assert remote["trained"] == 3 and table(tmp_path / "ray") == table(tmp_path / "local")
    assert [(r["training"]["path"], r["training"]["stack_size"]) for r in remote["records"]] == [("stacked", 3)] * 3
    for key in ("metrics", "weights_sha256"):
        assert [r[key] for r in remote["records"]] == [r[key] for r in local["records"]]
    auto = sweep.execute(SPECS[:1], tmp_path / "auto", stack="auto", executor="ray", address=cluster, cpus_per_run=1)
    assert auto["records"][0]["training"]["path"] == "single"  # tasks without GPUs train one run each


def test_a_failed_task_is_retried_once_then_reported_and_the_others_are_saved(cluster, tmp_path, capsys):
    from rich.console import Console

    broken = sweep.plan(BASE, ["digits"], [BROKEN_SIZE], ["random"], [0], [0])
    with pytest.raises(RunsFailed, match=r"1 of 3 runs failed twice \(digits_599 random 0% seed0: RuntimeError: cannot load"):
        sweep.execute([*SPECS[:2], *broken], tmp_path / "runs", data_dir=tmp_path, loader=flaky_loader,
                      executor="ray", address=cluster, cpus_per_run=1, console=Console(stderr=True, width=300))
    err = capsys.readouterr().err
    assert (tmp_path / FLAG).exists() and err.count("retrying it once") == 2  # the killed worker's run, the broken run
    assert "WorkerCrashedError" in err and "digits_599 random 0% seed0: failed again" in err
    assert sorted(r["percent"] for r in store.results(tmp_path / "runs")) == [0.0, 30.0]
    assert not (tmp_path / "runs" / broken[0].folder() / store.RUN_FILE).exists()


def test_bad_input_on_a_worker_is_the_same_one_error(cluster, tmp_path):
    with pytest.raises(PoisonlabError, match="digits files are truncated; download them again"):
        sweep.execute(SPECS, tmp_path, loader=bad_input_loader, executor="ray", address=cluster, cpus_per_run=1)


def test_a_session_of_this_process_is_used_and_left_open(cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", cluster)
    ray.init(logging_level="error", log_to_driver=False)  # connects to $RAY_ADDRESS
    try:
        done = sweep.execute(SPECS[:1], tmp_path, executor="ray", cpus_per_run=1)
        assert done["trained"] == 1 and ray.is_initialized()
    finally:
        ray.shutdown()


def test_without_an_address_a_local_instance_is_started_and_stopped(cluster, tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    done = sweep.execute(SPECS[:1], tmp_path, executor="ray", cpus_per_run=1)
    assert done["trained"] == 1 and done["records"][0]["environment"]["device"] == "cpu"
    assert not ray.is_initialized() and len(store.results(tmp_path)) == 1


def test_api_sweep_sends_runs_to_the_cluster(cluster, one_thread):
    data = poisonlab.load_dataset("digits", size=600)
    kwargs = dict(rates=[0.3], epochs=1, batch_size=128)
    remote = poisonlab.sweep(data, executor="ray", address=cluster, cpus_per_run=1, **kwargs)
    local = poisonlab.sweep(data, **kwargs)
    assert remote.out is None and len(remote.records) == 1
    assert remote.records[0]["metrics"] == local.records[0]["metrics"]


def test_train_command_sends_runs_to_the_cluster(cluster, tmp_path, cli):
    args = ("train", "--dataset", "digits", "--dataset-size", "600", "--percents", "0,30", "--epochs", "1",
            "--executor", "ray", "--address", cluster, "--cpus-per-run", "1", "--out", tmp_path)
    code, text = cli.text(*args)
    assert code == 0 and "2 runs trained, 0 already done" in text, text
    assert sorted(r["percent"] for r in store.results(tmp_path)) == [0.0, 30.0]
    code, text = cli.text(*args)
    assert code == 0 and "0 runs trained, 2 already done" in text, text


def test_certify_command_sends_groups_of_base_models_to_the_cluster(cluster, tmp_path, cli):
    """certify --executor ray: groups of partitions as Ray tasks give the models this process trains (same items,
    same seeds), saved by the caller; a rerun trains nothing."""
    args = ("certify", "--dataset", "digits", "--partitions", "6", "--model", "logreg", "--method", "roe")
    code, text = cli.text(*args, "--executor", "ray", "--address", cluster, "--cpus-per-run", "1", "--out",
                          tmp_path / "ray")
    assert code == 0, text
    code, _ = cli.text(*args, "--out", tmp_path / "local")
    assert code == 0
    for i in range(6):
        assert np.array_equal(np.load(tmp_path / "ray" / "partitions" / f"{i}.npy"),
                              np.load(tmp_path / "local" / "partitions" / f"{i}.npy"))
    code, text = cli.text(*args, "--executor", "ray", "--address", cluster, "--out", tmp_path / "ray")
    assert code == 0 and "resuming: 6 of 6 base models already trained" in text
    cli.fails(r"--cpus-per-run is only read with --executor ray", *args, "--cpus-per-run", "1", "--out", tmp_path / "x")


def test_resources_and_addresses_are_checked_before_any_work(cluster, tmp_path, monkeypatch):
    assert parse_address("head:6379") == ("head", 6379)
    assert parse_address("[::1]:6379") == ("::1", 6379)
    for bad in ("head", "head:0", "head:99999", "ray://head:10001", "auto"):
        with pytest.raises(PoisonlabError, match="is not HOST:PORT"):
            parse_address(bad)
    with pytest.raises(PoisonlabError, match="a run would need 3 CPUs and 0 GPUs, but the largest node .* has 2 CPUs"):
        sweep.execute(SPECS[:1], tmp_path, executor="ray", address=cluster, cpus_per_run=3)
    with pytest.raises(PoisonlabError, match="cannot reach a Ray cluster at 127.0.0.1:1 "):
        sweep.execute(SPECS[:1], tmp_path, executor="ray", address="127.0.0.1:1")
    with pytest.raises(PoisonlabError, match=r"the local executor takes no cluster address \(127.0.0.1:1\); choose the ray executor or leave it out"):
        sweep.placed(1, "local", "127.0.0.1:1")
    with pytest.raises(PoisonlabError, match="2 jobs is a setting of the local executor"):
        sweep.placed(2, "ray")
    with pytest.raises(PoisonlabError, match="model 'svc' is not a torch model and cannot train stacked"):
        sweep.placed(1, "ray", stack="on", model="svc")
    with pytest.raises(PoisonlabError, match="GPUs per run must be 0 or more"):
        RayExecutor(gpus_per_run=-1)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(PoisonlabError, match=r"needs Ray, which is not installed here; pip install 'poisonlab\[ray\]'"):
        sweep.execute(SPECS[:1], tmp_path, executor="ray")
    assert store.results(tmp_path) == []
