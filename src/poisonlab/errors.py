"""The one error type of bad input (the CLI: a single line and exit code 2), and failed runs (exit code 1)."""

from __future__ import annotations

from collections.abc import Iterable


class PoisonlabError(ValueError):
    """Bad input or environment: the message names the problem and the fix."""


class RunsFailed(RuntimeError):
    """Runs of a study failed twice (not bad input): the others are saved and a new call retries these."""


def check_choice(value: str, choices: Iterable[str], what: str) -> None:
    """Reject a `value` outside `choices` with the one-line error "unknown <what> '<value>'; choose one of ..."."""
    choices = list(choices)
    if value not in choices:
        raise PoisonlabError(f"unknown {what} '{value}'; choose one of {', '.join(choices)}")
