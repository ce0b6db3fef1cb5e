"""Append-only audit trail: JSON lines, each holding the digest of the entry before it, and the chain check."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import getpass
import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path

from poisonlab.errors import PoisonlabError
from poisonlab.files import MAX_LOG_BYTES, read_limited
from poisonlab.store import write_failed

GENESIS = "0" * 64  # the `prev` of the first entry


def default_log(manifest: Path) -> Path:
    """The log beside a manifest: <manifest>.log.jsonl."""
    return manifest.with_name(manifest.name + ".log.jsonl")


def entry_digest(entry: dict) -> str:
    """SHA-256 of the entry's canonical JSON without its `digest` field."""
    body = {k: v for k, v in entry.items() if k != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def append(log: Path, action: str, dataset: str, root: str, changes: dict) -> dict:
    """Add one entry chained to the last one (under a file lock) and return it."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a+b", buffering=0) as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        content = fh.read()
        lines = content.splitlines()
        entry = {"seq": len(lines) + 1, "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 "user": getpass.getuser(), "action": action, "dataset": dataset, "root": root,
                 "changes": changes, "prev": _last_digest(log, lines)}
        entry["digest"] = entry_digest(entry)
        line = (json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n").encode()
        try:
            if fh.write(line) != len(line):  # a short write: the disk filled up
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            os.fsync(fh.fileno())
        except OSError as exc:  # a full disk: no half entry stays behind to break the chain
            with contextlib.suppress(OSError):
                fh.truncate(len(content))
            raise write_failed(log, exc) from None
    return entry


def _last_digest(log: Path, lines: list[bytes]) -> str:
    """The digest of the last entry, or GENESIS for an empty log; refuses to extend a damaged end."""
    if not lines:
        return GENESIS
    try:
        return json.loads(lines[-1])["digest"]
    except (ValueError, KeyError, TypeError):
        raise PoisonlabError(f"audit log {log} ends in a damaged entry; run `poisonlab manifest log --log {log} --check` "
                             "and restore the log from a copy before adding to it") from None


def read(log: Path) -> list[bytes]:
    """The raw lines of a log, or a one-line error when it cannot be read."""
    return read_limited(log, f"audit log {log}", MAX_LOG_BYTES,
                        "give the manifest or the audit log file of an existing log").splitlines()


def check(lines: list[bytes]) -> tuple[list[dict], int | None, str]:
    """(entries read, number of the first broken entry or None, why it is broken)."""
    entries, prev = [], GENESIS
    for number, line in enumerate(lines, start=1):
        try:
            entry = json.loads(line)
            digest, linked, seq = entry["digest"], entry["prev"], entry["seq"]
        except (ValueError, KeyError, TypeError):
            return entries, number, "not a valid entry"
        if linked != prev:
            return entries, number, "does not hold the digest of the entry before it (an entry was removed or reordered)"
        if entry_digest(entry) != digest or seq != number:
            return entries, number, "its content does not match its digest (the entry was edited)"
        entries.append(entry)
        prev = digest
    return entries, None, ""


def latest_build(entries: list[dict], dataset: str, dataset_size: int) -> dict | None:
    """The last intact "build" entry of `dataset` (at `dataset_size`, where the entry records it), or None."""
    builds = [e for e in entries if e.get("action") == "build" and e.get("dataset") == dataset
              and isinstance(e.get("changes"), dict) and e["changes"].get("dataset_size", dataset_size) == dataset_size]
    return builds[-1] if builds else None


def manifest_problems(entries: list[dict], manifest: dict, signer: str | None, require_signature: bool) -> list[str]:
    """Why a manifest is not the one the audit log's latest build of its dataset wrote: another root (an older
    manifest put back), or a signature that was dropped or made with another key than the logged build's (`signer`:
    the manifest's embedded public key, hex, or None when unsigned). `require_signature` also refuses an unsigned one."""
    problems = [] if signer is not None or not require_signature else ["the manifest is unsigned and a signature is "
                                                                        "required"]
    build = latest_build(entries, manifest.get("dataset"), manifest.get("dataset_size"))
    if build is None:
        return problems
    if build["root"] != manifest.get("root"):
        problems.append(f"the audit log's latest build of {build['dataset']} (entry {build['seq']}, {build['time']}) "
                        f"has root {build['root'][:16]}..., not this manifest's {str(manifest.get('root'))[:16]}... "
                        "(an older manifest put back?)")
    logged = build["changes"].get("signer") if build["changes"].get("signed") else None
    if logged is not None and signer is None:
        problems.append(f"the audit log's build (entry {build['seq']}) was signed but this manifest is not (its "
                        "signature was dropped)")
    elif logged is not None and signer != logged:
        problems.append(f"this manifest is signed with another key ({signer[:16]}...) than the audit log's build "
                        f"(entry {build['seq']}, key {logged[:16]}...)")
    return problems
