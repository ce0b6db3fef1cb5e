"""Where dataset files and decoded-array caches live."""

import os
from pathlib import Path

DEFAULT_DIR = Path("~/.cache/poisonlab")


def resolve_data_dir(path: str | Path | None = None) -> Path:
    """The dataset folder: `path`, else $POISONLAB_DATA, else ~/.cache/poisonlab."""
    chosen = path if path is not None else os.environ.get("POISONLAB_DATA") or DEFAULT_DIR
    return Path(chosen).expanduser()


def resolve_cache_dir() -> Path:
    """The writable cache for decoded arrays: $POISONLAB_CACHE, else ~/.cache/poisonlab."""
    return Path(os.environ.get("POISONLAB_CACHE") or DEFAULT_DIR).expanduser()
