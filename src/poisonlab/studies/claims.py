"""Claims on run folders, so that commands sharing an output folder train each run once.

A claim is an exclusive `fcntl.flock` on `<run folder>/.claim`, held while the run trains; the kernel drops it when
its process dies, so the next command takes the run over. The file names the holder and its settings."""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from poisonlab import store
from poisonlab.errors import PoisonlabError
from poisonlab.studies.resume import differences, finish, reusable

CLAIM_FILE = ".claim"
Note = Callable[[str], None]


@contextmanager
def claim(run_dir: Path, config: dict, *, wait: bool, note: Note = lambda text: None) -> Iterator[bool]:
    """Hold the claim on `run_dir` for the body; yields False at once when another command holds it and not `wait`.

    A holder training other settings is an error; a dead holder's run is taken over, with a note; temp files of killed
    writes are removed once the claim is held."""
    config = json.loads(json.dumps(config))  # as the claim file holds it
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / CLAIM_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            if holder and holder.get("config") != config:
                changed = "; ".join(differences(holder.get("config") or {}, config))
                raise PoisonlabError(f"{run_dir} is being trained by another command (pid {holder.get('pid')} on "
                                     f"{holder.get('host')}) with other settings ({changed}); wait for it to finish "
                                     "or write to another output folder") from None
            if not wait:
                yield False
                return
            note(f"waiting for {run_dir}, which another command is training")
            fcntl.flock(fd, fcntl.LOCK_EX)
        stale = _holder(fd)
        if stale:
            note(f"taking over {run_dir} from a command that stopped while training it (pid {stale.get('pid')})")
        for path in store.clean_temp(run_dir):  # nobody else writes here while the claim is held
            note(f"removed {path.name} from {run_dir}, left by a write that was killed")
        _write(fd, {"pid": os.getpid(), "host": socket.gethostname(), "config": config})
        try:
            yield True
        finally:  # a command that stops cleanly (or is interrupted) releases; only a killed one leaves its name
            _write(fd, None)
    finally:
        os.close(fd)  # drops the lock


def _holder(fd: int) -> dict | None:
    """Who the claim file says holds (or, when the lock is free, last held and never released) the claim."""
    os.lseek(fd, 0, os.SEEK_SET)
    try:
        holder = json.loads(os.read(fd, 1 << 20) or b"null")
    except ValueError:
        return None
    return holder if isinstance(holder, dict) else None


def _write(fd: int, holder: dict | None) -> None:
    """Replace the claim file's content with `holder` (empty when released)."""
    os.ftruncate(fd, 0)
    if holder is not None:
        os.pwrite(fd, json.dumps(holder).encode(), 0)


def trained(run_dir: Path, config: dict, train: Callable[[], tuple[dict, object]], meta: dict, *, overwrite: bool = False,
            note: Note = lambda text: None, row: bool = False, data: dict | None = None) -> tuple[str, dict]:
    """Under `run_dir`'s claim (waiting for another command's): ("reused", record) when a finished run may be reused
    (see `resume.reusable`; never with `overwrite`), else `train()` -> (record, model), write the folder and return
    ("done", record)."""
    with claim(run_dir, config, wait=True, note=note):
        saved = None if overwrite else reusable(run_dir, config, False, note, row=row, data=data)
        if saved is not None:
            return "reused", saved
        record, fitted = train()
        return "done", finish(run_dir, record, fitted, meta)
