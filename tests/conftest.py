"""Shared pytest fixtures and markers."""

import os
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Register the `slow` marker (deselect with -m "not slow")."""
    config.addinivalue_line("markers", "slow: decodes a large real dataset; tens of seconds on a cold cache")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only real dataset copies: $POISONLAB_TEST_DATA, else <repo root>/../shared/data."""
    path = Path(os.environ.get("POISONLAB_TEST_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
    if not path.is_dir():
        pytest.skip(f"real dataset copies not found at {path}; set POISONLAB_TEST_DATA to their folder")
    return path


class Cli:
    """Runs `poisonlab ARGS...` in-process and returns its exit code and output."""

    def __init__(self, capsys: pytest.CaptureFixture) -> None:
        self.capsys = capsys

    def __call__(self, *args) -> tuple[int, str, str]:
        """Exit code, stdout and stderr."""
        from poisonlab.cli import main

        with pytest.raises(SystemExit) as exit_info:
            main([str(a) for a in args])
        captured = self.capsys.readouterr()
        return exit_info.value.code, captured.out, captured.err

    def text(self, *args) -> tuple[int, str]:
        """Exit code and stdout + stderr together."""
        code, out, err = self(*args)
        return code, out + err


@pytest.fixture
def cli(capsys) -> Cli:
    """The CLI, run in-process."""
    return Cli(capsys)
