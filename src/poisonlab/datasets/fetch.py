"""Download dataset files from official mirrors with a progress bar, verifying them before use."""

import os
import tempfile
import urllib.request
import zlib
from collections.abc import Sequence
from http.client import HTTPException
from pathlib import Path

from rich.console import Console
from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                           TransferSpeedColumn)

from poisonlab.datasets.checksums import file_digest
from poisonlab.errors import PoisonlabError

TIMEOUT_S = 20.0
_CHUNK = 1 << 20


class DownloadFailed(PoisonlabError):
    """No mirror delivered a good copy; `reason` says why, for the caller's message."""

    def __init__(self, dest: Path, reason: str) -> None:
        super().__init__(f"could not download {dest.name} to {dest.parent} ({reason}); place a copy there yourself")
        self.reason = reason


def fetch(urls: Sequence[str], dest: Path, expected: str | None, of_decompressed: bool = False) -> str:
    """Download `dest` from the first mirror that works and matches `expected` ("<algorithm>:<hex>"); return its digest.

    With `of_decompressed`, `expected` is the digest of the gunzipped content (the file itself stays compressed).
    """
    algorithm = expected.partition(":")[0] if expected else "sha256"
    failures = []
    for url in urls:
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=dest.parent, prefix=f".{dest.name}.", delete=False) as tmp:
                part = Path(tmp.name)
            try:
                _download(url, part, dest.name)
                actual = file_digest(part, algorithm, gunzip=of_decompressed)
                if expected and actual != expected:
                    raise ValueError(f"checksum {actual}, expected {expected}")
                os.replace(part, dest)
                return actual
            finally:
                part.unlink(missing_ok=True)
        except (OSError, ValueError, EOFError, zlib.error, HTTPException) as exc:
            failures.append(f"{url}: {exc}")
    raise DownloadFailed(dest, "; ".join(failures) or "no download address known")


def _download(url: str, part: Path, label: str) -> None:
    """Stream `url` into `part`, showing size, speed and time left on stderr."""
    columns = (TextColumn(label), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, part.open("wb") as out, \
            Progress(*columns, console=Console(stderr=True)) as progress:
        size = response.headers.get("Content-Length")
        task = progress.add_task(label, total=int(size) if size else None)
        while chunk := response.read(_CHUNK):
            out.write(chunk)
            progress.advance(task, len(chunk))


def missing_error(name: str, folder: Path, files: Sequence[str], origin: str, reason: str) -> PoisonlabError:
    """The one-line error for a dataset that is neither on disk nor downloadable."""
    return PoisonlabError(f"{name} is not in {folder} and cannot be downloaded ({reason}); place "
                          f"{', '.join(files)} there (from {origin}) or choose the data folder that holds them")
