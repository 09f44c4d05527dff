"""The transfer engine: moves an administration's archive and switches it over.

For each administration taken (a migration item ``in_progress`` or ``failed``):

1. **copy** (phase ``copying``): every document goes from the source environment's
   root to the target's. On one filesystem (or one object store) that is a rename or a
   server-side move; otherwise the bytes are streamed with one buffer per thread,
   hashed on the way and compared with the recorded SHA-256 before the document is put
   in place and counted. A small thread pool does the I/O. Documents done are written
   to ``transfer_progress`` in batches, not one commit per file.
2. **switch** (one transaction, phase ``switched``): the administration takes its new
   environment, connection and code; user access and workflows go. Before it, the
   target is flushed to stable storage, so nothing the database points at can vanish.
3. **clean up**: the source copies are removed (streamed transfers only: a rename
   leaves none), then the item is ``completed`` and, when it is the last one, the
   completion mail is queued.

A run can die at any point: ``resume`` picks the item up in its phase. On a resumed
copy, documents already at the target are checked (hash, or existence after a
rename) instead of copied again, so none is lost or doubled.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from basecone_migrate.db.lifecycle import change
from basecone_migrate.db.models import (
    Access,
    Administration,
    Document,
    Environment,
    Migration,
    MigrationItem,
    TransferProgress,
    User,
    Workflow,
)
from basecone_migrate.db.tables import UNFINISHED_STATUSES
from basecone_migrate.domain import lifecycle, mails
from basecone_migrate.domain.lifecycle import Actor, Event, ItemStatus
from basecone_migrate.domain.rules import administration_email
from basecone_migrate.errors import TransferIncomplete
from basecone_migrate.inflight import in_flight
from basecone_migrate.mail import Delivery, Postman
from basecone_migrate.runtime import Runtime
from basecone_migrate.services import aliases, audit, object_moves
from basecone_migrate.services.archive import document_rounds
from basecone_migrate.services.locks import worker_label
from basecone_migrate.storage import Archive, ChecksumMismatch, ThreadBuffers, new_buffer

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


class Progress(Protocol):
    """What the engine reports as it goes (Rich bars on a terminal, lines otherwise)."""

    def item_started(self, label: str, documents: int, size: int, documents_done: int,
                     bytes_done: int) -> None: ...

    def advance(self, documents: int, size: int) -> None: ...

    def item_finished(self, label: str, status: str, detail: str) -> None: ...


class NoProgress:
    def item_started(self, label: str, documents: int, size: int, documents_done: int,
                     bytes_done: int) -> None:
        pass

    def advance(self, documents: int, size: int) -> None:
        pass

    def item_finished(self, label: str, status: str, detail: str) -> None:
        pass


@dataclass(frozen=True)
class Doc:
    id: int
    key: str
    size: int
    sha256: str


DOC_COLUMNS = (Document.id, Document.storage_key, Document.size, Document.sha256)


@dataclass
class _Plan:
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


class _ItemTransfer:
    def __init__(self, rt: Runtime, item_id: int, actor: str, progress: Progress,
                 worker: str | None = None) -> None:
        self.rt = rt
        self.item_id = item_id
        self.actor = actor
        self.progress = progress
        self.worker = worker or worker_label()
        self.mail_ids: list[int] = []

    # -- 0. begin ----------------------------------------------------------------

    def begin(self) -> _Plan:
        with self.rt.uow() as uow:
            s = uow.session
            item = s.get(MigrationItem, self.item_id)
            assert item is not None
            migration = item.migration
            resumed = item.started_at is not None
            count, size, last_id = _archive_totals(s, item.administration_id)
            change(item, Event.RESUME, Actor.WORKER)
            item.error = None
            item.started_at = item.started_at or self.rt.now()
            item.documents_total = count
            item.bytes_total = size
            item.worker = self.worker
            audit.record(s, at=self.rt.now(), actor=self.actor, action="transfer_start",
                         administration_id=item.administration_id, migration_id=migration.id,
                         resumed=resumed, phase=item.phase, documents=count, worker=self.worker)
            plan = _Plan(
                item_id=item.id, migration_id=migration.id,
                administration_id=item.administration_id, label=label_of(item),
                phase=item.phase or "copying", resumed=resumed,
                source=self.rt.archive(migration.source_environment),
                target=self.rt.archive(migration.target_environment),  # type: ignore[arg-type]
                documents=count, size=size, last_id=last_id,
            )
            uow.commit()
        return plan

    # -- 1. copy -----------------------------------------------------------------

    def copy(self, plan: _Plan) -> _Problems:
        """Copy what is not yet at the target; returns the problems (none when all arrived)."""
        problems = _Problems()
        if plan.same_root:  # one root for both offices: nothing to move
            return problems
        rename = plan.by_rename
        objects = rename and plan.source.object_store  # server-side copies on one endpoint
        rows = objects or not rename
        if plan.resumed and rows and not plan.target.object_store:
            # A crash may have lost what the last run wrote after its last sync: check the
            # target again rather than trusting the progress rows. (Renames keep no rows:
            # a resumed rename checks every target anyway; an object store's writes are
            # durable when they return.)
            for done in self._documents(plan, progress=True):
                lost = [d.id for d in done if not self._arrived(plan, d, rename)]
                if lost:
                    with self.rt.uow() as uow:
                        uow.session.execute(delete(TransferProgress).where(
                            TransferProgress.item_id == plan.item_id,
                            TransferProgress.document_id.in_(lost)))
                        uow.commit()
        with self.rt.uow(read_only=True) as uow:
            done_count, done_size = uow.session.execute(
                select(func.count(), func.coalesce(func.sum(Document.size), 0))
                .select_from(TransferProgress)
                .join(Document, Document.id == TransferProgress.document_id)
                .where(TransferProgress.item_id == plan.item_id)).one()
        self.progress.item_started(plan.label, plan.documents, plan.size, done_count, done_size)
        # Streamed: each batch is made durable at the target, recorded, then its source
        # copies are removed in the background while the copy goes on (the clean-up after
        # the switch only finds what is left).
        remover = _Remover(plan.source, plan.target) if rows else None
        batch = _Batch(self.rt, plan.item_id, done_count, done_size, self.progress, rows=rows,
                       remover=remover)
        # The fast path of a first run on one filesystem: the whole folder in one rename,
        # then every document's size checked at the target. When one is not there, the
        # folder goes back and each document is renamed, so that a failure leaves what it
        # always left: the missing document's place in the source archive.
        moved = (rename and not plan.resumed and plan.source.is_local
                 and plan.source.move_folder(plan.target, plan.administration_id))
        if moved and not self._all_arrived(plan):
            plan.target.move_folder(plan.source, plan.administration_id)
            moved = False
        if moved:
            batch.count_all(plan.documents, plan.size)
        try:
            if objects:
                self._move_objects(plan, batch, problems)
            for todo in ([] if moved or objects else self._documents(plan, progress=False)):
                for doc, problem in self._move_all(plan, todo, rename):
                    if problem is None:
                        batch.add(doc)
                    else:
                        problems.add(problem)
            batch.flush()
        except KeyboardInterrupt:
            batch.flush()
            raise
        finally:
            if remover is not None:
                remover.close()
        if not problems and rename:  # renames are metadata: commit both folders' entries
            plan.target.sync_folder(plan.administration_id)
            plan.source.sync_folder(plan.administration_id)
        elif not problems:  # streamed bytes must be on disk before the switch relies on them
            plan.target.make_durable()
        return problems

    def _move_objects(self, plan: _Plan, batch: _Batch, problems: _Problems) -> None:
        """Server-side copies of what the source's listing shows (`object_moves`), then a
        look at the target for any document the listing did not show (moved by a run that
        died before recording it, or missing from both)."""
        for found, problem in object_moves.copy_listed(self.rt, plan.source, plan.target, plan.item_id,
                                                       plan.administration_id, plan.last_id):
            if problem is None:
                batch.add(Doc(found.id, found.key, found.size, found.sha256))
            else:
                problems.add(problem)
        if problems:
            return
        batch.flush()  # what is recorded is not looked for again
        unlisted = ((d.id, d.key, d.size, d.sha256) for documents in self._documents(plan, progress=False)
                    for d in documents)
        for document, held in object_moves.holds_each(plan.target, unlisted):
            if held:
                batch.add(Doc(*document))
            else:
                problems.add(f"document {document[0]}: missing from both archives")

    def _documents(self, plan: _Plan, progress: bool | None = None) -> Iterator[list[Doc]]:
        """The plan's documents, READ_BATCH at a time by id, each round in a short read;
        ``progress`` True: only those recorded as arrived, False: only the others."""
        where = [Document.id <= plan.last_id]
        if progress is not None:
            arrived = (select(TransferProgress.document_id)
                       .where(TransferProgress.item_id == plan.item_id,
                              TransferProgress.document_id == Document.id).exists())
            where.append(arrived if progress else ~arrived)
        for rows in document_rounds(self.rt, plan.administration_id, DOC_COLUMNS, READ_BATCH, *where):
            yield [Doc(*row) for row in rows]

    def _arrived(self, plan: _Plan, doc: Doc, rename: bool) -> bool:
        if rename:
            return plan.target.size(doc.key) == doc.size
        return plan.target.holds(doc.key, doc.size, doc.sha256)

    def _all_arrived(self, plan: _Plan) -> bool:
        """After a folder rename: every document at the target, with its recorded size."""
        for rows in document_rounds(self.rt, plan.administration_id,
                                    (Document.id, Document.storage_key, Document.size), READ_BATCH,
                                    Document.id <= plan.last_id):
            sizes = plan.target.sizes_of(plan.administration_id, [key for _, key, _ in rows])
            if any(size != recorded for (_, _, recorded), size in zip(rows, sizes, strict=True)):
                return False
        return True

    def _move_all(self, plan: _Plan, todo: list[Doc], rename: bool) -> Iterable[tuple[Doc, str | None]]:
        check_first = plan.resumed  # only a resumed run can find documents already there
        if rename:
            buffer = new_buffer()
            if check_first or not (plan.source.is_local and plan.target.is_local):
                for doc in todo:
                    yield doc, rename_one(plan.source, plan.target, doc, check_first, buffer)
                return
            by_key = {doc.key: doc for doc in todo}
            renamed = plan.source.rename_many(plan.target, plan.administration_id, list(by_key))
            for key, error in renamed:  # the common case: one rename each, nothing else
                doc = by_key[key]
                yield doc, (None if error is None else
                            rename_one(plan.source, plan.target, doc, check_first, buffer))
            return
        yield from stream_all(plan.source, plan.target, todo, check_first)

    # -- 2. switch ---------------------------------------------------------------

    def switch(self, plan: _Plan) -> bool:
        """The administration changes hands, in one transaction. False when its archive
        gained documents since the copy: then the copy runs again first."""
        with self.rt.uow() as uow:
            s = uow.session
            item = s.get(MigrationItem, plan.item_id)
            admin = s.scalar(select(Administration).where(Administration.id == plan.administration_id)
                             .with_for_update())
            assert item is not None and admin is not None
            count, _, last_id = _archive_totals(s, admin.id)
            if (count, last_id) != (plan.documents, plan.last_id):
                return False
            migration = item.migration
            target: Environment = migration.target_environment  # type: ignore[assignment]
            s.execute(delete(Access).where(Access.administration_id == admin.id))
            s.execute(delete(Workflow).where(Workflow.administration_id == admin.id))
            admin.environment_id = target.id
            admin.accounting_system_id = item.target_accounting_system_id  # type: ignore[assignment]
            admin.code = item.target_code  # type: ignore[assignment]
            if item.target_name is not None:  # linked to a catalogue entry of another name, on purpose
                admin.name = item.target_name
            item.target_email = administration_email(target.code, admin.code)
            item.phase = "switched"
            aliases.record_change(s, admin.id, item.source_email, item.target_email, self.rt.now())
            try:
                uow.commit()
            except IntegrityError as exc:
                raise _Blocked(
                    f"the switch to {item.target_accounting_system_id} code {item.target_code} is "
                    f"blocked by the database ({str(exc.orig).splitlines()[0]}): that link was taken "
                    "meanwhile; free it, then resume") from None
        return True

    # -- 3. clean up and complete --------------------------------------------------------

    def clean_up(self, plan: _Plan) -> None:
        """Remove the source copies: only now, after the switch, can nothing be lost."""
        if not plan.same_root:
            if plan.by_rename and plan.source.object_store:
                object_moves.reconcile(self.rt, plan.source, plan.target, plan.item_id,
                                       plan.administration_id)
            elif plan.by_rename:
                self._reconcile(plan)
            else:
                for documents in self._documents(plan):
                    plan.source.remove_all([d.key for d in documents], IO_THREADS)
            plan.source.tidy(plan.administration_id)
        plan.target.tidy(plan.administration_id)

    def _reconcile(self, plan: _Plan) -> None:
        """A rename leaves nothing behind, unless a run died inside a move that is a copy and
        a delete (an object store) or fell back to a stream: finish those here."""
        buffer = new_buffer()
        left = iter(list(plan.source.keys(plan.administration_id)))
        while keys := list(itertools.islice(left, READ_BATCH)):
            with self.rt.uow(read_only=True) as uow:
                by_key = {row.storage_key: Doc(*row) for row in uow.session.execute(
                    select(*DOC_COLUMNS).where(Document.administration_id == plan.administration_id,
                                               Document.storage_key.in_(keys)))}
            for key in keys:
                doc = by_key.get(key)
                if doc is None:
                    continue  # not one of this administration's documents: never ours to delete
                if plan.source.same_file(plan.target, key):
                    continue  # two names of one file: removing the source would remove the target
                if not plan.target.holds(key, doc.size, doc.sha256, buffer):
                    plan.source.move_to(plan.target, key, doc.sha256, buffer)
                # Only a copy whose bytes are the recorded ones at the target lets the source go.
                if plan.target.holds(key, doc.size, doc.sha256, buffer):
                    plan.source.remove(key)

    def record_timings(self, plan: _Plan, timings: dict[str, float], event: Event | None = None,
                       error: str | None = None) -> None:
        """Add this run's phase times to the item (and make ``event``'s change of status in
        the same commit)."""
        with self.rt.uow() as uow:
            item = uow.session.get(MigrationItem, plan.item_id)
            assert item is not None
            total = Counter(item.timings or {})
            total.update(timings)
            item.timings = {k: round(v, 4) for k, v in total.items()}
            item.mode = "none" if plan.same_root else ("rename" if plan.by_rename else "stream")
            if event is not None:
                change(item, event, Actor.WORKER)
                item.error = error
            uow.commit()

    def complete(self, plan: _Plan) -> None:
        now = self.rt.now()
        with self.rt.uow() as uow:
            s = uow.session
            # Workers finish the items of one migration side by side: the migration's row is
            # taken first, so the last one to finish sees the others done and mails, once.
            s.execute(select(Migration.id).where(Migration.id == plan.migration_id).with_for_update())
            item = s.get(MigrationItem, plan.item_id)
            assert item is not None
            migration = item.migration
            change(item, Event.COMPLETE, Actor.WORKER)
            item.phase = None
            item.finished_at = now
            item.documents_done = item.documents_total
            item.bytes_done = item.bytes_total
            s.execute(delete(TransferProgress).where(TransferProgress.item_id == item.id))
            audit.record(
                s, at=now, actor=self.actor, action="transfer_complete",
                administration_id=item.administration_id, migration_id=migration.id,
                documents=item.documents_total, bytes=item.bytes_total,
                source={"environment": migration.source_environment.code,
                        "accounting_system": item.source_accounting_system_id,
                        "code": item.source_code, "email": item.source_email},
                target={"environment": migration.target_environment.code,  # type: ignore[union-attr]
                        "accounting_system": item.target_accounting_system_id,
                        "code": item.target_code, "email": item.target_email,
                        **({"name": item.target_name} if item.target_name else {})},
            )
            s.flush()
            unfinished = s.scalar(select(func.count()).select_from(MigrationItem).where(
                MigrationItem.migration_id == migration.id, MigrationItem.status.in_(UNFINISHED_STATUSES)))
            if not unfinished:
                self.mail_ids.append(_queue_completed(self.rt, s, migration))
            uow.commit()

    def fail(self, plan: _Plan, problems: _Problems, timings: dict[str, float]) -> str:
        kept, count = problems.kept, problems.count
        shown = "; ".join(kept[:3]) + (f"; and {count - 3} more" if count > 3 else "")
        if problems.documents_only:
            error = f"{count} of {plan.documents} documents did not arrive: {shown}"
        else:
            error = shown
        with self.rt.uow() as uow:
            audit.record(uow.session, at=self.rt.now(), actor=self.actor, action="transfer_failed",
                         administration_id=plan.administration_id, migration_id=plan.migration_id,
                         problems=kept, count=count)
            uow.commit()
        self.record_timings(plan, timings, event=Event.FAIL, error=error[:4000])
        return error

    def run(self) -> str:
        plan = self.begin()
        timings: dict[str, float] = {}
        try:
            return self._run(plan, timings)
        except Exception as exc:  # noqa: BLE001 - any failure fails this item, with its reason
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            error = self.fail(plan, _Problems.of(reason if isinstance(exc, _Blocked) else
                                                 f"{type(exc).__name__}: {reason}"), timings)
            self.progress.item_finished(plan.label, ItemStatus.FAILED, error)
            return ItemStatus.FAILED

    def _run(self, plan: _Plan, timings: dict[str, float]) -> str:
        clock = time.monotonic()

        def lap(phase: str) -> None:
            nonlocal clock
            now = time.monotonic()
            timings[phase] = timings.get(phase, 0.0) + now - clock
            clock = now

        if plan.phase != "copying":  # switched by a run that died: only the clean-up is left
            self.progress.item_started(plan.label, plan.documents, plan.size, plan.documents, plan.size)
        while plan.phase == "copying":
            problems = self.copy(plan)
            lap("copy")
            if problems:
                error = self.fail(plan, problems, timings)
                self.progress.item_finished(plan.label, ItemStatus.FAILED, error)
                return ItemStatus.FAILED
            if self.switch(plan):
                plan.phase = "switched"
            else:  # documents joined the archive during the copy: take them too
                plan = self.begin()
            lap("switch")
        self.clean_up(plan)
        lap("clean_up")
        self.record_timings(plan, timings)
        self.complete(plan)
        self.progress.item_finished(plan.label, ItemStatus.COMPLETED,
                                    f"{plan.documents} documents")
        return ItemStatus.COMPLETED


class _Blocked(Exception):
    """The switch cannot be made; the message says why and what to do."""


class _Problems:
    """Why documents did not arrive: the first PROBLEMS_KEPT word for word, all counted."""

    def __init__(self) -> None:
        self.kept: list[str] = []
        self.count = 0
        self.documents_only = True

    @classmethod
    def of(cls, problem: str) -> _Problems:
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


class _Batch:
    """Documents verified at the target, written to the database in batches: a progress
    row each when streamed (a resume trusts, then re-checks, them), only the counters for
    renames (a resume checks every target with a `stat` anyway)."""

    def __init__(self, rt: Runtime, item_id: int, done: int, done_size: int, progress: Progress,
                 rows: bool = True, remover: _Remover | None = None) -> None:
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
            uow.commit()
        if self.remover is not None:
            self.remover.remove([d.key for d in pending])
        self.progress.advance(len(pending), size)


class _Remover:
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


def _archive_totals(s: Any, administration_id: int) -> tuple[int, int, int]:
    """(documents, bytes, highest id) of an administration's archive: one aggregate."""
    count, size, last_id = s.execute(
        select(func.count(), func.coalesce(func.sum(Document.size), 0),
               func.coalesce(func.max(Document.id), 0))
        .where(Document.administration_id == administration_id)).one()
    return int(count), int(size), int(last_id)


def _queue_completed(rt: Runtime, s: Any, migration: Migration) -> int:
    items = list(s.scalars(select(MigrationItem).where(
        MigrationItem.migration_id == migration.id, MigrationItem.status == ItemStatus.COMPLETED.value)
        .order_by(MigrationItem.id)))
    sender = migration.created_by
    receiver: User = migration.redeemed_by  # type: ignore[assignment]
    mail = mails.completed(
        migration_id=migration.id,
        sender=mails.Party(sender.name, sender.email),
        receiver=mails.Party(receiver.name, receiver.email),
        source=f"{migration.source_environment.name} ({migration.source_environment.code})",
        target=f"{migration.target_environment.name} ({migration.target_environment.code})",  # type: ignore[union-attr]
        admins=[mails.AdminLine(f"{i.target_name} (was {i.name})" if i.target_name else i.name,
                                i.target_code or i.source_code, i.package, i.target_email or "")
                for i in items],
    )
    from basecone_migrate.services.migrations.common import queue_mail

    return queue_mail(rt, s, mail, migration.id)


def run_item(rt: Runtime, item_id: int, actor: str, progress: Progress,
             worker: str | None = None) -> tuple[str, list[int]]:
    """Move one item (the caller holds its lock): its final status and the mails queued."""
    job = _ItemTransfer(rt, item_id, actor, progress, worker)
    return job.run(), job.mail_ids


def transfer(rt: Runtime, migration_id: int, actor: str, progress: Progress) -> Delivery:
    """Transfer every unfinished item of a migration (the caller holds its TransferLock).

    Raises TransferIncomplete (exit 5) when an item failed or the run was interrupted.
    """
    with rt.uow() as uow:
        item_ids = list(uow.session.scalars(select(MigrationItem.id).where(
            MigrationItem.migration_id == migration_id, MigrationItem.status.in_(RESUMABLE))
            .order_by(MigrationItem.id)))
    delivery = Delivery()
    failed = 0
    try:
        for item_id in item_ids:
            status, mail_ids = run_item(rt, item_id, actor, progress)
            if status == ItemStatus.FAILED:
                failed += 1
            delivery.merge(Postman(rt).deliver(mail_ids))
    except KeyboardInterrupt:
        raise TransferIncomplete(
            f"transfer of migration {migration_id} interrupted: run "
            f"`basecone-migrate resume {migration_id}` to finish it") from None
    if failed:
        raise TransferIncomplete(
            f"{failed} of {len(item_ids)} administrations did not finish moving: fix the cause "
            f"shown by `basecone-migrate status {migration_id}`, then run "
            f"`basecone-migrate resume {migration_id}`")
    return delivery
