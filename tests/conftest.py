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


@pytest.fixture
def cli(capsys):
    """Run `poisonlab ARGS...` in-process; returns (exit code, stdout, stderr)."""
    from poisonlab.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as exit_info:
            main([str(a) for a in args])
        captured = capsys.readouterr()
        return exit_info.value.code, captured.out, captured.err
    return run
