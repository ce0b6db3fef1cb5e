"""The one resume guard: reuse a finished run only when it was made with exactly the same settings and its files
are intact; and the one way a finished run is written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from poisonlab import store
from poisonlab.errors import PoisonlabError
from poisonlab.studies import defence
from poisonlab.training.saving import save_model


def differences(saved: dict, wanted: dict, prefix: str = "") -> list[str]:
    """Every setting that differs, as 'name old -> new' (nested settings as 'train.max_epochs')."""
    changed = []
    for key in sorted(set(saved) | set(wanted)):
        old, new = saved.get(key), wanted.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changed += differences(old, new, f"{prefix}{key}.")
        elif old != new:
            changed.append(f"{prefix}{key} {old} -> {new}")
    return changed


LEGACY_TRAIN = {"precision": "fp32"}  # settings added since older runs were saved, as those runs trained


def _complete(config: dict) -> dict:
    """A saved config with settings it predates filled in as that run trained (a run saved before `precision` was fp32)."""
    train = config.get("train")
    return {**config, "train": {**LEGACY_TRAIN, **train}} if isinstance(train, dict) else config


def defence_changes(saved: dict, config: dict) -> list[str]:
    """The settings of the config's defence (its loss weights, rates, shares) that differ from those its saved
    record `saved` holds, as 'defence.name old -> new'; settings a record predates are not compared."""
    name, made = config.get("defence"), saved.get("defence")
    if not isinstance(name, str) or not isinstance(made, dict):
        return []
    wanted = defence.settings(name)
    keys = [k for k in wanted if k in made]
    return differences({k: made[k] for k in keys}, {k: wanted[k] for k in keys}, "defence.")


DATA_KEYS = ("name", "n_train", "n_test", "shape", "num_classes", "sources")  # what of a run's dataset record must match


def reusable(run_dir: Path, config: dict, overwrite: bool, note: Callable[[str], None] = lambda text: None,
             row: bool = False, data: dict | None = None) -> dict | None:
    """The saved record in `run_dir` when it may be reused; None when the run must (re)train.

    A finished run made with other settings, or (given the dataset record `data` of the data about to be used) on
    data of another name, size, shape or source digests (the files', or the fingerprint of a user's arrays), is an
    error naming each difference: a config that names only the dataset (a Dataset passed to the Python API) would
    otherwise reuse runs of other data. Damaged weights (not their
    recorded SHA-256, or not safetensors) or, with `row`, a record that gives no results row mean retraining, with a
    `note`."""
    saved = store.read_run(run_dir, weights=False)
    if saved is None or overwrite:
        return None
    changed = differences(_complete(saved["config"]), config) or defence_changes(saved, config)
    if changed:
        raise PoisonlabError(f"{run_dir} holds a run made with other settings ({'; '.join(changed)}); "
                             "retrain it (overwrite) or write to another output folder")
    if data is not None:
        made_on = saved["dataset"] if isinstance(saved.get("dataset"), dict) else {}
        keys = [k for k in DATA_KEYS if k in data and k in made_on]  # older runs may predate a key (sources)
        changed = differences({k: made_on.get(k) for k in keys}, {k: data[k] for k in keys})
        if changed:
            raise PoisonlabError(f"{run_dir} holds a run made on other data ({'; '.join(changed)}); "
                                 "retrain it (overwrite) or write to another output folder")
    problem = store.weights_problem(run_dir, saved) or (store.row_problem(saved) if row else None)
    if problem is not None:
        note(f"retraining {run_dir}: {problem}")
        return None
    return saved


def finish(run_dir: Path, record: dict, model, meta: dict) -> dict:
    """Write a finished run: its weights, then run.json with their SHA-256 (`weights_sha256`); returns the record."""
    record = {**record, "weights_sha256": save_model(run_dir, model, meta)}
    store.write_json(run_dir / store.RUN_FILE, record)
    return record


def pending(specs: list, out: Path, overwrite: bool, note: Callable[[str], None],
            data: dict | Callable[[object], dict | None] | None = None) -> tuple[list, dict]:
    """The specs still to train, and the reusable records of the others (each also put in the results table); runs
    made on other data than the dataset record `data` (or `data(spec)`, asked only where a run was saved) are an
    error (see `reusable`)."""
    todo, records = [], {}
    for spec in specs:
        saved_here = (out / spec.folder() / store.RUN_FILE).exists()
        wanted = data(spec) if callable(data) and saved_here and not overwrite else None if callable(data) else data
        saved = reusable(out / spec.folder(), spec.to_dict(), overwrite, note, row=True, data=wanted)
        if saved is None:
            todo.append(spec)
        else:
            records[spec] = saved
            store.record(out, saved, out / spec.folder())
    return todo, records
