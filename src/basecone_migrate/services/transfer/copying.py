"""Moving documents: one by rename or stream, many in flight, the progress rows written
in batches, the sources removed behind the copy, and what went wrong, kept."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from sqlalchemy import func, insert, select, update

from basecone_migrate.db.models import (
    Document,
    MigrationItem,
    TransferProgress,
)
from basecone_migrate.domain import lifecycle
from basecone_migrate.inflight import in_flight
from basecone_migrate.runtime import Runtime
from basecone_migrate.services.transfer.progress import Progress
from basecone_migrate.storage import Archive, ChecksumMismatch, ThreadBuffers

IO_THREADS = 4
STREAM_CHUNK = 32
_MISMATCH = ("document {}: the source bytes do not match the recorded SHA-256 (restore the "
             "document, then resume)")
BATCH_DOCUMENTS = 2000
BATCH_SECONDS = 0.5
#: Documents read from the database per round: memory holds one round, whatever the size.
READ_BATCH = 5000
#: Batches of source copies waiting to be removed while the copy goes on.
PENDING_REMOVALS = 8
#: Problems kept word for word (the rest are counted).
PROBLEMS_KEPT = 20
#: What a run (inline or a worker's job) takes up.
RESUMABLE = tuple(status.value for status in lifecycle.RUNNABLE)


@dataclass(frozen=True)
class Doc:
    id: int
    key: str
    size: int
    sha256: str


DOC_COLUMNS = (Document.id, Document.storage_key, Document.size, Document.sha256)


@dataclass
class Plan:
    item_id: int
    migration_id: int
    administration_id: int
    label: str
    phase: str
    resumed: bool
    source: Archive
    target: Archive
    documents: int  # the archive when the plan was made: its count, bytes and highest id
    size: int
    last_id: int

    @cached_property
    def same_root(self) -> bool:
        """One place under one name or two (`Archive.same_place`): nothing moves, and no
        source is ever removed, for it is its own target."""
        return self.source.same_place(self.target)

    @cached_property  # creates the roots and stats both: once per plan is enough
    def by_rename(self) -> bool:
        """Rename (or server-side move) when both roots share a filesystem; else stream."""
        return self.same_root or self.source.shares_filesystem_with(self.target)


def rename_one(source: Archive, target: Archive, doc: Doc, check_first: bool,
               buffer: bytearray) -> str | None:
    """Move one document by rename; None when it is at the target, else the problem."""
    try:
        if check_first and target.size(doc.key) == doc.size:
            return None
        source.move_to(target, doc.key, doc.sha256, buffer)
        return None
    except FileNotFoundError:
        if target.size(doc.key) == doc.size:
            return None  # renamed by an earlier run that died before recording it
        return f"document {doc.id}: missing from both archives"
    except ChecksumMismatch:  # streamed after a refused rename
        return _MISMATCH.format(doc.id)
    except OSError as exc:
        return f"document {doc.id}: {exc.strerror or exc}"


def stream_one(source: Archive, target: Archive, doc: Doc, check_first: bool,
               buffer: bytearray) -> str | None:
    """Copy one document, verified against its SHA-256; None when it is at the target."""
    try:
        if check_first and target.holds(doc.key, doc.size, doc.sha256, buffer):
            return None
        source.copy_to(target, doc.key, doc.sha256, buffer, doc.size)
        return None
    except FileNotFoundError:
        if target.holds(doc.key, doc.size, doc.sha256, buffer):
            return None
        return f"document {doc.id}: missing from the source archive"
    except ChecksumMismatch:
        return _MISMATCH.format(doc.id)
    except OSError as exc:
        return f"document {doc.id}: {exc.strerror or exc}"


def stream_all(source: Archive, target: Archive, docs: list[Doc],
               check_first: bool = False) -> Iterator[tuple[Doc, str | None]]:
    """Stream documents on a thread pool, each thread with one buffer.

    Between local folders a small pool takes documents in chunks, so the thread that
    records progress wakes once per chunk, not once per document (on two cores, every
    wake-up competes for the GIL). With an object store on either side a request waits
    tens of milliseconds: ``transfers`` documents are in flight, one at a time each.
    """
    stores = [a.transfers for a in (source, target) if a.object_store]
    threads, chunk = (max(stores), 1) if stores else (IO_THREADS, STREAM_CHUNK)
    buffers = ThreadBuffers(for_store=bool(stores))

    def work(chunk: list[Doc]) -> list[tuple[Doc, str | None]]:
        return [(doc, stream_one(source, target, doc, check_first, buffers.get())) for doc in chunk]

    chunks = (docs[i:i + chunk] for i in range(0, len(docs), chunk))
    for _, results in in_flight(work, chunks, threads, "transfer"):
        yield from results


def label_of(item: MigrationItem) -> str:
    return f"{item.source_code} {item.name}"


class Blocked(Exception):
    """The switch cannot be made; the message says why and what to do."""


class Stopped(Exception):  # noqa: N818 - not an error: someone stopped the transfer
    """The item left ``in_progress`` while it moved (paused or cancelled): stop at once."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


class Problems:
    """Why documents did not arrive: the first PROBLEMS_KEPT word for word, all counted."""

    def __init__(self) -> None:
        self.kept: list[str] = []
        self.count = 0
        self.documents_only = True

    @classmethod
    def of(cls, problem: str) -> Problems:
        problems = cls()
        problems.add(problem)
        return problems

    def add(self, problem: str) -> None:
        self.count += 1
        self.documents_only = self.documents_only and problem.startswith("document ")
        if len(self.kept) < PROBLEMS_KEPT:
            self.kept.append(problem)

    def __bool__(self) -> bool:
        return self.count > 0


class Batch:
    """Documents verified at the target, written to the database in batches: a progress
    row each when streamed (a resume trusts, then re-checks, them), only the counters for
    renames (a resume checks every target with a `stat` anyway)."""

    def __init__(self, rt: Runtime, item_id: int, done: int, done_size: int, progress: Progress,
                 rows: bool = True, remover: Remover | None = None) -> None:
        self.rt = rt
        self.remover = remover
        self.item_id = item_id
        self.done = done
        self.bytes_done = done_size
        self.rows = rows
        self.pending: list[Doc] = []
        self.progress = progress
        self.last = time.monotonic()

    def add(self, doc: Doc) -> None:
        self.pending.append(doc)
        if len(self.pending) >= BATCH_DOCUMENTS or time.monotonic() - self.last >= BATCH_SECONDS:
            self.flush()

    def count_all(self, documents: int, size: int) -> None:
        """Everything arrived at once (a folder rename): the counters only."""
        self.pending.clear()
        with self.rt.uow() as uow:
            uow.session.execute(update(MigrationItem).where(MigrationItem.id == self.item_id)
                                .values(documents_done=documents, bytes_done=size))
            uow.commit()
        self.progress.advance(documents - self.done, size - self.bytes_done)
        self.done, self.bytes_done = documents, size

    def flush(self) -> None:
        self.last = time.monotonic()
        if not self.pending:
            return
        pending, self.pending = self.pending, []
        size = sum(d.size for d in pending)
        self.done += len(pending)
        self.bytes_done += size
        if self.remover is not None:  # the source copies go next: these must be on disk first
            self.remover.target.make_durable()
        with self.rt.uow() as uow:
            if self.rows:
                uow.session.execute(insert(TransferProgress),
                                    [{"item_id": self.item_id, "document_id": d.id} for d in pending])
            uow.session.execute(update(MigrationItem).where(MigrationItem.id == self.item_id)
                                .values(documents_done=self.done, bytes_done=self.bytes_done))
            status = uow.session.scalar(select(MigrationItem.status).where(MigrationItem.id == self.item_id))
            uow.commit()
        if self.remover is not None:
            self.remover.remove([d.key for d in pending])
        self.progress.advance(len(pending), size)
        if status != lifecycle.ItemStatus.IN_PROGRESS:  # paused or cancelled: at the next document
            raise Stopped(str(status))


class Remover:
    """Removes the source copies of documents already durable at the target and recorded,
    a batch at a time on a thread of its own, alongside the copy. Up to PENDING_REMOVALS
    batches wait their turn, so a slow disk (unlinking is I/O: journal commits, discards)
    never holds the copy up, and memory stays bounded by those batches' keys. A failure
    here is left to the clean-up after the switch, which removes whatever is left and says
    why not."""

    def __init__(self, source: Archive, target: Archive) -> None:
        self.source = source
        self.target = target
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="remove")
        self.pending: deque[Any] = deque()

    def remove(self, keys: list[str]) -> None:
        while len(self.pending) >= PENDING_REMOVALS:
            self._wait(self.pending.popleft())
        self.pending.append(self.pool.submit(self.source.remove_all, keys, 2))

    @staticmethod
    def _wait(batch: Any) -> None:
        try:
            batch.result()
        except OSError:
            pass  # the clean-up tries again, and reports

    def close(self) -> None:
        while self.pending:
            self._wait(self.pending.popleft())
        self.pool.shutdown(wait=True)


def archive_totals(s: Any, administration_id: int) -> tuple[int, int, int]:
    """(documents, bytes, highest id) of an administration's archive: one aggregate."""
    count, size, last_id = s.execute(
        select(func.count(), func.coalesce(func.sum(Document.size), 0),
               func.coalesce(func.max(Document.id), 0))
        .where(Document.administration_id == administration_id)).one()
    return int(count), int(size), int(last_id)
