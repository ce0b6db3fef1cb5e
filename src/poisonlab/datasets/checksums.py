"""Reading dataset files and verifying their "md5:<hex>" / "sha256:<hex>" digests."""

import gzip
import hashlib
from pathlib import Path

from poisonlab.errors import PoisonlabError

_CHUNK = 1 << 20
FIX_REDOWNLOAD = "delete it and re-run to download it again, or place a good copy there"


def digest(data: bytes, algorithm: str) -> str:
    """The digest of `data` as "<algorithm>:<hex>"."""
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def file_digest(path: Path, algorithm: str, gunzip: bool = False) -> str:
    """The digest of a file's bytes (or of its gunzipped content) as "<algorithm>:<hex>", read in chunks."""
    return file_digests(path, (algorithm,), gunzip)[0]


def file_digests(path: Path, algorithms: tuple[str, ...], gunzip: bool = False) -> list[str]:
    """Several digests of a file's bytes (or of its gunzipped content) in one pass, as "<algorithm>:<hex>" each."""
    hashes = [hashlib.new(algorithm) for algorithm in algorithms]
    with (gzip.open if gunzip else open)(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            for hashed in hashes:
                hashed.update(chunk)
    return [f"{algorithm}:{hashed.hexdigest()}" for algorithm, hashed in zip(algorithms, hashes)]


def check(actual: str, expected: str, source: str, fix: str, decompressed: bool = False) -> str:
    """Return `actual` if it equals `expected` (both "<algorithm>:<hex>"), else raise a one-line checksum error."""
    if actual != expected:
        algorithm, _, want = expected.partition(":")
        content = "decompressed content" if decompressed else "content"
        raise PoisonlabError(f"checksum mismatch for {source}: {algorithm} of {content} is "
                             f"{actual.partition(':')[2]}, expected {want}; {fix}")
    return actual
