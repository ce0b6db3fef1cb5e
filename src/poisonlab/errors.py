"""The one error type the CLI turns into a single line and exit code 2."""


class PoisonlabError(Exception):
    """Bad input or environment: the message names the problem and the fix."""
