"""The one resume guard: reuse a finished run only when it was made with exactly the same settings."""

from __future__ import annotations

from pathlib import Path

from poisonlab import store
from poisonlab.errors import PoisonlabError


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


def reusable(run_dir: Path, config: dict, overwrite: bool) -> dict | None:
    """The saved record in `run_dir` when it may be reused; None when the run must (re)train.

    A finished run made with other settings is an error naming each differing setting."""
    saved = store.read_run(run_dir)
    if saved is None or overwrite:
        return None
    if _complete(saved["config"]) != config:
        raise PoisonlabError(f"{run_dir} holds a run made with other settings ({'; '.join(differences(_complete(saved['config']), config))}); "
                             "retrain it (overwrite) or write to another output folder")
    return saved
