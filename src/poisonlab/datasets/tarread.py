"""Read files straight out of a tar(.gz) archive in one sequential pass, never extracting to disk."""

import hashlib
import tarfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from poisonlab.errors import PoisonlabError, decoding

_CHUNK = 1 << 20
MAX_MEMBER_BYTES = 256 << 20  # more than any official dataset file (CIFAR-100 train.bin: 153.7 MB)


class HashingReader:
    """A read-only file wrapper that feeds every byte it delivers into a SHA-256."""

    def __init__(self, handle) -> None:
        self.handle, self.sha256 = handle, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.sha256.update(data)
        return data

    def drain(self) -> str:
        """Hash the bytes not read yet and return "sha256:<hex>" of the whole file."""
        while self.read(_CHUNK):
            pass
        return f"sha256:{self.sha256.hexdigest()}"


class GunzipReader:
    """Decompresses a gzip file object (members back to back) at most 1 MiB per read, whatever the ratio."""

    def __init__(self, handle) -> None:
        self.handle, self.stream, self.pending = handle, zlib.decompressobj(wbits=31), b""

    def read(self, size: int = -1) -> bytes:
        """Up to `size` (at most 1 MiB) decompressed bytes; b"" at the end of the last member."""
        limit = _CHUNK if size is None or size < 0 else min(size, _CHUNK)
        while True:
            if self.stream.eof:
                self.pending = (self.stream.unused_data + self.pending).lstrip(b"\0")  # zero padding may follow
                while not self.pending:
                    more = self.handle.read(_CHUNK)
                    if not more:
                        return b""
                    self.pending = more.lstrip(b"\0")
                self.stream = zlib.decompressobj(wbits=31)
            ended = False
            if not self.pending:
                self.pending = self.handle.read(_CHUNK)
                ended = not self.pending
            data = self.stream.decompress(self.pending, limit)
            self.pending = self.stream.unconsumed_tail
            if data:
                return data
            if ended and not self.stream.eof:
                raise EOFError("compressed data ends early")


def iter_files(path: Path, source: str, fix: str, wanted: Callable[[str], bool] = lambda name: True,
               max_bytes: int = MAX_MEMBER_BYTES, digest: list[str] | None = None) -> Iterator[tuple[str, bytes]]:
    """Yield (member path, content) for each wanted regular file; unwanted ones are skipped unread.

    Absolute or `..` member paths are rejected, and so is a wanted member over `max_bytes`; with `digest`, the
    archive's "sha256:<hex>" (of exactly the bytes read) is appended to it once the pass completes."""
    with decoding(source, fix, "truncated or corrupted"), path.open("rb") as handle:  # tar, gzip, EOF, anything
        reader = HashingReader(handle)
        gzipped = handle.peek(2)[:2] == b"\x1f\x8b"
        stream = GunzipReader(reader) if gzipped else reader  # tarfile's own gunzip is unbounded per block
        with tarfile.open(fileobj=stream, mode="r|" if gzipped else "r|*", bufsize=_CHUNK) as archive:
            for member in archive:
                name = _safe_name(member.name, source)
                if not member.isfile() or not wanted(name):
                    continue
                if member.size > max_bytes:
                    raise PoisonlabError(f"{source} member {name} declares {member.size} bytes, more than the "
                                         f"{max_bytes} allowed; {fix}")
                yield name, archive.extractfile(member).read()
        if digest is not None:
            digest.append(reader.drain())


def read_files(path: Path, names: set[str], source: str, fix: str,
               max_bytes: int = MAX_MEMBER_BYTES) -> dict[str, bytes]:
    """The contents of the named members, each at most `max_bytes`, stopping once all are read.

    Missing ones are an error; other members are skipped without being read."""
    found = {}
    for name, data in iter_files(path, source, fix, wanted=names.__contains__, max_bytes=max_bytes):
        found[name] = data
        if len(found) == len(names):
            return found
    raise PoisonlabError(f"{source} lacks {', '.join(sorted(names.keys() - found.keys()))}; {fix}")


def _safe_name(name: str, source: str) -> str:
    """The normalised member path, refusing paths that could point outside the archive."""
    posix = PurePosixPath(name)
    if posix.is_absolute() or ".." in posix.parts:
        raise PoisonlabError(f"{source} holds an unsafe member path {name!r}; use an archive whose paths "
                             "are relative and stay inside it")
    return posix.as_posix()
