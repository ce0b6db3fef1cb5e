"""Shared pytest fixtures and markers."""

import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from fuzzing import FUZZING, SCALE

# `make test` and CI: every property test draws the same examples on every run (derandomized, no example database),
# so a green run is reproducible; `make fuzz` (POISONLAB_FUZZ=1) draws new random examples, SCALE times as many.
settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True)
settings.register_profile("fuzz", max_examples=100 * SCALE, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("fuzz" if FUZZING else "ci")


def pytest_configure(config: pytest.Config) -> None:
    """Register the `slow` marker (deselect with -m "not slow")."""
    config.addinivalue_line("markers", "slow: decodes a large real dataset; tens of seconds on a cold cache")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only real dataset copies: $POISONLAB_TEST_DATA, else <repo root>/../shared/data."""
    path = Path(os.environ.get("POISONLAB_TEST_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
    if not path.is_dir():
        message = f"real dataset copies not found at {path}; set POISONLAB_TEST_DATA to their folder"
        if os.environ.get("POISONLAB_REQUIRE_DATA"):  # CI: the real-data tests must run, never skip
            pytest.fail(message)
        pytest.skip(message)
    return path


def run_poisonlab(*args) -> int:
    """Run `poisonlab ARGS...` in-process; returns the exit code (output goes to the captured streams)."""
    from poisonlab.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    return exit_info.value.code


@pytest.fixture(scope="session")
def poisonlab_main():
    """`run_poisonlab` for module-scoped fixtures, which cannot use the capturing `cli` fixture."""
    return run_poisonlab


class Cli:
    """Runs `poisonlab ARGS...` in-process and returns its exit code and output."""

    def __init__(self, capsys: pytest.CaptureFixture) -> None:
        self.capsys = capsys
        self.out = self.err = ""  # what the last command printed

    def __call__(self, *args) -> tuple[int, str, str]:
        """Exit code, stdout and stderr."""
        code = run_poisonlab(*args)
        captured = self.capsys.readouterr()
        self.out, self.err = captured.out, captured.err
        return code, captured.out, captured.err

    def text(self, *args) -> tuple[int, str]:
        """Exit code and stdout + stderr together."""
        code, out, err = self(*args)
        return code, out + err

    def code(self, *args) -> int:
        """Just the exit code."""
        return self(*args)[0]

    def fails(self, message: str, *args) -> str:
        """Assert that the command ends with exit code 2 and ONE error line matching `message`; returns it."""
        code, out, err = self(*args)
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2, f"exit {code}, expected 2: {out}{err}"
        assert len(lines) == 1 and lines[0].startswith("error: "), f"not one error line: {err!r}"
        assert re.search(message, lines[0]), f"{message!r} not in {lines[0]!r}"
        return lines[0]


@pytest.fixture
def cli(capsys) -> Cli:
    """The CLI, run in-process."""
    return Cli(capsys)


@pytest.fixture
def pool_threads():
    """Run this process on the thread count of a 2-job pool's workers, so one job and two compute alike."""
    import torch

    from poisonlab.training.parallel import threads_per_job

    before = torch.get_num_threads()
    torch.set_num_threads(threads_per_job(2))
    yield
    torch.set_num_threads(before)
