"""The `poisonlab` command line: one module per command group; heavy libraries load only when a command runs."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Annotated, get_args

import typer
from rich.markup import escape

from poisonlab import __version__
from poisonlab.cli import backdoor, certify, defend, detect, flip, report, train, validate
from poisonlab.cli.common import console
from poisonlab.cli.manifest import manifest_app
from poisonlab.cli.monitor import monitor_app
from poisonlab.errors import PoisonlabError, PoisonlabWarning, RunsFailed

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="How much does poisoned (mislabelled) training data hurt a model, and can we catch it?")


def _show_version(value: bool) -> None:
    if value:
        print(f"poisonlab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_show_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """How much does poisoned (mislabelled) training data hurt a model, and can we catch it?"""


for command in (train.train, train.analyse, train.demo, flip.flip, flip.budget, backdoor.backdoor, detect.detect, defend.defend,
                certify.certify, validate.validate, report.report):
    app.command()(command)
app.add_typer(manifest_app, name="manifest")
app.add_typer(monitor_app, name="monitor")


def _plain_flags(command):
    """Show on/off flags (and --help) without a value type in help: `--biased`, not `--biased <bool>`."""
    for param in command.params:
        if getattr(param, "is_flag", False):
            param.metavar = ""
    make_help = command.get_help_option

    def help_option(ctx):
        option = make_help(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = help_option
    for sub in getattr(command, "commands", {}).values():
        _plain_flags(sub)
    return command


def _note(message, category, filename, lineno, file=None, line=None) -> None:
    """Print a PoisonlabWarning as one `note:` line (other warnings as Python prints them)."""
    if issubclass(category, PoisonlabWarning):
        console.print(f"note: {escape(' '.join(str(message).split()))}", highlight=False)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


_python_showwarning = warnings.showwarning


def _error(message: str, code: int = 2) -> None:
    """Print `error: <message>` as one line (never read as markup) and exit with `code`."""
    console.print(f"[bold red]error:[/] {escape(' '.join(message.split()))}", highlight=False)
    sys.exit(code)


def _path_options(command) -> set[str]:
    """The names of every option of every command that takes a path."""
    names = {name for param in command.params for name in param.opts
             if Path in (getattr(param.type_descriptor, "annotation", None), *get_args(param.type_descriptor.annotation))}
    for sub in getattr(command, "commands", {}).values():
        names |= _path_options(sub)
    return names


def _refuse_empty_paths(args: list[str], paths: set[str]) -> None:
    """A path option given an empty value (`--out ''`, `--out=`) is an error: it would be read as the current folder."""
    for before, arg in zip(["", *args], args):
        name = arg[:-1] if arg.endswith("=") else before if arg == "" else None
        if name in paths:
            raise PoisonlabError(f"{name} was given an empty path; give the path of a file or folder")
        if arg == "" and not before.startswith("-"):  # a positional argument (every one is a path)
            raise PoisonlabError("an empty path was given; give the path of a file or folder")


def main(argv: list[str] | None = None) -> None:
    """Entry point: bad input becomes one line on stderr and exit code 2; Ctrl-C keeps finished runs."""
    command = _plain_flags(typer.main.get_command(app))
    warnings.showwarning = _note
    try:
        _refuse_empty_paths(sys.argv[1:] if argv is None else argv, _path_options(command))
        code = command.main(argv, prog_name="poisonlab", standalone_mode=False)  # returns 130 after Ctrl-C
    except PoisonlabError as exc:
        _error(str(exc))
    except RunsFailed as exc:
        _error(str(exc), 1)
    except OSError as exc:  # a path the checks could not foresee (a file vanished, a disk filled up)
        _error(f"{exc.strerror or exc}{f' ({exc.filename})' if exc.filename else ''}; check that path and try again")
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # usage errors: Typer's message, on one line
        ctx = getattr(exc, "ctx", None)
        _error(exc.format_message().rstrip(".") + (f"; see '{ctx.command_path} --help'" if ctx is not None else ""),
               getattr(exc, "exit_code", 2))
    if code == 130:
        console.print("interrupted: finished runs are saved; run the same command again to resume")
    sys.exit(code if isinstance(code, int) else 0)
