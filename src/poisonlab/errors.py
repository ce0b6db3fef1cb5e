"""The one error type of bad input (the CLI: a single line and exit code 2), and failed runs (exit code 1)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class PoisonlabError(ValueError):
    """Bad input or environment: the message names the problem and the fix."""


class PoisonlabWarning(UserWarning):
    """Something the user should know that does not stop the work (the command line prints it as one note line)."""


class RunsFailed(RuntimeError):
    """Runs of a study failed twice (not bad input): the others are saved and a new call retries these."""


@contextmanager
def decoding(what: str, fix: str, problem: str | None = None) -> Iterator[None]:
    """Turn ANY failure while decoding `what` into the one-line PoisonlabError "cannot read <what> (<cause>); <fix>".

    Parsers of zip, zlib, npz headers, tar, images, JSON, CSV and SQLite raise a long tail of exception types
    (zlib.error, struct.error, tokenize.TokenError, EOFError, UnicodeDecodeError, Pillow's own, ...); a reader of
    untrusted bytes wraps its decoding in this block instead of listing the ones seen so far. A PoisonlabError
    raised inside passes unchanged; MemoryError is reported with the same fix (a declared size too large to hold)."""
    try:
        yield
    except PoisonlabError:
        raise
    except Exception as exc:  # noqa: BLE001 - every decoding failure of untrusted bytes (MemoryError included)
        cause = " ".join(str(exc).split())[:200] or type(exc).__name__
        head = f"{what} is {problem}" if problem else f"cannot read {what}"
        raise PoisonlabError(f"{head} ({cause}); {fix}") from None
