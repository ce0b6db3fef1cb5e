"""Cache of decoded image arrays as plain .npy files, keyed by the source's size, mtime and leading bytes."""

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from poisonlab.datasets.paths import resolve_cache_dir

_VERSION = b"poisonlab-decoded-v1"
_PREFIX_BYTES = 1 << 20


def cache_key(source: Path) -> str:
    """A key that changes when the file (or any file in the directory) changes size, mtime or leading bytes."""
    key = hashlib.sha256(_VERSION)
    if source.is_dir():
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            stat = path.stat()
            key.update(f"\0{path.relative_to(source)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    else:
        stat = source.stat()
        key.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
        with source.open("rb") as handle:
            key.update(handle.read(_PREFIX_BYTES))
    return key.hexdigest()


def load_cached(key: str) -> tuple[dict[str, np.ndarray], dict] | None:
    """The arrays and JSON metadata stored under `key`, or None when absent or unreadable."""
    folder = resolve_cache_dir() / "decoded" / key
    try:
        meta = json.loads((folder / "meta.json").read_text())
        arrays = {name: np.load(folder / f"{name}.npy", allow_pickle=False) for name in meta["arrays"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return arrays, meta


def save_cached(key: str, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Store arrays and metadata under `key` atomically (whole folder renamed into place); skip if unwritable."""
    parent = resolve_cache_dir() / "decoded"
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=parent, prefix=f".{key}."))
    except OSError:
        return
    with contextlib.suppress(OSError):
        for name, array in arrays.items():
            np.save(staging / f"{name}.npy", array, allow_pickle=False)
        (staging / "meta.json").write_text(json.dumps({**meta, "arrays": sorted(arrays)}))
        shutil.rmtree(parent / key, ignore_errors=True)
        os.replace(staging, parent / key)
    shutil.rmtree(staging, ignore_errors=True)
