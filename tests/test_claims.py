"""No lost or garbage runs: weights checked against run.json, killed writes cleaned, runs claimed by one command."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from poisonlab import store
from poisonlab.errors import PoisonlabError
from poisonlab.studies import claims, executors, sweep
from poisonlab.studies.run import RunSpec
from poisonlab.training.saving import load_model

BASE = RunSpec(dataset="digits", model="logreg")
SRC = str(Path(__file__).parents[1] / "src")
DRIVER = """
import sys, time
from pathlib import Path
from poisonlab.studies import executors, sweep
from poisonlab.studies.run import RunSpec
real = executors.run
def slow(spec, *args, **kwargs):
    print("TRAIN", spec.percent, spec.seed, flush=True)
    time.sleep(float(sys.argv[2]))
    return real(spec, *args, **kwargs)
executors.run = slow
specs = sweep.plan(RunSpec(dataset="digits", model="logreg"), ["digits"], [0], ["random"], [0, 10, 20, 30], [0, 1])
result = sweep.execute(specs, Path(sys.argv[1]))
print("DONE", result["trained"], result["skipped"], flush=True)
"""


def start(out: Path, pause: float) -> subprocess.Popen:
    """The 8-run sweep of DRIVER in a fresh process, pausing `pause` s before each training."""
    return subprocess.Popen([sys.executable, "-c", DRIVER, str(out), str(pause)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": SRC})


def trained_by(stdout: str) -> list[tuple[str, str]]:
    return [tuple(line.split()[1:]) for line in stdout.splitlines() if line.startswith("TRAIN")]


def test_damaged_or_garbage_weights_are_retrained_with_a_note(tmp_path: Path, capsys) -> None:
    spec = sweep.plan(BASE, ["digits"], [0], ["random"], [20], [0])
    sweep.execute(spec, tmp_path)
    run_dir = tmp_path / spec[0].folder()
    record = json.loads((run_dir / store.RUN_FILE).read_text())
    weights = (run_dir / store.WEIGHTS_FILE).read_bytes()
    assert record["weights_sha256"] == store.weights_digest(weights)
    assert record["environment"]["deterministic_algorithms"] is True and record["environment"]["threads"] >= 1
    assert sweep.execute(spec, tmp_path)["trained"] == 0
    damaged = bytearray(weights)
    damaged[-1] ^= 1
    (run_dir / store.WEIGHTS_FILE).write_bytes(bytes(damaged))
    assert store.read_run(run_dir) is None and store.read_run(run_dir, weights=False) is not None
    with pytest.raises(PoisonlabError, match="does not match the SHA-256 its run.json records"):
        load_model(run_dir)
    capsys.readouterr()
    assert sweep.execute(spec, tmp_path)["trained"] == 1
    assert "does not match its recorded SHA-256" in capsys.readouterr().err
    # the hash deleted from run.json (an old run, or an edit to make swapped weights pass): nothing can be verified
    edited = {k: v for k, v in json.loads((run_dir / store.RUN_FILE).read_text()).items() if k != "weights_sha256"}
    store.write_json(run_dir / store.RUN_FILE, edited)
    assert store.read_run(run_dir) is None
    capsys.readouterr()
    assert sweep.execute(spec, tmp_path)["trained"] == 1 and store.read_run(run_dir) is not None
    assert "records no weights_sha256, so its weights cannot be verified" in " ".join(capsys.readouterr().err.split())
    for damage in ("missing", "garbage"):  # model.json gone or not a model description: not done either
        if damage == "missing":
            (run_dir / store.MODEL_META_FILE).unlink()
        else:
            (run_dir / store.MODEL_META_FILE).write_text("[1, 2]")
        assert store.read_run(run_dir) is None
        assert sweep.execute(spec, tmp_path)["trained"] == 1 and store.read_run(run_dir) is not None


def test_temp_files_of_killed_writes_are_removed_when_the_run_is_claimed(tmp_path: Path, capsys) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".model.safetensors.x1y2.tmp").write_bytes(b"half")
    (run_dir / "keep.tmp").write_bytes(b"not ours")
    with claims.claim(run_dir, {"a": 1}, wait=False, note=print) as held:
        assert held
    assert sorted(p.name for p in run_dir.iterdir()) == [".claim", "keep.tmp"]
    assert "removed .model.safetensors.x1y2.tmp" in capsys.readouterr().out


def test_claimed_run_refuses_other_settings_and_defers_the_same(tmp_path: Path) -> None:
    with claims.claim(tmp_path / "run", {"seed": 0}, wait=True) as held:
        assert held
        with pytest.raises(PoisonlabError, match=r"is being trained by another command \(pid \d+ on .*\) with other "
                                                 r"settings \(seed 0 -> 1\); wait for it to finish"):
            with claims.claim(tmp_path / "run", {"seed": 1}, wait=False):
                pass
        with claims.claim(tmp_path / "run", {"seed": 0}, wait=False) as second:
            assert second is False


def test_a_killed_claimant_is_taken_over(tmp_path: Path, capsys) -> None:
    code = ("import os, signal, sys; from pathlib import Path; from poisonlab.studies import claims\n"
            "with claims.claim(Path(sys.argv[1]), {'seed': 0}, wait=True):\n"
            "    (Path(sys.argv[1]) / '.run.json.k.tmp').write_text('half')\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run")], env={**os.environ, "PYTHONPATH": SRC})
    assert done.returncode == -signal.SIGKILL
    with claims.claim(tmp_path / "run", {"seed": 1}, wait=False, note=print) as held:
        assert held
    out = capsys.readouterr().out
    assert f"taking over {tmp_path / 'run'} from a command that stopped" in out and "removed .run.json.k.tmp" in out


def test_an_interrupted_sweep_releases_its_claim_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    specs = sweep.plan(BASE, ["digits"], [0], ["random"], [0], [0])

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(executors, "run", interrupted)
    try:
        sweep.execute(specs, tmp_path)
    except KeyboardInterrupt as exc:
        kept = exc  # as a notebook keeps it: its traceback holds the sweep's frames
    with claims.claim(tmp_path / specs[0].folder(), specs[0].to_dict(), wait=False) as held:
        assert held and kept.__traceback__ is not None


def test_two_overlapping_sweeps_train_each_run_once(tmp_path: Path) -> None:
    first, second = start(tmp_path, 0.6), start(tmp_path, 0.6)
    outputs = [proc.communicate(timeout=600) for proc in (first, second)]
    assert [proc.returncode for proc in (first, second)] == [0, 0], outputs
    trained = trained_by(outputs[0][0]) + trained_by(outputs[1][0])
    assert len(trained) == len(set(trained)) == 8
    assert all(trained_by(out) for out, _ in outputs)  # both did share the work
    done = [line.split()[1:] for out, _ in outputs for line in out.splitlines() if line.startswith("DONE")]
    assert sorted(int(t) for t, _ in done) == sorted(len(trained_by(out)) for out, _ in outputs)
    assert len(store.results(tmp_path)) == 8 and (tmp_path / store.CSV_FILE).read_text().count("\n") == 9


KILLS = 5


def finished_runs(out: Path) -> dict[str, str]:
    """Each finished run folder under `out` with the time its run.json says it was made."""
    return {str(p.parent.relative_to(out)): json.loads(p.read_text())["created"]
            for p in out.glob(f"models/**/{store.RUN_FILE}") if store.read_run(p.parent) is not None}


def test_a_sweep_killed_again_and_again_loses_no_run_and_ends_as_an_uninterrupted_one(tmp_path: Path) -> None:
    rng, killed, kills, made = random.Random(11), tmp_path / "killed", 0, {}
    for _ in range(KILLS):
        proc = start(killed, 0.3)
        started = 0
        for line in proc.stdout:  # kill at a random moment of the second run this command starts (training or writing)
            started += line.startswith("TRAIN")
            if started == 2:
                time.sleep(rng.uniform(0.0, 0.6))
                proc.send_signal(signal.SIGKILL)
                break
        proc.communicate(timeout=600)
        if proc.returncode == 0:
            break
        kills += 1
        assert proc.returncode == -signal.SIGKILL
        for run, created in finished_runs(killed).items():  # a finished run is never trained again
            assert made.setdefault(run, created) == created
    last = start(killed, 0.0)
    out, err = last.communicate(timeout=600)
    assert last.returncode == 0 and f"DONE {8 - len(made)} {len(made)}" in out, err
    print(f"{kills} kills survived, {len(made)} runs finished before the last restart, runs lost: 0")
    assert kills >= 3 and all(finished_runs(killed)[run] == created for run, created in made.items())
    whole = start(tmp_path / "whole", 0.0)
    assert whole.communicate(timeout=600) and whole.returncode == 0
    keys = ("run_dir", "test_accuracy", "best_val_accuracy", "epochs_run", "n_poisoned")
    assert [[r[k] for k in keys] for r in store.results(killed)] == [[r[k] for k in keys]
                                                                      for r in store.results(tmp_path / "whole")]
    assert len(store.results(killed)) == 8 and (killed / store.CSV_FILE).read_text().count("\n") == 9
    assert not list(killed.glob("models/**/.*.tmp"))
    assert all(p.read_bytes() == b"" for p in killed.glob(f"models/**/{claims.CLAIM_FILE}"))  # all released


CLI_DRIVER = """
import sys, time
from poisonlab.cli import main
from poisonlab.studies import executors
def stuck(spec, *args, **kwargs):
    print("TRAIN", spec.percent, spec.seed, flush=True)
    time.sleep(600)
executors.run = stuck
main(sys.argv[1:])
"""
TRAIN = ("train", "--dataset", "digits", "--model", "logreg", "--percents", "10")


def test_a_command_killed_while_training_is_taken_over_by_the_next(tmp_path: Path, cli) -> None:
    proc = subprocess.Popen([sys.executable, "-c", CLI_DRIVER, *TRAIN, "--out", str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": SRC})
    assert proc.stdout.readline().startswith("TRAIN 10.0 0")
    (run_dir,) = [p.parent for p in tmp_path.glob(f"models/**/{claims.CLAIM_FILE}")]
    assert json.loads((run_dir / claims.CLAIM_FILE).read_text())["pid"] == proc.pid  # it holds the run
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    code, text = cli.text(*TRAIN, "--out", tmp_path)
    assert code == 0 and "1 runs trained" in text, text
    assert f"taking over {run_dir} from a command that stopped while training it (pid {proc.pid})" in text
    assert store.read_run(run_dir) is not None and (run_dir / claims.CLAIM_FILE).read_bytes() == b""


def test_a_command_raising_mid_run_releases_its_claim(tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("the training broke")

    monkeypatch.setattr(executors, "run", broken)
    with pytest.raises(RuntimeError, match="the training broke"):
        cli(*TRAIN, "--out", tmp_path)
    (run_dir,) = [p.parent for p in tmp_path.glob(f"models/**/{claims.CLAIM_FILE}")]
    assert (run_dir / claims.CLAIM_FILE).read_bytes() == b""  # released, and not left as a dead command's claim
    with claims.claim(run_dir, {"other": "settings"}, wait=False) as held:
        assert held  # free at once, in this very process that raised
    monkeypatch.undo()
    code, text = cli.text(*TRAIN, "--out", tmp_path)
    assert code == 0 and "1 runs trained" in text and "taking over" not in text, text
