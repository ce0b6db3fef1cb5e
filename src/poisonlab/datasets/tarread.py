"""Read files straight out of a tar(.gz) archive in one sequential pass, never extracting to disk."""

import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from poisonlab.errors import PoisonlabError


def iter_files(path: Path, source: str, fix: str) -> Iterator[tuple[str, bytes]]:
    """Yield (member path, content) for each regular file; absolute or `..` member paths are rejected."""
    try:
        with tarfile.open(path, "r|*") as archive:
            for member in archive:
                name = _safe_name(member.name, source)
                if member.isfile():
                    yield name, archive.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise PoisonlabError(f"{source} is truncated or corrupted ({exc}); {fix}") from None


def read_files(path: Path, names: set[str], source: str, fix: str) -> dict[str, bytes]:
    """The contents of the named members, stopping once all are read; missing ones are an error."""
    found = {}
    for name, data in iter_files(path, source, fix):
        if name in names:
            found[name] = data
            if len(found) == len(names):
                return found
    raise PoisonlabError(f"{source} lacks {', '.join(sorted(names - found.keys()))}; {fix}")


def _safe_name(name: str, source: str) -> str:
    """The normalised member path, refusing paths that could point outside the archive."""
    posix = PurePosixPath(name)
    if posix.is_absolute() or ".." in posix.parts:
        raise PoisonlabError(f"{source} holds an unsafe member path {name!r}; use an archive whose paths "
                             "are relative and stay inside it")
    return posix.as_posix()
