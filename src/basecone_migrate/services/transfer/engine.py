"""One item's transfer, phase by phase: begin, copy, switch, clean up, complete or fail
(see the package's description)."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Iterable, Iterator

from sqlalchemy import delete, func, select

import basecone_migrate.services.transfer.copying as copying
import basecone_migrate.services.transfer.handover as handover
from basecone_migrate.db.lifecycle import change
from basecone_migrate.db.models import (
    Document,
    Migration,
    MigrationItem,
    TransferProgress,
)
from basecone_migrate.db.tables import UNFINISHED_STATUSES
from basecone_migrate.domain import lifecycle
from basecone_migrate.domain.lifecycle import Actor, Event, ItemStatus
from basecone_migrate.runtime import Runtime
from basecone_migrate.services import audit, object_moves
from basecone_migrate.services.archive import document_rounds
from basecone_migrate.services.locks import worker_label
from basecone_migrate.services.transfer.copying import (
    DOC_COLUMNS,
    Batch,
    Blocked,
    Doc,
    Plan,
    Problems,
    Remover,
    Stopped,
    archive_totals,
    label_of,
    rename_one,
    stream_all,
)
from basecone_migrate.services.transfer.progress import Progress
from basecone_migrate.storage import new_buffer

#: What a run (inline or a worker's job) takes up.
RESUMABLE = tuple(status.value for status in lifecycle.RUNNABLE)


class ItemTransfer:
    def __init__(self, rt: Runtime, item_id: int, actor: str, progress: Progress,
                 worker: str | None = None) -> None:
        self.rt = rt
        self.item_id = item_id
        self.actor = actor
        self.progress = progress
        self.worker = worker or worker_label()
        self.mail_ids: list[int] = []

    # -- 0. begin ----------------------------------------------------------------

    def begin(self) -> Plan:
        with self.rt.uow() as uow:
            s = uow.session
            item = s.get(MigrationItem, self.item_id, with_for_update=True)
            assert item is not None
            if item.status not in RESUMABLE:
                raise Stopped(item.status)
            migration = item.migration
            resumed = item.started_at is not None
            count, size, last_id = archive_totals(s, item.administration_id)
            change(item, Event.RESUME, Actor.WORKER)
            item.error = None
            item.started_at = item.started_at or self.rt.now()
            item.documents_total = count
            item.bytes_total = size
            item.worker = self.worker
            audit.record(s, at=self.rt.now(), actor=self.actor, action="transfer_start",
                         administration_id=item.administration_id, migration_id=migration.id,
                         resumed=resumed, phase=item.phase, documents=count, worker=self.worker)
            plan = Plan(
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

    def copy(self, plan: Plan) -> Problems:
        """Copy what is not yet at the target; returns the problems (none when all arrived)."""
        problems = Problems()
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
        remover = Remover(plan.source, plan.target) if rows else None
        batch = Batch(self.rt, plan.item_id, done_count, done_size, self.progress, rows=rows,
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

    def _move_objects(self, plan: Plan, batch: Batch, problems: Problems) -> None:
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

    def _documents(self, plan: Plan, progress: bool | None = None) -> Iterator[list[Doc]]:
        """The plan's documents, copying.READ_BATCH at a time by id, each round in a short read;
        ``progress`` True: only those recorded as arrived, False: only the others."""
        where = [Document.id <= plan.last_id]
        if progress is not None:
            arrived = (select(TransferProgress.document_id)
                       .where(TransferProgress.item_id == plan.item_id,
                              TransferProgress.document_id == Document.id).exists())
            where.append(arrived if progress else ~arrived)
        for rows in document_rounds(self.rt, plan.administration_id, DOC_COLUMNS, copying.READ_BATCH, *where):
            yield [Doc(*row) for row in rows]

    def _arrived(self, plan: Plan, doc: Doc, rename: bool) -> bool:
        if rename:
            return plan.target.size(doc.key) == doc.size
        return plan.target.holds(doc.key, doc.size, doc.sha256)

    def _all_arrived(self, plan: Plan) -> bool:
        """After a folder rename: every document at the target, with its recorded size."""
        for rows in document_rounds(self.rt, plan.administration_id,
                                    (Document.id, Document.storage_key, Document.size), copying.READ_BATCH,
                                    Document.id <= plan.last_id):
            sizes = plan.target.sizes_of(plan.administration_id, [key for _, key, _ in rows])
            if any(size != recorded for (_, _, recorded), size in zip(rows, sizes, strict=True)):
                return False
        return True

    def _move_all(self, plan: Plan, todo: list[Doc], rename: bool) -> Iterable[tuple[Doc, str | None]]:
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

    def switch(self, plan: Plan) -> bool:
        """The administration changes hands (`handover.switch`)."""
        return handover.switch(self.rt, plan)

    # -- 3. clean up and complete --------------------------------------------------------

    def clean_up(self, plan: Plan) -> None:
        """Remove the source copies: only now, after the switch, can nothing be lost."""
        if not plan.same_root:
            if plan.by_rename and plan.source.object_store:
                object_moves.reconcile(self.rt, plan.source, plan.target, plan.item_id,
                                       plan.administration_id)
            elif plan.by_rename:
                self._reconcile(plan)
            else:
                for documents in self._documents(plan):
                    plan.source.remove_all([d.key for d in documents], copying.IO_THREADS)
            plan.source.tidy(plan.administration_id)
        plan.target.tidy(plan.administration_id)

    def _reconcile(self, plan: Plan) -> None:
        """A rename leaves nothing behind, unless a run died inside a move that is a copy and
        a delete (an object store) or fell back to a stream: finish those here."""
        buffer = new_buffer()
        left = iter(list(plan.source.keys(plan.administration_id)))
        while keys := list(itertools.islice(left, copying.READ_BATCH)):
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

    def record_timings(self, plan: Plan, timings: dict[str, float], event: Event | None = None,
                       error: str | None = None) -> None:
        """Add this run's phase times to the item (and make ``event``'s change of status in
        the same commit)."""
        with self.rt.uow() as uow:
            item = uow.session.get(MigrationItem, plan.item_id, with_for_update=True)
            assert item is not None
            if item.status != ItemStatus.IN_PROGRESS:
                event = None  # stopped meanwhile (cancel, pause): that decides, not this run
            total = Counter(item.timings or {})
            total.update(timings)
            item.timings = {k: round(v, 4) for k, v in total.items()}
            item.mode = "none" if plan.same_root else ("rename" if plan.by_rename else "stream")
            if event is not None:
                change(item, event, Actor.WORKER)
                item.error = error
            uow.commit()

    def complete(self, plan: Plan) -> None:
        now = self.rt.now()
        with self.rt.uow() as uow:
            s = uow.session
            # Workers finish the items of one migration side by side: the migration's row is
            # taken first, so the last one to finish sees the others done and mails, once.
            s.execute(select(Migration.id).where(Migration.id == plan.migration_id).with_for_update())
            item = s.get(MigrationItem, plan.item_id, with_for_update=True)
            assert item is not None
            if item.status != ItemStatus.IN_PROGRESS:
                raise Stopped(item.status)
            migration = item.migration
            change(item, Event.COMPLETE, Actor.WORKER)
            item.phase = None
            item.finished_at = now
            item.documents_done = item.documents_total  # as the switch counted them
            item.bytes_done = item.bytes_total
            s.execute(delete(TransferProgress).where(TransferProgress.item_id == item.id))
            audit.record(
                s, at=now, actor=self.actor, action="transfer_complete",
                administration_id=item.administration_id, migration_id=migration.id,
                documents=item.documents_total, bytes=item.bytes_total, digest=item.digest,
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
                self.mail_ids.append(handover.queue_completed(self.rt, s, migration))
            uow.commit()

    def fail(self, plan: Plan, problems: Problems, timings: dict[str, float]) -> str:
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
        try:
            plan = self.begin()
        except Stopped as stopped:  # cancelled or paused before this run began
            return stopped.status
        timings: dict[str, float] = {}
        try:
            return self._run(plan, timings)
        except Stopped as stopped:  # paused or cancelled by a person: what arrived stays recorded
            self.record_timings(plan, timings)
            self.progress.item_finished(plan.label, stopped.status, f"stopped: {stopped.status}")
            return stopped.status
        except Exception as exc:  # noqa: BLE001 - any failure fails this item, with its reason
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            error = self.fail(plan, Problems.of(reason if isinstance(exc, Blocked) else
                                                 f"{type(exc).__name__}: {reason}"), timings)
            self.progress.item_finished(plan.label, ItemStatus.FAILED, error)
            return ItemStatus.FAILED

    def _run(self, plan: Plan, timings: dict[str, float]) -> str:
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
