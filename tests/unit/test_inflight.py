"""in_flight: many calls at once, never more than asked, jobs taken only as room frees up."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from basecone_migrate.inflight import in_flight


class Gauge:
    """How many calls run at once, at most."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0

    def __enter__(self) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def __exit__(self, *_: object) -> None:
        with self.lock:
            self.now -= 1


def test_every_job_once_at_most_limit_at_a_time_and_taken_lazily() -> None:
    gauge = Gauge()
    taken: list[int] = []
    finished: list[int] = []

    def jobs() -> Iterator[int]:
        for n in range(200):
            # Never more than twice the limit taken ahead of what has finished.
            assert len(taken) - len(finished) <= 16
            taken.append(n)
            yield n

    def work(n: int) -> int:
        with gauge:
            time.sleep(0.002 * (n % 3))
            return n * n

    for n, square in in_flight(work, jobs(), 8):
        assert square == n * n
        finished.append(n)
    assert sorted(finished) == list(range(200))
    assert gauge.most == 8


def test_ordered_results_come_in_the_order_of_the_jobs() -> None:
    def work(n: int) -> int:
        time.sleep(0.03 if n == 0 else 0.001)  # the first is the slowest
        return n

    assert [n for n, _ in in_flight(work, range(40), 4, ordered=True)] == list(range(40))
    unordered = [n for n, _ in in_flight(work, range(40), 4)]
    assert sorted(unordered) == list(range(40)) and unordered[0] != 0


def test_a_failure_is_raised_once_the_running_calls_end_and_no_new_job_starts() -> None:
    started: list[int] = []
    ended: list[int] = []

    def work(n: int) -> int:
        started.append(n)
        if n == 5:
            raise OSError("disk on fire")
        time.sleep(0.01)
        ended.append(n)
        return n

    with pytest.raises(OSError, match="disk on fire"):
        for _ in in_flight(work, range(1000), 4):
            pass
    assert sorted(ended) == sorted(n for n in started if n != 5)  # none abandoned half-way
    assert len(started) < 20  # the rest were never started


def test_limit_one_runs_on_the_callers_thread() -> None:
    threads = {n: thread for n, thread in in_flight(lambda n: threading.get_ident(), range(3), 1)}
    assert set(threads.values()) == {threading.get_ident()}
