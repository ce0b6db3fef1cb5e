"""The one error type the CLI turns into a single line and exit code 2."""


class PoisonlabError(Exception):
    """Bad input or environment: the message names the problem and the fix."""


def check_choice(value: str, choices, what: str) -> None:
    """Reject a `value` outside `choices` with the one-line error "unknown <what> '<value>'; choose one of ..."."""
    if value not in choices:
        raise PoisonlabError(f"unknown {what} '{value}'; choose one of {', '.join(choices)}")
