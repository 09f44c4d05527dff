"""Progress lines off a terminal and in a worker's log: every 10% or 30 s, never flooded."""

from __future__ import annotations

from basecone_migrate.cli.output import Output
from basecone_migrate.cli.progress import LinesProgress, Pace


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _lines(name: str | None = None) -> tuple[LinesProgress, list[str], Clock]:
    clock, lines = Clock(), []
    return LinesProgress(Output(json_mode=False), name=name, emit=lines.append, clock=clock), lines, clock


def test_a_line_at_each_further_tenth_and_none_at_the_end() -> None:
    progress, lines, clock = _lines()
    progress.item_started("1001 Bakkerij Jansen", 100_000, 100_000 * 1000, 0, 0)
    for _ in range(1000):  # 1,000 batches of 100 documents, 0.1 s apart
        clock.now += 0.1
        progress.advance(100, 100 * 1000)
    progress.item_finished("1001 Bakkerij Jansen", "completed", "100000 documents")
    assert lines[0] == "Moving 1001 Bakkerij Jansen: 100000 documents, 100.0 MB"
    assert len(lines) == 11  # start, 10% ... 90%, end
    assert lines[1] == "  1001 Bakkerij Jansen: 10000/100000 documents, 10.0 MB/100.0 MB (10%)"
    assert lines[9] == "  1001 Bakkerij Jansen: 90000/100000 documents, 90.0 MB/100.0 MB (90%)"
    assert lines[-1] == "  1001 Bakkerij Jansen: completed (100000 documents)"


def test_a_slow_move_says_something_every_30_seconds() -> None:
    progress, lines, clock = _lines()
    progress.item_started("1001 Bakkerij Jansen", 100_000, 100_000, 0, 0)
    for _ in range(120):  # two hours, 10 documents a minute: far below 10%
        clock.now += 60
        progress.advance(10, 10)
    assert len(lines) == 1 + 120
    assert lines[1] == "  1001 Bakkerij Jansen: 10/100000 documents, 10 bytes/100.0 kB (0%)"


def test_a_small_move_writes_no_progress_line() -> None:
    progress, lines, clock = _lines()
    progress.item_started("1001 Bakkerij Jansen", 3, 300, 0, 0)
    clock.now += 0.2
    progress.advance(3, 300)
    progress.item_finished("1001 Bakkerij Jansen", "completed", "3 documents")
    assert lines == ["Moving 1001 Bakkerij Jansen: 3 documents, 300 bytes",
                     "  1001 Bakkerij Jansen: completed (3 documents)"]


def test_a_resumed_move_counts_from_what_is_there() -> None:
    progress, lines, _ = _lines()
    progress.item_started("1001 Bakkerij Jansen", 1000, 1000, 950, 950)
    progress.advance(40, 40)
    assert lines == ["Moving 1001 Bakkerij Jansen: 1000 documents, 1.0 kB (950 already there)"]
    progress.advance(20, 20)  # 10% more, but the end: the last line says it
    assert len(lines) == 1


def test_a_workers_lines_name_the_worker_the_migration_and_the_administration() -> None:
    progress, lines, clock = _lines("alpha:4242: migration 3, administration 1")
    progress.item_started("1001 Bakkerij Jansen", 10, 10_000_000, 0, 0)
    clock.now += 1
    progress.advance(5, 5_000_000)
    clock.now += 1.5
    progress.item_finished("1001 Bakkerij Jansen", "completed", "10 documents")
    assert lines == [
        "alpha:4242: migration 3, administration 1: took 1001 Bakkerij Jansen: 10 documents, 10.0 MB",
        ("alpha:4242: migration 3, administration 1: 1001 Bakkerij Jansen: 5/10 documents, "
         "5.0 MB/10.0 MB (50%)"),
        ("alpha:4242: migration 3, administration 1: finished 1001 Bakkerij Jansen: completed (10 "
         "documents, 10.0 MB) in 2.5 s")]
    progress.item_finished("1001 Bakkerij Jansen", "failed", "1 of 10 documents did not arrive")
    assert lines[-1] == ("alpha:4242: migration 3, administration 1: finished 1001 Bakkerij Jansen: "
                         "failed in 2.5 s: 1 of 10 documents did not arrive")


def test_the_pace_of_an_empty_archive_is_silent() -> None:
    pace = Pace(0, 0, Clock())
    assert not pace.due(0)


def test_one_document_is_one_document() -> None:
    progress, lines, _ = _lines()
    progress.item_started("1002 Garage Smit", 1, 640, 0, 0)
    worker, logged, _ = _lines(name="worker-1:42")
    worker.item_started("1002 Garage Smit", 1, 640, 0, 0)
    assert (lines, logged) == (["Moving 1002 Garage Smit: 1 document, 640 bytes"],
                               ["worker-1:42: took 1002 Garage Smit: 1 document, 640 bytes"])
