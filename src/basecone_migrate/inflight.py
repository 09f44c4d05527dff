"""Many pieces of I/O in flight, a bounded number at a time.

An object store answers each request in tens of milliseconds: one document at a time, a
move is bound by that wait, not by the network or the disk. :func:`in_flight` keeps
``limit`` calls running on as many threads and hands back each result as it comes, taking
new work from the iterator only as room frees up, so memory holds some ``2 * limit`` jobs
whatever their number (the iterator may read the database as it goes: it is advanced on
the caller's thread, never on a worker's).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

Job = TypeVar("Job")
Result = TypeVar("Result")


def in_flight(work: Callable[[Job], Result], jobs: Iterable[Job], limit: int,
              name: str = "io", ordered: bool = False) -> Iterator[tuple[Job, Result]]:
    """``(job, work(job))`` for every job, ``limit`` at a time: in the order they finish,
    or with ``ordered`` in the order of ``jobs`` (a slow one then holds the others back,
    never more than ``2 * limit`` of them).

    An exception raised by ``work`` is raised here once the calls already running have
    ended (none is abandoned half-way); so is one from the iterator, or a KeyboardInterrupt.
    With ``limit`` 1 every call is made on the caller's thread.
    """
    if limit <= 1:  # one at a time: on this thread, no pool to hand each job to
        for job in jobs:
            yield job, work(job)
        return
    pending: dict[Future[Result], Job] = {}  # in the order submitted
    source = iter(jobs)
    exhausted = False
    with ThreadPoolExecutor(max_workers=limit, thread_name_prefix=name) as pool:
        try:
            while True:
                while not exhausted and len(pending) < 2 * limit:
                    try:
                        job = next(source)
                    except StopIteration:
                        exhausted = True
                        break
                    pending[pool.submit(work, job)] = job
                if not pending:
                    return
                if ordered:
                    first = next(iter(pending))
                    done = {first}
                    wait(done)
                else:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    job = pending.pop(future)
                    yield job, future.result()
        except BaseException:
            for future in pending:
                future.cancel()
            raise
