"""Files from outside: inputs read only from regular files and up to a size cap per kind, outputs written only over
regular files, so that a device, FIFO or socket given as a path can neither hang, exhaust memory nor be replaced."""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from pathlib import Path

from poisonlab.errors import PoisonlabError, decoding

_CHUNK = 1 << 20
# Size caps per kind of input, far above any genuine file (a manifest holds about 70 bytes per item).
MAX_KEY_BYTES = 64 << 10  # a PEM key (an Ed25519 one is under 200 bytes)
MAX_SCHEMA_BYTES = 16 << 20  # a dataset schema (shape, dtype, range, class names)
MAX_RECORD_BYTES = 256 << 20  # run.json, model.json, a study's JSON, a cache's meta.json
MAX_MANIFEST_BYTES = 1 << 30  # a manifest (or a monitor baseline, which may be one): 15 million items
MAX_LOG_BYTES = 256 << 20  # an audit log, about 400 bytes per entry
MAX_ORDER_BYTES = 256 << 20  # an order CSV, about 40 bytes per item
MAX_FIGURE_BYTES = 64 << 20  # a PNG figure embedded in the HTML report
MAX_WEIGHTS_BYTES = 4 << 30  # a model.safetensors file


def kind(mode: int) -> str:
    """What a stat mode is, in words ("a regular file", "a folder", "a character device", ...)."""
    kinds = ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"))
    return next((words for test, words in kinds if test(mode)), "a special file")


def open_regular(path: Path, what: str, fix: str):
    """`path` opened for binary reading, refused in one line ("cannot read <what> (...); <fix>") unless it is a
    regular file (or a link to one).

    It is checked before opening and again on the opened descriptor; opening never blocks, even on a FIFO."""
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise PoisonlabError(f"cannot read {what} (it is {kind(mode)}, not a regular file); {fix}")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise PoisonlabError(f"cannot read {what} ({exc.strerror or exc}); {fix}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):  # replaced between the two checks
        os.close(fd)
        raise PoisonlabError(f"cannot read {what} (it is {kind(mode)}, not a regular file); {fix}")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_limited(path: Path, what: str, max_bytes: int, fix: str) -> bytes:
    """The bytes of the regular file `path`, at most `max_bytes`, read in chunks; any other file, an unreadable one or
    a larger one is a one-line error naming `what` and `fix`. The size is checked before anything is read."""
    with open_regular(path, what, fix) as handle:
        size = os.fstat(handle.fileno()).st_size
        chunks, total = [], 0
        try:
            while size <= max_bytes and total <= max_bytes:
                chunk = handle.read(min(_CHUNK, max_bytes + 1 - total))
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
        except OSError as exc:
            raise PoisonlabError(f"cannot read {what} ({exc.strerror or exc}); {fix}") from None
    if size > max_bytes or total > max_bytes:
        raise PoisonlabError(f"{what} is larger than the {max_bytes} bytes such a file may have "
                             f"({max(size, total)} bytes); {fix}")
    return b"".join(chunks)


def check_output_file(path: Path) -> None:
    """Refuse an output path that exists and is not a regular file (or is a link to something else): an atomic write
    renames a new file over it, which would replace a device node, a FIFO or a socket, and cannot replace a folder."""
    try:
        mode = os.stat(path).st_mode
    except OSError:  # a new path (or a dangling link): nothing to replace
        return
    if stat.S_ISDIR(mode):
        raise PoisonlabError(f"output file {path} is a folder; give a file name inside it instead")
    if not stat.S_ISREG(mode):
        raise PoisonlabError(f"output file {path} is {kind(mode)}, not a regular file; give the path of a regular "
                             "file or of a new one")


def check_output_folder(folder: Path) -> Path:
    """Prove, creating nothing, that `folder` exists as a folder that takes a file, or can be created.

    The nearest existing folder on its path gets a probe file (deleted at once); else a one-line error."""
    existing = folder.absolute()
    while not existing.exists() and not existing.is_symlink() and existing != existing.parent:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".write-test.", suffix=".tmp") as probe:
            probe.write(b"ok")
            probe.flush()
    except OSError as exc:
        raise PoisonlabError(f"cannot write to output folder {folder} ({exc.strerror or exc}); "
                             "choose another output folder") from None
    return folder


def read_json(path: Path, what: str, max_bytes: int, fix: str):
    """The JSON document in the regular file `path` (at most `max_bytes`), or the one-line error "cannot read <what>
    (<cause>); <fix>" for a special, unreadable, oversized or undecodable file."""
    data = read_limited(path, what, max_bytes, fix)
    with decoding(what, fix):
        return json.loads(data)
