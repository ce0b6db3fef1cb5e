"""Cache of decoded image arrays as plain .npy files, keyed by the SHA-256 of the whole source content.

Each entry is authenticated: meta.json lists the SHA-256 of every array file, and carries an HMAC-SHA256 of itself
under a random key kept beside the cache (mode 600). An entry whose arrays were replaced (swapped labels, other
pixels), or whose meta.json was rewritten to match them, fails the check and is decoded again from the source."""

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import shutil
import tempfile
from pathlib import Path

import numpy as np

from poisonlab.datasets.paths import resolve_cache_dir
from poisonlab.errors import PoisonlabError
from poisonlab.files import MAX_RECORD_BYTES, open_regular, read_json, read_limited

_VERSION = "v3"  # v3: authenticated entries (v2 entries are ignored, decoded again)
_KEY_FILE = ".key"


def _root() -> Path:
    return resolve_cache_dir() / "decoded"


def _folder(digest: str) -> Path:
    """The cache folder of a source whose content digest is `digest` ("sha256:<hex>")."""
    return _root() / f"{_VERSION}-{digest.removeprefix('sha256:')}"


def _key(create: bool) -> bytes | None:
    """The cache's secret key (32 random bytes, made once with mode 600), or None when it cannot be read or made."""
    path = _root() / _KEY_FILE
    if create and not path.exists():
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(32))
    try:
        key = read_limited(path, "decoded-cache key", 64, "")
    except PoisonlabError:
        return None
    return key if len(key) == 32 else None


def _mac(key: bytes, meta: dict) -> str:
    """The HMAC-SHA256 of a meta.json document (without its own "mac")."""
    body = json.dumps({k: v for k, v in meta.items() if k != "mac"}, sort_keys=True).encode()
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def _file_sha256(path: Path) -> str:
    """The SHA-256 of a regular file, read in 1 MiB chunks."""
    hasher = hashlib.sha256()
    with open_regular(path, f"cached array {path}", "") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def load_cached(digest: str) -> tuple[dict[str, np.ndarray], dict] | None:
    """The arrays and JSON metadata stored for content `digest`, or None when absent, unreadable or not authentic."""
    folder, key = _folder(digest), _key(create=False)
    if key is None:
        return None
    try:
        meta = read_json(folder / "meta.json", "decoded-cache entry", MAX_RECORD_BYTES, "")
        if not isinstance(meta, dict) or not hmac.compare_digest(str(meta.get("mac")), _mac(key, meta)):
            return None
        files = {name: folder / f"{name}.npy" for name in meta["arrays"]}
        if any(_file_sha256(path) != meta["sha256"][name] for name, path in files.items()):
            return None
        arrays = {name: np.load(path, allow_pickle=False) for name, path in files.items()}
    except (PoisonlabError, OSError, ValueError, KeyError, TypeError):
        return None
    return arrays, meta


def save_cached(digest: str, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Store arrays and metadata for content `digest` atomically (whole folder renamed into place); skip if unwritable."""
    final, key = _folder(digest), _key(create=True)
    if key is None:
        return
    try:
        staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}."))
    except OSError:
        return
    with contextlib.suppress(OSError):
        for name, array in arrays.items():
            np.save(staging / f"{name}.npy", array, allow_pickle=False)
        entry = {**meta, "arrays": sorted(arrays),
                 "sha256": {name: _file_sha256(staging / f"{name}.npy") for name in arrays}}
        (staging / "meta.json").write_text(json.dumps({**entry, "mac": _mac(key, entry)}))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
    shutil.rmtree(staging, ignore_errors=True)
