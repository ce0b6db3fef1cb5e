"""Cache of decoded image arrays as plain .npy files, keyed by the SHA-256 of the whole source content."""

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from poisonlab.datasets.paths import resolve_cache_dir

_VERSION = "v2"


def _folder(digest: str) -> Path:
    """The cache folder of a source whose content digest is `digest` ("sha256:<hex>")."""
    return resolve_cache_dir() / "decoded" / f"{_VERSION}-{digest.removeprefix('sha256:')}"


def load_cached(digest: str) -> tuple[dict[str, np.ndarray], dict] | None:
    """The arrays and JSON metadata stored for content `digest`, or None when absent or unreadable."""
    folder = _folder(digest)
    try:
        meta = json.loads((folder / "meta.json").read_text())
        arrays = {name: np.load(folder / f"{name}.npy", allow_pickle=False) for name in meta["arrays"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return arrays, meta


def save_cached(digest: str, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Store arrays and metadata for content `digest` atomically (whole folder renamed into place); skip if unwritable."""
    final = _folder(digest)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}."))
    except OSError:
        return
    with contextlib.suppress(OSError):
        for name, array in arrays.items():
            np.save(staging / f"{name}.npy", array, allow_pickle=False)
        (staging / "meta.json").write_text(json.dumps({**meta, "arrays": sorted(arrays)}))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
    shutil.rmtree(staging, ignore_errors=True)
