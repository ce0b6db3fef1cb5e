"""Results on disk: atomic writes, run records (run.json), the SQLite results table and its CSV export."""

from __future__ import annotations

import csv
import errno
import fcntl
import hashlib
import io
import json
import os
import re
import sqlite3
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from poisonlab.errors import PoisonlabError, PoisonlabWarning
from poisonlab.files import (MAX_RECORD_BYTES, MAX_WEIGHTS_BYTES, check_output_file, check_output_folder, read_json,
                             read_limited)

RUN_FILE = "run.json"
WEIGHTS_FILE = "model.safetensors"
MODEL_META_FILE = "model.json"
DB_FILE = "results.sqlite"
CSV_FILE = "results.csv"

COLUMNS = (
    "run_dir", "dataset", "dataset_size", "kind", "percent", "seed", "model", "val", "num_classes", "n_train",
    "n_poisoned", "test_accuracy", "best_val_accuracy", "epochs_run", "train_seconds", "created", "select",
    "attack_success_rate", "preset", "biased_rule", "defence",
)
ADDED_COLUMNS = {"select": "'random'", "attack_success_rate": "NULL", "preset": "NULL", "biased_rule": "NULL",
                 "defence": "'none'"}  # columns newer than the table: name -> default


def atomic_write(path: Path, data: bytes | str, mode: int | None = None) -> None:
    """Write `data` to a temp file beside `path`, then rename it over `path`; `mode` defaults to 0o666 less the umask.

    A failed write (a full disk) leaves `path` as it was, removes the temp file and is a one-line error; a `path`
    that is not a regular file (a device, a FIFO, a folder) is refused, never replaced."""
    check_output_file(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.chmod(tmp, _default_mode() if mode is None else mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise write_failed(path, exc) from None
        raise


def write_failed(path: Path, exc: OSError) -> PoisonlabError:
    """The one-line error of a write to `path` that failed (a full disk, a quota, a folder that went away)."""
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
    fix = "free some space there or choose another output folder" if full else "check that folder and try again"
    return PoisonlabError(f"cannot write {path} ({exc.strerror or exc}); {fix}")


def _default_mode() -> int:
    """The mode a plain open() would give a new file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def save_array(path: Path, array: np.ndarray) -> None:
    """Write one array as .npy, atomically and without pickle."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    atomic_write(path, buf.getvalue())


def write_json(path: Path, obj) -> None:
    """Atomically write `obj` as indented JSON."""
    atomic_write(path, json.dumps(obj, indent=1, allow_nan=False) + "\n")


def ensure_writable(folder: Path) -> Path:
    """Prove that `folder` takes a file (see `files.check_output_folder`), then create it."""
    check_output_folder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def ensure_writable_file(path: Path) -> Path:
    """Prove, before any work, that `path` can be written atomically: a regular file or a new path, in a folder that
    takes a file (or can be created: nothing is created yet)."""
    check_output_file(path)
    check_output_folder(path.parent)
    return path


def read_run(path: Path, *, required: bool = False, weights: bool = True) -> dict | None:
    """The record of a finished run, from its folder or its run.json (and, with `weights`, its intact weights file).

    None when it is missing, unreadable, incomplete or (with `weights`) its weights are missing or damaged; with
    `required` a one-line error instead."""
    file = path / RUN_FILE if path.is_dir() or not path.name.endswith(".json") else path
    try:
        run = read_json(file, f"run record {file}", MAX_RECORD_BYTES, "")
    except PoisonlabError:  # missing, special, oversized or not JSON: not a finished run
        run = None
    finished = (isinstance(run, dict) and run.get("status") == "complete" and isinstance(run.get("config"), dict)
                and isinstance(run.get("metrics"), dict) and (not weights or weights_problem(file.parent, run) is None))
    if finished:
        return run
    if required:
        raise PoisonlabError(f"{path} is not a finished poisonlab run (no complete {RUN_FILE}"
                             f"{' with intact weights' if weights else ''}); give the folder of a run that completed, "
                             "such as runs/models/<name>/<percent>/seed0")
    return None


def field(run: dict, dotted: str, kind: type | tuple[type, ...], items: type | None = None):
    """`run["a"]["b"]` for dotted "a.b", checked to be a `kind` (a list of `items` when given), or a one-line error."""
    value = run
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    ok = isinstance(value, kind) and not isinstance(value, bool)
    if ok and items is not None:
        ok = all(isinstance(v, items) and not isinstance(v, bool) for v in value)
    if not ok:
        wanted = f"a list of {items.__name__}" if items is not None else getattr(kind, "__name__", str(kind))
        raise PoisonlabError(f"the run record's {dotted} is missing or not {wanted} (a damaged {RUN_FILE}); "
                             "restore it from a copy or train the run again")
    return value


def weights_digest(data: bytes) -> str:
    """The "sha256:<hex>" recorded in run.json as `weights_sha256`."""
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def weights_problem(run_dir: Path, run: dict) -> str | None:
    """Why the saved model beside a run record cannot be trusted, or None when it is intact: the record names no
    `weights_sha256` (so nothing could be verified: a run saved before the check existed, or an edited record), the
    weights are missing or not that SHA-256, or model.json is missing or not a model description."""
    recorded = run.get("weights_sha256")
    if not isinstance(recorded, str):
        return f"its {RUN_FILE} records no weights_sha256, so its weights cannot be verified"
    try:
        data = read_limited(run_dir / WEIGHTS_FILE, WEIGHTS_FILE, MAX_WEIGHTS_BYTES, "")
        meta = read_json(run_dir / MODEL_META_FILE, MODEL_META_FILE, MAX_RECORD_BYTES, "")
    except PoisonlabError as exc:
        return str(exc).removeprefix("cannot read ").split(";")[0]
    if weights_digest(data) != recorded:
        return f"{WEIGHTS_FILE} does not match its recorded SHA-256"
    if not isinstance(meta, dict) or meta.get("format") not in ("torch", "sklearn"):
        return f"{MODEL_META_FILE} is not a model description"
    return None


def clean_temp(run_dir: Path) -> list[Path]:
    """Delete the temp files (`.<name>.*.tmp`) that writes killed half-way left in `run_dir`; returns them."""
    stale = [p for p in run_dir.glob(".*.tmp") if p.is_file()] if run_dir.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def slug(spec: str) -> str:
    """A folder-safe name for a dataset spec (imagefolder:PATH becomes imagefolder-<stem>)."""
    if spec.startswith("imagefolder:"):
        spec = "imagefolder-" + Path(spec.split(":", 1)[1].split("?")[0]).name.split(".")[0]
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", spec)


def poison_mask(run: dict) -> np.ndarray:
    """Boolean mask over the run's training items: True where the label was poisoned."""
    mask = np.zeros(run["dataset"]["n_train"], dtype=bool)
    mask[run["poison"]["indices"]] = True
    return mask


@contextmanager
def _connect(out: Path) -> Iterator[sqlite3.Connection]:
    """Open (and create) the results table; commit on success and always close; a damaged file is a one-line error."""
    db = sqlite3.connect(out / DB_FILE, timeout=60)
    try:
        with db:
            columns = ", ".join('"' + c + '"' + (" PRIMARY KEY" if c == "run_dir" else "") for c in COLUMNS)
            db.execute(f"CREATE TABLE IF NOT EXISTS runs ({columns})")
            present = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
            for column, default in ADDED_COLUMNS.items():  # a table written by an older poisonlab gains them at the end
                if column not in present:
                    db.execute(f'ALTER TABLE runs ADD COLUMN "{column}" DEFAULT {default}')
            yield db
    except sqlite3.DatabaseError as exc:
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
            raise write_failed(out / DB_FILE, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))) from None
        raise PoisonlabError(f"cannot use the results table {out / DB_FILE} ({exc}); delete it to rebuild it from "
                             "the run folders, or choose another output folder") from None
    finally:
        db.close()


def row_of(run: dict, run_dir: str) -> dict:
    """The results-table row of one run.json, or a one-line error when the record lacks a part of it."""
    try:
        return _row(run, run_dir)
    except (KeyError, TypeError, IndexError) as exc:
        raise PoisonlabError(f"the record of run {run_dir} is damaged (missing or malformed {exc}); delete that run "
                             "folder so it is trained again") from None


def _row(run: dict, run_dir: str) -> dict:
    """The row itself; KeyError or TypeError on a damaged record."""
    cfg = run["config"]
    return {
        "run_dir": run_dir, "dataset": cfg["dataset"], "dataset_size": cfg["dataset_size"], "kind": cfg["kind"],
        "percent": cfg["percent"], "seed": cfg["seed"], "model": cfg["model"], "val": cfg["val"],
        "num_classes": run["dataset"]["num_classes"], "n_train": run["dataset"]["n_train"],
        "n_poisoned": run["poison"]["n_poisoned"], "test_accuracy": run["metrics"]["accuracy"],
        "best_val_accuracy": run["training"]["best_val_accuracy"], "epochs_run": run["training"]["epochs_run"],
        "train_seconds": run["timings"]["train_s"], "created": run["created"], "select": cfg.get("select", "random"),
        "attack_success_rate": run["metrics"].get("attack_success_rate"), "preset": cfg.get("preset"),
        "biased_rule": cfg.get("biased_rule", "readme") if cfg["kind"] == "biased" else None,
        "defence": cfg.get("defence", "none"),
    }


def row_problem(run: dict) -> str | None:
    """Why a finished run's record cannot give a results row (a damaged run.json), or None."""
    try:
        row_of(run, "")
    except PoisonlabError as exc:
        return str(exc)
    return None


def _upsert(db: sqlite3.Connection, out: Path, run: dict, run_dir: Path) -> None:
    """Insert or replace the row of one run."""
    row = row_of(run, run_dir.relative_to(out).as_posix())
    db.execute(f"INSERT OR REPLACE INTO runs VALUES ({', '.join('?' * len(COLUMNS))})", [row[c] for c in COLUMNS])


def record(out: Path, run: dict, run_dir: Path) -> None:
    """Upsert one finished run into the SQLite table and refresh the CSV export, one command at a time."""
    with open(out / ".results.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # so that the CSV a concurrent command writes last is never older
        with _connect(out) as db:
            _upsert(db, out, run, run_dir)
        export_csv(out)


def results(out: Path) -> list[dict]:
    """Every row of the results table, ordered by dataset, kind, size, percent, seed."""
    if not (out / DB_FILE).exists():
        return []
    with _connect(out) as db:
        cur = db.execute('SELECT * FROM runs ORDER BY dataset, kind, "select", dataset_size, model, val, percent, seed')
        return [dict(zip(COLUMNS, r)) for r in cur.fetchall()]


def results_rebuilt(out: Path) -> list[dict]:
    """The results table (first rebuilt from the run folders when it is missing or empty), checked row by row
    against the run records, which are the truth: a row whose run.json is gone or unfinished is left out, a row that
    disagrees with its run.json (an edited table) is replaced by the record's; either is a `PoisonlabWarning`."""
    rows = results(out)
    if not rows and (out / "models").is_dir():
        reindex(out)
        rows = results(out)
    checked, gone, edited = [], [], []
    for row in rows:
        run = read_run(out / row["run_dir"], weights=False) if _inside(out, row["run_dir"]) else None
        if run is None or row_problem(run) is not None:
            gone.append(row["run_dir"])
            continue
        truth = row_of(run, row["run_dir"])
        if truth != row:
            edited.append(f"{row['run_dir']}: " + ", ".join(f"{k} {row[k]} -> {truth[k]}" for k in COLUMNS
                                                            if row[k] != truth[k]))
        checked.append(truth)
    if gone:
        warnings.warn(f"the results table of {out} lists {len(gone)} run(s) with no finished {RUN_FILE} (first: "
                      f"{gone[0]}); left out", PoisonlabWarning, stacklevel=2)
    if edited:
        warnings.warn(f"the results table of {out} disagrees with {len(edited)} run record(s) (first: {edited[0]}); "
                      f"the {RUN_FILE} values are used", PoisonlabWarning, stacklevel=2)
    return checked


def _inside(out: Path, run_dir: object) -> bool:
    """Whether a table's run_dir is a relative path that stays inside `out`."""
    return isinstance(run_dir, str) and bool(run_dir) and not Path(run_dir).is_absolute() \
        and ".." not in Path(run_dir).parts


def export_csv(out: Path) -> None:
    """Rewrite results.csv from the table, atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(results(out))
    atomic_write(out / CSV_FILE, buf.getvalue())


def reindex(out: Path) -> int:
    """Rebuild the results table from every complete run.json under `out`/models; returns the run count."""
    runs = [(p.parent, read_run(p.parent)) for p in sorted((out / "models").glob(f"**/{RUN_FILE}"))]
    runs = [(d, r) for d, r in runs if r and row_problem(r) is None]
    (out / DB_FILE).unlink(missing_ok=True)
    with _connect(out) as db:
        for run_dir, run in runs:
            _upsert(db, out, run, run_dir)
    export_csv(out)
    return len(runs)



def results_frame(out: Path):
    """Every run under results folder `out` as a pandas DataFrame, one row per run (columns as results.csv)."""
    import pandas as pd

    return pd.DataFrame(results_rebuilt(Path(out)), columns=list(COLUMNS))
