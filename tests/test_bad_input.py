"""One-line errors everywhere: every command with wrong values, unusable output paths and damaged inputs ends with
exit code 2 and one line `error: ...`, before any work that could be lost."""

import errno
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from poisonlab import store

HUGE_SEED = str(2**64)
UNWRITABLE = "/proc/poisonlab-no/such/place"  # not creatable, even by root
DIGITS = ("--dataset", "digits")
FLIP = ("flip", *DIGITS, "--source", "3", "--target", "8", "--n", "5", "--model", "logreg")
DETECT = ("detect", *DIGITS, "--method", "knn-pixels")
# (category, regex the error line must match, arguments); {tmp} is the test's folder, see `place`.
CASES = [
    # wrong types
    ("type", r"percent 'abc' is not a number", ("train", "--percents", "abc", "--out", "{tmp}/o")),
    ("type", r"Invalid value for '--epochs'", ("train", "--epochs", "ten")),
    ("type", r"seed '1\.5' is not a number", ("train", "--seeds", "1.5", "--out", "{tmp}/o")),
    ("type", r"number of flips 'x' is not a number", (*FLIP[:-4], "--n", "x")),
    ("type", r"Invalid value for '--below'", ("budget", "--below", "low")),
    ("type", r"Invalid value for '--folds'", ("detect", "--folds", "many")),
    ("type", r"Invalid value for '--threshold'", ("validate", *DIGITS, "--threshold", "high")),
    ("type", r"Invalid value for '--alpha'", ("monitor", "counts", "--baseline", "{tmp}/counts.json", "--alpha", "x")),
    ("type", r"Invalid value for '--limit'", ("manifest", "verify", "{tmp}/m.json", "--limit", "all")),
    ("type", r"No such option: --bogus", ("train", "--bogus")),
    ("type", r"Missing argument 'MANIFEST'", ("manifest", "verify")),
    # out of range
    ("range", r"percent 150 is outside 0\.\.100|percent.*150", ("train", "--percents", "150", "--out", "{tmp}/o")),
    ("range", r"percent.*-5", ("train", "--percents", "-5", "--out", "{tmp}/o")),
    ("range", r"percent 'inf' is not a finite number", ("train", "--percents", "0,inf", "--out", "{tmp}/o")),
    ("range", r"percent 'nan' is not a finite number", ("train", "--percents", "nan", "--out", "{tmp}/o")),
    ("range", r"Invalid value for '--threshold'", ("validate", *DIGITS, "--threshold", "inf")),
    ("range", r"Invalid value for '--threshold'", ("validate", *DIGITS, "--threshold", "1e400")),
    ("range", r"dataset size -1 is negative", ("train", "--dataset-size", "-1", "--out", "{tmp}/o")),
    ("range", r"Invalid value for '--epochs'", ("train", "--epochs", "0")),
    ("range", r"Invalid value for '--batch-size'", ("train", "--batch-size", "0")),
    ("range", r"seed -1 is negative", ("train", "--seeds", "-1", "--out", "{tmp}/o")),
    ("range", r"seed 18446744073709551616 is too large", ("train", *DIGITS, "--seeds", HUGE_SEED, "--out", "{tmp}/o")),
    ("range", r"seed 18446744073709551616 is too large", (*FLIP, "--seeds", HUGE_SEED, "--out", "{tmp}/o")),
    ("range", r"seed 18446744073709551616 is too large", ("backdoor", *DIGITS, "--target", "0", "--seeds", HUGE_SEED,
                                                         "--out", "{tmp}/bd")),
    ("range", r"Invalid value for '--seed'", (*DETECT, "--seed", HUGE_SEED)),
    ("range", r"Invalid value for '--seed'", ("validate", *DIGITS, "--seed", HUGE_SEED)),
    ("range", r"number of flips -1 is negative", (*FLIP[:-4], "--n", "-1")),
    ("range", r"Invalid value for '--dataset-size' / '--train-size'", (*FLIP, "--train-size", "-1")),
    ("range", r"threshold 1\.5 is outside \(0, 1\]", ("budget", *DIGITS, "--source", "3", "--target", "8",
                                                      "--below", "1.5", "--model", "logreg", "--out", "{tmp}/b")),
    ("range", r"Invalid value for '--precision'", ("budget", "--precision", "0")),
    ("range", r"Invalid value for '--folds'", ("detect", "--folds", "1")),
    ("range", r"jobs must be a whole number of at least 1, got 0", (*DETECT, "--jobs", "0")),
    ("range", r"jobs must be a whole number of at least 1, got -2", (*FLIP, "--jobs", "-2", "--out", "{tmp}/f")),
    ("range", r"jobs must be a whole number of at least 1, got 0", ("budget", *DIGITS, "--source", "3", "--target", "8",
                                                                    "--jobs", "0", "--out", "{tmp}/b")),
    ("range", r"jobs must be a whole number of at least 1, got -1", ("backdoor", *DIGITS, "--target", "0",
                                                                     "--jobs", "-1", "--out", "{tmp}/bd")),
    ("range", r"percent.*101", (*DETECT, "--percent", "101")),
    ("range", r"fewer training items \(3\) than folds \(5\)", (*DETECT, "--dataset-size", "3")),
    ("range", r"Invalid value for '--threshold'", ("validate", *DIGITS, "--threshold", "-1")),
    ("range", r"Invalid value for '--dataset-size'", ("validate", *DIGITS, "--dataset-size", "-1")),
    ("range", r"alpha must be strictly between 0 and 1", ("monitor", "counts", "--baseline", "{tmp}/counts.json",
                                                          *DIGITS, "--alpha", "1.5")),
    ("range", r"alpha must be strictly between 0 and 1", ("monitor", "accuracy", "--baseline", "{tmp}/runA",
                                                          "--candidate", "{tmp}/runA", "--alpha", "0")),
    ("range", r"Invalid value for '--dataset-size'", ("manifest", "build", "--out", "{tmp}/n.json", "--dataset-size", "-1")),
    ("range", r"Invalid value for '--epochs'", ("demo", "--epochs", "0")),
    ("range", r"percent.*200", ("demo", "--percents", "200", "--out", "{tmp}/d")),
    ("range", r"dataset_size 5000 is larger|5000", ("train", *DIGITS, "--dataset-size", "5000", "--out", "{tmp}/o")),
    # empty values
    ("empty", r"no datasets given", ("train", "--dataset", "", "--out", "{tmp}/o")),
    ("empty", r"no datasets given", ("train", "--dataset", " , ", "--out", "{tmp}/o")),
    ("empty", r"no poisoning kinds given", ("train", "--kinds", "", "--out", "{tmp}/o")),
    ("empty", r"no percent given", ("train", "--percents", ",", "--out", "{tmp}/o")),
    ("empty", r"no seed given", ("train", "--seeds", "", "--out", "{tmp}/o")),
    ("empty", r"no datasets given", ("analyse", "--datasets", "", "--out", "{tmp}/o")),
    ("empty", r"no detection methods given", ("detect", "--method", "")),
    ("empty", r"no poisoning kinds given", ("detect", "--poison", "")),
    ("empty", r"no number of flips given", (*FLIP[:-4], "--n", "")),
    ("empty", r"class ''|no class|empty", (*FLIP[:3], "--source", "", "--target", "8", "--n", "5", "--model", "logreg")),
    ("empty", r"unknown dataset ''|needs a dataset|no dataset", ("manifest", "build", "--dataset", "", "--out", "{tmp}/n.json")),
    ("empty", r"unknown dataset ''|no dataset", ("validate", "--dataset", "")),
    # unknown names
    ("unknown", r"unknown dataset 'nope'", ("train", "--dataset", "nope", "--out", "{tmp}/o")),
    ("unknown", r"unknown model 'nope'", ("train", "--model", "nope", "--out", "{tmp}/o")),
    ("unknown", r"unknown poisoning kind 'nope'", ("train", "--kinds", "nope", "--out", "{tmp}/o")),
    ("unknown", r"unknown validation mode 'nope'", ("train", "--val", "nope", "--out", "{tmp}/o")),
    ("unknown", r"unknown executor 'nope'; choose one of local, ray", ("train", *DIGITS, "--executor", "nope", "--out", "{tmp}/o")),
    ("unknown", r"cannot reach a Ray cluster at 127\.0\.0\.1:1 ", ("train", *DIGITS, "--executor", "ray", "--address", "127.0.0.1:1",
                                                               "--out", "{tmp}/o")),
    ("type", r"Ray cluster address 'head' is not HOST:PORT", ("train", *DIGITS, "--executor", "ray", "--address", "head",
                                                               "--out", "{tmp}/o")),
    ("range", r"Invalid value for '--gpus-per-run'", ("train", *DIGITS, "--executor", "ray", "--gpus-per-run", "-1")),
    ("unknown", r"nope", ("train", "--dataset", "cifar10", "--labels", "cifar10n:nope", "--out", "{tmp}/o")),
    ("unknown", r"42", (*FLIP[:3], "--source", "42", "--target", "8", "--n", "5", "--model", "logreg")),
    ("unknown", r"unknown selection 'nope'", (*FLIP, "--select", "nope")),
    ("unknown", r"unknown metric 'nope'", ("budget", *DIGITS, "--metric", "nope")),
    ("unknown", r"nope", ("detect", "--method", "nope")),
    ("unknown", r"unknown poisoning kind 'nope'", ("detect", "--poison", "nope")),
    ("unknown", r"nope", (*DETECT, "--then", "nope")),
    ("unknown", r"nope", (*DETECT, "--detector-model", "nope")),
    ("unknown", r"unknown dataset 'nope'", ("validate", "--dataset", "nope")),
    ("unknown", r"unknown dataset 'nope'", ("manifest", "build", "--dataset", "nope", "--out", "{tmp}/n.json")),
    ("unknown", r"cannot read manifest .*missing\.json", ("manifest", "verify", "{tmp}/missing.json")),
    ("unknown", r"missing\.log", ("manifest", "log", "--log", "{tmp}/missing.log", "--check")),
    ("unknown", r"cannot read baseline", ("monitor", "counts", "--baseline", "{tmp}/missing.json", *DIGITS)),
    ("unknown", r"is not a finished poisonlab run", ("monitor", "accuracy", "--baseline", "{tmp}/nothing",
                                                     "--candidate", "{tmp}/nothing")),
    ("unknown", r"no random runs", ("analyse", "--out", "{tmp}/empty")),
    ("unknown", r"no random runs for nope", ("analyse", "--datasets", "nope", "--out", "{tmp}/empty")),
    # conflicting settings
    ("conflict", r"--biased and --all contradict", ("analyse", "--biased", "--all")),
    ("conflict", r"--cifar-n is only read with --labels", ("train", "--cifar-n", "{tmp}/x.npz", "--out", "{tmp}/o")),
    ("conflict", r"--address is only read with --executor ray", ("train", *DIGITS, "--address", "head:6379", "--out", "{tmp}/o")),
    ("conflict", r"--cpus-per-run, --gpus-per-run are only read with --executor ray", ("train", *DIGITS, "--cpus-per-run", "2",
                                                                                      "--gpus-per-run", "1", "--out", "{tmp}/o")),
    ("conflict", r"--jobs sets the local executor's worker processes", ("train", *DIGITS, "--executor", "ray", "--jobs", "2",
                                                                        "--out", "{tmp}/o")),
    ("conflict", r"--kinds", ("train", "--dataset", "cifar10", "--labels", "cifar10n:aggre", "--kinds", "random",
                              "--out", "{tmp}/o")),
    ("conflict", r"source and target|same class", (*FLIP[:3], "--source", "3", "--target", "3", "--n", "5")),
    ("conflict", r"--run sets the dataset", ("validate", *DIGITS, "--run", "{tmp}/runA")),
    ("conflict", r"--run sets the dataset", ("manifest", "verify", "{tmp}/m.json", *DIGITS, "--run", "{tmp}/runA")),
    ("conflict", r"choose two different classes", ("monitor", "counts", "--baseline", "{tmp}/counts.json", *DIGITS,
                                                   "--source", "1", "--target", "1")),
    ("conflict", r"cifar10", ("detect", "--dataset", "mnist", "--labels", "cifar10n:aggre")),
    ("conflict", r"already exist", ("manifest", "keygen", "--out", "{tmp}/key")),
    # output paths that are folders or cannot be written
    ("output", r"--out was given an empty path", ("train", *DIGITS, "--out", "")),
    ("output", r"--out was given an empty path", ("manifest", "keygen", "--out", "")),
    ("output", r"--json was given an empty path", (*FLIP, "--json=")),
    ("output", r"an empty path was given", ("manifest", "verify", "")),
    ("output", r"output file /dev/null is a character device, not a regular file",
     ("validate", *DIGITS, "--json", "/dev/null")),
    ("output", r"output file /dev/full is a character device", (*FLIP, "--out", "{tmp}/f", "--json", "/dev/full")),
    ("output", r"output file /dev/full is a character device", ("report", "--out", "{tmp}", "--file", "/dev/full")),
    ("output", r"cannot write to output folder", ("train", *DIGITS, "--out", "{tmp}/file")),
    ("output", r"cannot write to output folder", ("train", *DIGITS, "--out", UNWRITABLE)),
    ("output", r"cannot write to output folder", ("demo", "--out", "{tmp}/file/sub")),
    ("output", r"cannot write to output folder", (*FLIP, "--out", "{tmp}/file")),
    ("output", r"is a folder", (*FLIP, "--out", "{tmp}/flipout", "--json", "{tmp}/folder")),
    ("output", r"cannot write to output folder", (*FLIP, "--out", "{tmp}/flipout", "--json", f"{UNWRITABLE}/f.json")),
    ("output", r"is a folder", ("budget", *DIGITS, "--source", "3", "--target", "8", "--model", "logreg",
                                "--out", "{tmp}/flipout", "--json", "{tmp}/folder")),
    ("output", r"is a folder", (*DETECT, "--json", "{tmp}/folder", "--out", "{tmp}/det")),
    ("output", r"cannot write to output folder", (*DETECT, "--out", "{tmp}/file")),
    ("output", r"is a folder", ("validate", *DIGITS, "--json", "{tmp}/folder")),
    ("output", r"is a folder", ("validate", *DIGITS, "--write-schema", "{tmp}/folder")),
    ("output", r"cannot write to output folder", ("validate", *DIGITS, "--write-schema", f"{UNWRITABLE}/s.json")),
    ("output", r"is a folder", ("report", "--out", "{tmp}/empty", "--file", "{tmp}/folder")),
    ("output", r"cannot write to output folder", ("report", "--out", "{tmp}/empty", "--file", f"{UNWRITABLE}/r.html")),
    ("output", r"is a folder", ("manifest", "build", *DIGITS, "--out", "{tmp}/folder")),
    ("output", r"cannot write to output folder", ("manifest", "build", *DIGITS, "--out", f"{UNWRITABLE}/m.json")),
    ("output", r"is a folder", ("manifest", "build", *DIGITS, "--out", "{tmp}/n.json", "--log", "{tmp}/folder")),
    ("output", r"is a folder", ("manifest", "verify", "{tmp}/m.json", "--json", "{tmp}/folder")),
    ("output", r"is a folder", ("manifest", "verify", "{tmp}/m.json", "--log", "{tmp}/folder")),
    ("output", r"cannot write to output folder", ("manifest", "keygen", "--out", f"{UNWRITABLE}/key")),
    # damaged inputs
    ("damaged", r"cannot read manifest .*garbage.json \(.*\); build one", ("manifest", "verify", "{tmp}/garbage.json")),
    # special files as inputs: refused before a byte is read (/dev/zero would grow without end)
    ("damaged", r"cannot read schema /dev/zero as JSON \(it is a character device, not a regular file\)",
     ("validate", *DIGITS, "--schema", "/dev/zero")),
    ("damaged", r"cannot read private key /dev/zero \(it is a character device",
     ("manifest", "build", *DIGITS, "--out", "{tmp}/z.json", "--sign-key", "/dev/zero")),
    ("damaged", r"cannot read public key /dev/zero \(it is a character device",
     ("manifest", "verify", "{tmp}/m.json", "--public-key", "/dev/zero")),
    ("damaged", r"cannot read manifest /dev/zero \(it is a character device", ("manifest", "verify", "/dev/zero")),
    ("damaged", r"private key .*huge.pem is larger than the 65536 bytes such a file may have \(3221225472 bytes\)",
     ("manifest", "build", *DIGITS, "--out", "{tmp}/h.json", "--sign-key", "{tmp}/huge.pem")),
    ("damaged", r"cannot read audit log /dev/zero \(it is a character device", ("manifest", "log", "--log", "/dev/zero")),
    ("damaged", r"cannot read baseline /dev/zero as JSON \(it is a character device",
     ("monitor", "counts", "--baseline", "/dev/zero", *DIGITS)),
    ("damaged", r"cannot read order file /dev/zero \(it is a character device",
     ("validate", "--dataset", "imagefolder:{tmp}/images?order=/dev/zero")),
    ("damaged", r"imagefolder:PATH\?order= names no order file", ("validate", "--dataset", "imagefolder:{tmp}/images?order=")),
    ("damaged", r"not an unencrypted private key", ("manifest", "build", *DIGITS, "--out", "{tmp}/n.json",
                                                     "--sign-key", "{tmp}/garbage.json")),
    ("damaged", r"not an unencrypted public key", ("manifest", "verify", "{tmp}/m.json", "--public-key", "{tmp}/garbage.json")),
    ("damaged", r"cannot read schema", ("validate", *DIGITS, "--schema", "{tmp}/garbage.json")),
    ("damaged", r"cannot read baseline", ("monitor", "counts", "--baseline", "{tmp}/garbage.json", *DIGITS)),
    ("damaged", r"cannot use the results table", ("analyse", "--out", "{tmp}/garbagedb")),
    ("damaged", r"cannot use the results table", ("report", "--out", "{tmp}/garbagedb")),
]
# Output on a full disk ({tmp}/full, see `full_disk`): one line naming the file and the lack of space, no temp file.
FULL = r"cannot write {full}/\S+ \(No space left on device\); free some space there or choose another output folder"
FULL_CASES = [
    ("train", *DIGITS, "--model", "logreg", "--percents", "10", "--out", "{tmp}/full/o"),
    (*FLIP, "--out", "{tmp}/trained/flip", "--json", "{tmp}/full/flip.json"),
    ("budget", *DIGITS, "--source", "3", "--target", "8", "--model", "logreg", "--out", "{tmp}/trained/flip",
     "--json", "{tmp}/full/budget.json"),
    ("report", "--out", "{tmp}/trained", "--file", "{tmp}/full/r.html"),
    ("analyse", "--out", "{tmp}/full/trained"),
    ("manifest", "build", *DIGITS, "--out", "{tmp}/full/n.json"),
    ("manifest", "build", *DIGITS, "--out", "{tmp}/n2.json", "--log", "{tmp}/full/n2.log"),
    ("manifest", "verify", "{tmp}/m.json", "--json", "{tmp}/full/v.json"),
    ("manifest", "keygen", "--out", "{tmp}/full/key"),
    ("validate", *DIGITS, "--json", "{tmp}/full/val.json"),
    ("validate", *DIGITS, "--write-schema", "{tmp}/full/schema.json"),
]
DAMAGED_RUNS = {
    "list": [], "null": None, "string": "complete",
    "config-list": {"status": "complete", "config": [], "metrics": {}},
    "metrics-list": {"status": "complete", "config": {"dataset": "digits"}, "metrics": []},
    "no-dataset": {"status": "complete", "config": {"dataset": "digits"}, "metrics": {"confusion": [[1]]}},
    "no-poison": {"status": "complete", "config": {"dataset": "digits", "dataset_size": 0},
                  "metrics": {}, "dataset": {"classes": ["a", "b"], "n_train": 1437}},
    "bad-indices": {"status": "complete", "config": {"dataset": "digits", "dataset_size": 0}, "metrics": {"confusion": "x"},
                    "dataset": {"classes": ["a"], "n_train": 1437}, "poison": {"indices": ["x"], "new_labels": [1]}},
    "wrong-types": {"status": "complete", "config": {"dataset": 5, "dataset_size": "all"}, "metrics": {"confusion": 3},
                    "dataset": {"classes": 7, "n_train": "many"}, "poison": {"indices": 1, "new_labels": None}},
}
DAMAGED_COMMANDS = [
    ("monitor", "accuracy", "--baseline", "{run}", "--candidate", "{run}"),
    ("validate", "--run", "{run}"),
    ("manifest", "verify", "{tmp}/m.json", "--run", "{run}"),
    ("monitor", "counts", "--baseline", "{tmp}/counts.json", "--run", "{run}"),
]


@pytest.fixture(scope="module")
def place(tmp_path_factory, shared_data) -> Path:
    """A folder with the files the cases name: a file, a folder, garbage, a manifest of digits, key files, runs."""
    from poisonlab.cli import main

    tmp = tmp_path_factory.mktemp("bad")
    (tmp / "file").write_text("a regular file")
    (tmp / "folder").mkdir()
    (tmp / "empty").mkdir()
    (tmp / "garbage.json").write_text("{not json")
    (tmp / "counts.json").write_text(json.dumps({"counts": [143] * 10}))
    for split in ("train", "test"):  # a tiny real image folder (two classes of random-pixel PNGs)
        for name in ("cat", "emu"):
            (tmp / "images" / split / name).mkdir(parents=True)
            for n in range(2):
                Image.fromarray(np.full((4, 4, 3), 40 * n + (name == "emu") * 100, np.uint8)).save(
                    tmp / "images" / split / name / f"{n}.png")
    with open(tmp / "huge.pem", "wb") as sparse:  # 3 GB that take no disk: once read whole
        sparse.truncate(3 << 30)
    (tmp / "garbagedb").mkdir()
    (tmp / "garbagedb" / store.DB_FILE).write_bytes(b"this is not an SQLite database " * 100)
    for args in (("manifest", "build", *DIGITS, "--out", tmp / "m.json"), ("manifest", "keygen", "--out", tmp / "key")):
        with pytest.raises(SystemExit) as done:
            main([str(a) for a in args])
        assert done.value.code == 0
    confusion = [[10 if i == j else 0 for j in range(10)] for i in range(10)]
    store.write_json(tmp / "runA" / store.RUN_FILE, {
        "status": "complete", "config": {"dataset": "digits", "dataset_size": 0},
        "dataset": {"classes": [str(i) for i in range(10)], "n_train": 1437},
        "poison": {"indices": [0], "new_labels": [1]}, "metrics": {"confusion": confusion}})
    for name, doc in DAMAGED_RUNS.items():
        store.write_json(tmp / "damaged" / name / store.RUN_FILE, doc)
    with pytest.raises(SystemExit) as done:
        main(["train", *DIGITS, "--model", "logreg", "--percents", "0,10", "--out", str(tmp / "trained")])
    assert done.value.code == 0
    shutil.copytree(tmp / "trained", tmp / "full" / "trained")
    return tmp


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch):
    """A function that makes a folder a full disk: flushing any file under it to disk (fsync) fails with ENOSPC, as
    it does where space is allocated late (ext4, XFS, NFS); SQLite there cannot grow its file."""
    import sqlite3

    folders: list[Path] = []
    fsync, connect = os.fsync, sqlite3.connect

    def full(path: str | Path) -> bool:
        return any(Path(path).resolve().is_relative_to(folder) for folder in folders)

    def failing_fsync(fd: int) -> None:
        if full(os.readlink(f"/proc/self/fd/{fd}")):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fsync(fd)

    def fixed_size(path, *args, **kwargs):
        db = connect(path, *args, **kwargs)
        if full(path):
            db.execute(f"PRAGMA max_page_count = {max(db.execute('PRAGMA page_count').fetchone()[0], 1)}")
        return db

    monkeypatch.setattr(os, "fsync", failing_fsync)
    monkeypatch.setattr(sqlite3, "connect", fixed_size)
    return lambda folder: folders.append(Path(folder).resolve())


def fill(args: tuple, tmp: Path, run: Path | None = None) -> list[str]:
    return [a.replace("{tmp}", str(tmp)).replace("{run}", str(run)) for a in args]


@pytest.mark.parametrize(("category", "message", "args"), CASES, ids=[f"{c[0]}-{' '.join(c[2])[:60]}" for c in CASES])
def test_bad_value_is_one_line(place: Path, cli, category: str, message: str, args: tuple) -> None:
    cli.fails(message, *fill(args, place))
    assert not [p for p in place.glob("**/model.safetensors") if "trained" not in p.parts]  # nothing was trained


def error_at_end(cli, message: str, *args) -> str:
    """Assert that a command which may print progress first ends with exit code 2 and ONE error line matching
    `message`, printed last, without a traceback; returns it."""
    code, out, err = cli(*args)
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(errors) == 1 and err.rstrip().endswith(errors[0]) and "Traceback" not in err, out + err
    assert re.search(message, errors[0]), errors[0]
    return errors[0]


@pytest.mark.parametrize("args", FULL_CASES, ids=lambda args: " ".join(args[:2]) + " " + args[-1].split("/")[-1])
def test_output_on_a_full_disk_is_one_line_and_leaves_no_temp_file(place: Path, cli, full_disk, args: tuple) -> None:
    full_disk(place / "full")
    before = sorted(p.relative_to(place) for p in (place / "full").rglob("*") if p.is_file())
    error_at_end(cli, FULL.replace("{full}", str(place / "full")), *fill(args, place))
    after = sorted(p.relative_to(place) for p in (place / "full").rglob("*") if p.is_file())
    new = set(after) - set(before)
    assert all(p.name in (".claim", "n2.log") for p in new), new  # no temp file; the flip runs' claims stay
    assert all((place / p).stat().st_size == 0 for p in new)  # released; the audit log has no half entry


def test_a_full_disk_keeps_the_finished_runs(tmp_path: Path, cli, full_disk) -> None:
    train = ("train", *DIGITS, "--model", "logreg", "--out", tmp_path)
    assert cli.code(*train, "--percents", "10") == 0
    (done,) = [p.parent for p in tmp_path.glob(f"models/**/{store.RUN_FILE}")]
    record = (done / store.RUN_FILE).read_bytes()
    full_disk(tmp_path / "models")  # results.csv can still be written: the weights of run 20 cannot
    line = error_at_end(cli, r"cannot write .*/20/seed0/model\.safetensors \(No space left on device\)", *train,
                        "--percents", "10,20")
    assert (done / store.RUN_FILE).read_bytes() == record and store.read_run(done) is not None, line
    assert [r["percent"] for r in store.results(tmp_path)] == [10]
    assert not list(tmp_path.rglob("*.tmp")) and not list(tmp_path.glob(f"models/**/20/**/{store.RUN_FILE}"))


def test_a_full_disk_under_the_results_table(place: Path, tmp_path: Path, full_disk) -> None:
    from poisonlab.errors import PoisonlabError

    run_dir = next((place / "trained").glob(f"models/**/{store.RUN_FILE}")).parent
    full_disk(tmp_path)
    with pytest.raises(PoisonlabError, match=rf"^cannot write {tmp_path / store.DB_FILE} \(No space left on device\)"):
        store.record(tmp_path, store.read_run(run_dir), tmp_path / "models" / "run")


def test_a_real_full_disk(tmp_path: Path, cli) -> None:
    """A tmpfs filled to the last byte (mounted in a user namespace, where the system allows one)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    script = 'mount -t tmpfs -o size=64k tmpfs "$0" && (head -c 1M /dev/zero > "$0/fill" 2>/dev/null; exec "$@")'
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    if subprocess.run(["unshare", "-rm", "sh", "-c", script, str(mount), "true"], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (no unprivileged user namespaces)")
    for args, message in [(("train", *DIGITS, "--model", "logreg", "--out", f"{mount}/o"), "cannot write to output folder"),
                          ((*FLIP, "--out", f"{mount}/f"), "cannot write to output folder"),
                          (("manifest", "build", *DIGITS, "--out", f"{mount}/m.json"), "cannot write to output folder")]:
        done = subprocess.run(["unshare", "-rm", "sh", "-c", script, str(mount), sys.executable, "-m", "poisonlab",
                               *args], capture_output=True, text=True, env=env, timeout=300)
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode == 2 and len(lines) == 1 and message in lines[0], done.stderr
        assert "No space left on device" in lines[0], lines


@pytest.mark.parametrize(("seed", "message"), [(2**64, "seed 18446744073709551616 is too large"),
                                               (-1, "seed -1 is negative"), (1.5, "seed 1.5 is not a whole number"),
                                               (True, "seed True is not a whole number"),
                                               ("0", "seed '0' is not a whole number")])
@pytest.mark.parametrize("call", ["train", "sweep", "flip", "backdoor", "detect"])
def test_api_checks_seeds_like_the_cli(call: str, seed, message: str) -> None:
    import numpy as np

    import poisonlab
    from poisonlab.errors import PoisonlabError

    calls = {"train": lambda: poisonlab.train("digits", seed=seed),
             "sweep": lambda: poisonlab.sweep("digits", seeds=[0, seed]),
             "flip": lambda: poisonlab.flip("digits", source=3, target=8, seeds=(seed,)),
             "backdoor": lambda: poisonlab.backdoor("digits", target=0, seeds=[seed]),
             "detect": lambda: poisonlab.detect(np.zeros((10, 4)), np.zeros(10, int), seed=seed)}
    with pytest.raises(PoisonlabError, match=rf"^{message}; give seeds from 0 to 4294967295$"):
        calls[call]()


def test_api_accepts_numpy_seeds_as_plain_ints() -> None:
    import numpy as np

    from poisonlab import api

    assert api._seeds(np.array([3, 3, 2**32 - 1], dtype=np.uint64)) == [3, 2**32 - 1]
    assert api._seeds(np.int64(7)) == [7] and type(api._seeds(np.int64(7))[0]) is int


@pytest.mark.parametrize("damage", sorted(DAMAGED_RUNS))
@pytest.mark.parametrize("command", DAMAGED_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_damaged_run_record_is_one_line(place: Path, cli, command: tuple, damage: str) -> None:
    cli.fails(r".", *fill(command, place, place / "damaged" / damage))


def test_case_counts_by_category() -> None:
    counts: dict[str, int] = {}
    for category, _, _ in CASES:
        counts[category] = counts.get(category, 0) + 1
    print(counts, "damaged runs:", len(DAMAGED_RUNS) * len(DAMAGED_COMMANDS), "full disk:", len(FULL_CASES))
    assert set(counts) == {"type", "range", "empty", "unknown", "conflict", "output", "damaged"}


@pytest.mark.parametrize("damage", ["list", "null", "config-list", "no-dataset", "wrong-types"])
def test_damaged_run_record_under_train_resume_and_report(tmp_path: Path, cli, damage: str) -> None:
    train = ("train", *DIGITS, "--model", "logreg", "--percents", "10", "--out", tmp_path)
    assert cli.code(*train) == 0
    run_json = next(tmp_path.glob(f"models/**/{store.RUN_FILE}"))
    good = json.loads(run_json.read_text())
    doc = DAMAGED_RUNS[damage]
    store.write_json(run_json, doc if damage != "wrong-types" else {**good, "dataset": doc["dataset"]})
    code, text = cli.text("report", "--out", tmp_path, "--file", tmp_path / "r.html")
    assert code == 0 or (code == 2 and text.count("error: ") == 1 and "Traceback" not in text), text
    code, text = cli.text(*train)  # resume: a damaged record is trained again, or refused, never trusted
    if damage == "no-dataset":  # its config names other settings: the resume guard refuses to replace it
        assert code == 2 and text.count("error: ") == 1 and "holds a run made with other settings" in text, text
        return
    assert code == 0 and "1 runs trained" in text, text
    assert store.read_run(run_json.parent)["metrics"]["accuracy"] == good["metrics"]["accuracy"]


def test_flip_figures_treat_class_names_as_plain_text(tmp_path: Path, cli) -> None:
    from PIL import Image

    for split, count in (("train", 12), ("test", 4)):
        for name in (r"$\frac{$", r"a_{b}$x^2$"):
            (tmp_path / "set" / split / name).mkdir(parents=True)
            for i in range(count):
                Image.new("L", (4, 4), 20 * i if name.startswith("$") else 255 - 20 * i).save(
                    tmp_path / "set" / split / name / f"{i}.png")
    code, text = cli.text("flip", "--dataset", f"imagefolder:{tmp_path / 'set'}", "--source", r"$\frac{$", "--target",
                          r"a_{b}$x^2$", "--n", "2", "--model", "logreg", "--out", tmp_path / "flip")
    assert code == 0, text
    assert len(list((tmp_path / "flip" / "figures").glob("*.png"))) >= 3


def test_a_fifo_as_an_input_file_is_refused_not_waited_on(tmp_path: Path) -> None:
    """Opening a FIFO for reading blocks until a writer comes: inputs are opened non-blocking and refused."""
    fifo = tmp_path / "schema.json"
    os.mkfifo(fifo)
    done = subprocess.run([sys.executable, "-m", "poisonlab", "validate", "--dataset", "digits", "--schema", str(fifo)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        f"error: cannot read schema {fifo} as JSON (it is a FIFO (named pipe), not a regular file); pass a file "
        "written by --write-schema"]


@pytest.mark.parametrize("args", [
    ("budget", *DIGITS, "--source", "3", "--target", "3", "--model", "logreg"),
    (*FLIP[:-2], "--n", "99999", "--model", "logreg"),
    ("detect", *DIGITS, "--method", "bogus"),
    ("backdoor", *DIGITS, "--target", "77"),
    ("train", *DIGITS, "--percents", "0,inf"),
], ids=lambda args: args[0])
def test_rejected_input_creates_no_output_folder(tmp_path: Path, cli, args: tuple) -> None:
    assert cli(*args, "--out", tmp_path / "out")[0] == 2
    assert not (tmp_path / "out").exists()
