"""Transfer progress: Rich bars for a person at a terminal, plain lines otherwise."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from basecone_migrate.cli.output import Output, cell, human_size, shown
from basecone_migrate.domain.lifecycle import ItemStatus

if TYPE_CHECKING:
    from basecone_migrate.services.transfer import Progress


class Pace:
    """When a log says how far a transfer got: at each further STEP of its documents, and
    after SECONDS without a line while it goes on, never at the end (the last line says it).
    A 100,000-document move that takes two hours writes about 250 lines, a small one none."""

    STEP = 0.10
    SECONDS = 30.0

    def __init__(self, total: int, done: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self.clock = clock
        self.last_done = done
        self.last_at = clock()

    def due(self, done: int) -> bool:
        if done >= self.total:
            return False
        now = self.clock()
        if done - self.last_done >= self.STEP * self.total or now - self.last_at >= self.SECONDS:
            self.last_done, self.last_at = done, now
            return True
        return False


class LinesProgress:
    """Lines on stderr, readable in logs, nothing animated: one when an administration
    starts, one at each further 10% (or after 30 s without one), one when it ends.

    ``name`` starts every line (a worker's ``name:pid: migration M, administration A``);
    ``emit`` writes one (default: a note, silent under --json and --quiet)."""

    def __init__(self, out: Output, name: str | None = None,
                 emit: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.out = out
        self.name = name
        self.emit = emit or out.note
        self.clock = clock
        self.pace: Pace | None = None
        self.label = ""
        self.done = [0, 0]
        self.total = [0, 0]
        self.started = 0.0

    def __enter__(self) -> LinesProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def item_started(self, label: str, documents: int, size: int, documents_done: int,
                     bytes_done: int) -> None:
        self.label, self.started = label, self.clock()
        self.done, self.total = [documents_done, bytes_done], [documents, size]
        self.pace = Pace(documents, documents_done, self.clock)
        already = f" ({documents_done} already there)" if documents_done else ""
        count = "1 document" if documents == 1 else f"{documents} documents"
        if self.name is None:
            self.emit(f"Moving {label}: {count}, {human_size(size)}{already}")
        else:
            self.emit(f"{self.name}: took {label}: {count}, {human_size(size)}{already}")

    def advance(self, documents: int, size: int) -> None:
        self.done[0] += documents
        self.done[1] += size
        if self.pace is None or not self.pace.due(self.done[0]):
            return
        (docs, done), (total_docs, total) = self.done, self.total
        share = f" ({100 * docs // total_docs}%)" if total_docs else ""
        where = f"{self.name}: {self.label}" if self.name is not None else f"  {self.label}"
        self.emit(f"{where}: {docs}/{total_docs} documents, {human_size(done)}/{human_size(total)}{share}")

    def item_finished(self, label: str, status: str, detail: str) -> None:
        if self.name is None:
            self.emit(f"  {label}: {status} ({detail})")
            return
        took = f"in {self.clock() - self.started:.1f} s"
        if status == ItemStatus.COMPLETED:
            self.emit(f"{self.name}: finished {label}: {status} ({detail}, {human_size(self.total[1])}) {took}")
        else:
            self.emit(f"{self.name}: finished {label}: {status} {took}: {detail}")


class RichProgress:
    """A bar per administration and one overall, in bytes and documents.

    The live display starts with the first administration's transfer, never before: a
    display that is running redraws its lines and would erase a question that a command
    asks meanwhile (`redeem` asks every question before it moves anything)."""

    def __init__(self, out: Output) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.bar = Progress(
            TextColumn("{task.description}", markup=False), BarColumn(),
            TextColumn("{task.fields[docs]} docs"), DownloadColumn(), TransferSpeedColumn(),
            TimeRemainingColumn(), console=out.err_console,
        )
        self.current: Any = None
        self.overall: Any = None
        self.docs = [0, 0]
        self.live = False

    def __enter__(self) -> RichProgress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.live:
            self.bar.stop()

    def item_started(self, label: str, documents: int, size: int, documents_done: int,
                     bytes_done: int) -> None:
        if not self.live:
            self.bar.start()
            self.live = True
        if self.overall is None:
            self.overall = self.bar.add_task("all administrations", total=0, docs="0/0")
        self.docs[0] += documents_done
        self.docs[1] += documents
        self.bar.update(self.overall, total=(self.bar.tasks[self.overall].total or 0) + size,
                        advance=bytes_done, docs=f"{self.docs[0]}/{self.docs[1]}")
        self.item_docs = [documents_done, documents]
        self.current = self.bar.add_task(cell(label), total=size, completed=bytes_done,
                                         docs=f"{documents_done}/{documents}")

    def advance(self, documents: int, size: int) -> None:
        self.item_docs[0] += documents
        self.docs[0] += documents
        self.bar.update(self.current, advance=size, docs=f"{self.item_docs[0]}/{self.item_docs[1]}")
        self.bar.update(self.overall, advance=size, docs=f"{self.docs[0]}/{self.docs[1]}")

    def item_finished(self, label: str, status: str, detail: str) -> None:
        if status != ItemStatus.COMPLETED:
            self.bar.console.print(shown(f"{label}: {status}: {detail}"))


def progress_for(out: Output) -> tuple[Any, Progress]:
    """(context manager, progress sink) for this run's output."""
    from basecone_migrate.services.transfer import NoProgress

    if out.json_mode or out.quiet:
        none = NoProgress()
        return _Null(), none
    if out.interactive:
        rich = RichProgress(out)
        return rich, rich
    lines = LinesProgress(out)
    return lines, lines


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        pass
