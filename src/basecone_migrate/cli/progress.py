"""Transfer progress: Rich bars for a person at a terminal, plain lines otherwise."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any

from basecone_migrate.cli.output import Output, human_size

if TYPE_CHECKING:
    from basecone_migrate.services.transfer import Progress


class LinesProgress:
    """One line per administration on stderr: readable in logs, nothing animated."""

    def __init__(self, out: Output) -> None:
        self.out = out

    def __enter__(self) -> LinesProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def item_started(self, label: str, documents: int, size: int, documents_done: int,
                     bytes_done: int) -> None:
        already = f" ({documents_done} already there)" if documents_done else ""
        self.out.note(f"Moving {label}: {documents} documents, {human_size(size)}{already}")

    def advance(self, documents: int, size: int) -> None:
        pass

    def item_finished(self, label: str, status: str, detail: str) -> None:
        self.out.note(f"  {label}: {status} ({detail})")


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
            TextColumn("{task.description}"), BarColumn(),
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
        self.current = self.bar.add_task(label, total=size, completed=bytes_done,
                                         docs=f"{documents_done}/{documents}")

    def advance(self, documents: int, size: int) -> None:
        self.item_docs[0] += documents
        self.docs[0] += documents
        self.bar.update(self.current, advance=size, docs=f"{self.item_docs[0]}/{self.item_docs[1]}")
        self.bar.update(self.overall, advance=size, docs=f"{self.docs[0]}/{self.docs[1]}")

    def item_finished(self, label: str, status: str, detail: str) -> None:
        if status != "completed":
            self.bar.console.print(f"{label}: {status}: {detail}", markup=False)


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
