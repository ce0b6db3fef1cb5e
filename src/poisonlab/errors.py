"""The one error type of bad input (the CLI: a single line and exit code 2), and failed runs (exit code 1)."""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

MAX_SEED = 2**32 - 1  # the largest seed every library behind poisonlab accepts (scikit-learn's random_state)


class PoisonlabError(ValueError):
    """Bad input or environment: the message names the problem and the fix."""


class RunsFailed(RuntimeError):
    """Runs of a study failed twice (not bad input): the others are saved and a new call retries these."""


def check_choice(value: str, choices: Iterable[str], what: str) -> None:
    """Reject a `value` outside `choices` with the one-line error "unknown <what> '<value>'; choose one of ..."."""
    choices = list(choices)
    if value not in choices:
        raise PoisonlabError(f"unknown {what} '{value}'; choose one of {', '.join(choices)}")


def check_seed(seed: object) -> int:
    """`seed` as an int in 0..MAX_SEED (Python or NumPy whole numbers), else a one-line error naming it."""
    try:
        value = None if isinstance(seed, bool) else operator.index(seed)
    except TypeError:
        value = None
    if value is None:
        raise PoisonlabError(f"seed {seed!r} is not a whole number; give seeds from 0 to {MAX_SEED}")
    if not 0 <= value <= MAX_SEED:
        raise PoisonlabError(f"seed {value} is {'negative' if value < 0 else 'too large'}; give seeds from 0 to {MAX_SEED}")
    return value


@contextmanager
def decoding(what: str, fix: str) -> Iterator[None]:
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
        raise PoisonlabError(f"cannot read {what} ({cause}); {fix}") from None
