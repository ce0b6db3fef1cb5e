"""The parallel primitives: results in input order, in this process for 1 job, a worker that dies or raises retried once,
a task failing twice reported (after the others finished), bad input raised as it is, bad job counts refused; a
stream's messages arrive in order before the task's result, its setup runs once per worker."""

import os
from pathlib import Path

import pytest

from poisonlab.errors import PoisonlabError, RunsFailed
from poisonlab.training import parallel

FLAG = "crash-once"


def offset_square(offset: int, item: int) -> tuple[int, int]:
    return offset + item * item, os.getpid()


def die_once(folder: str, item: int) -> int:
    """Kill the worker the first time item 1 is tried (atomically claimed flag file)."""
    if item == 1:
        try:
            os.close(os.open(Path(folder) / FLAG, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return item
        os._exit(3)
    return item


def raise_on_two(_, item: int) -> int:
    if item == 2:
        raise RuntimeError("two is unlucky")
    return item


def setup_token(offset: int) -> tuple[int, str]:
    """A state unique to each call (a new token per setup)."""
    return offset, f"{os.getpid()}-{os.urandom(8).hex()}"


def count_up(state: tuple[int, str], item: int, send) -> tuple[str, int]:
    """Send offset + 0 .. item - 1 as messages; return the worker's setup token and the item."""
    for i in range(item):
        send(state[0] + i)
    return state[1], item


def bad_input(_, item: int) -> int:
    raise PoisonlabError(f"item {item} is malformed")


def test_one_job_runs_here_and_two_jobs_in_workers_in_input_order():
    seen = []
    here = parallel.pmap(offset_square, [3, 1, 2], 1, context=10, on_result=lambda i, r: seen.append(i))
    assert [r for r, _ in here] == [19, 11, 14] and {pid for _, pid in here} == {os.getpid()} and seen == [0, 1, 2]
    there = parallel.pmap(offset_square, [3, 1, 2, 4, 0], 2, context=10, on_result=lambda i, r: seen.append(i))
    assert [r for r, _ in there] == [19, 11, 14, 26, 10] and os.getpid() not in {pid for _, pid in there}
    assert sorted(seen[3:]) == [0, 1, 2, 3, 4]
    assert parallel.pmap(offset_square, [5], 4, context=0)[0] == (25, os.getpid())  # one item: no worker


def test_a_dead_worker_is_reported_and_its_task_retried_once(tmp_path):
    notes = []
    assert parallel.pmap(die_once, [0, 1, 2], 2, context=str(tmp_path), note=notes.append,
                         label=lambda item: f"item {item}") == [0, 1, 2]
    assert (tmp_path / FLAG).exists()
    assert notes == ["item 1: failed (worker process died (exit code 3)); retrying it once"]


def test_a_task_failing_twice_is_raised_after_the_others_finish():
    notes, done = [], []
    with pytest.raises(RunsFailed, match=r"1 of 4 tasks failed twice \(2: RuntimeError: two is unlucky\)"):
        parallel.pmap(raise_on_two, [0, 1, 2, 3], 2, note=notes.append, on_result=lambda i, r: done.append(r))
    assert sorted(done) == [0, 1, 3] and len(notes) == 2 and "retrying it once" in notes[0]


def test_bad_input_and_unpicklable_work_are_one_error():
    with pytest.raises(PoisonlabError, match=r"item [01] is malformed"):
        parallel.pmap(bad_input, [0, 1], 2)
    with pytest.raises(PoisonlabError, match="cannot be sent to worker processes"):
        parallel.pmap(offset_square, [0, 1], 2, context=lambda: None)


@pytest.mark.parametrize("jobs", [0, -1, 1.5, True, "2"])
def test_bad_job_counts_name_the_value(jobs):
    with pytest.raises(PoisonlabError, match=f"jobs must be a whole number of at least 1, got {jobs!r}"):
        parallel.pmap(offset_square, [0], jobs)


def test_threads_split_the_cores():
    assert parallel.threads_per_job(1) == parallel.cores() and parallel.threads_per_job(10**6) == 1
    assert parallel.default_jobs() == max(1, parallel.cores() // 4)


def test_a_stream_sends_messages_before_each_result_and_sets_up_each_worker_once():
    events = []
    parallel.stream(count_up, [3, 0, 2, 4], 2, context=100, setup=setup_token,
                    on_event=lambda kind, index, detail: events.append((kind, index, detail)))
    for index, item in enumerate([3, 0, 2, 4]):
        mine = [(kind, detail) for kind, i, detail in events if i == index]
        assert [kind for kind, _ in mine] == ["start", *["message"] * item, "ok"]
        assert [detail for kind, detail in mine if kind == "message"] == [100 + i for i in range(item)]
    tokens = {detail[0] for kind, _, detail in events if kind == "ok"}
    assert len(tokens) == 2 and str(os.getpid()) not in {t.split("-")[0] for t in tokens}  # two workers, set up once each
