"""The way back: a cancelled or undone item's administration returns to the sending
environment, with every document it has, its old connection, code, name and mail address,
and (when the switch had taken them) its users' access and workflows there.

Like a transfer it runs in steps that each leave a state a second run finishes (`cancel`
and `undo` run again, exit 5 until then):

1. **documents**: each document is made to be in the sending environment's storage with its
   recorded SHA-256 (moved or streamed from the receiving one, verified), flushed to stable
   storage; only then is the receiving copy removed. A document already back is left alone.
2. **switch back** (one transaction, when the administration had been switched): its
   environment, connection, code and name as offered, the old address again its own; the
   access and workflows it had are given back to the users still in that environment.
3. **done**: ``returned_at`` is set, the progress rows go, and with the last item of the
   migration both sides are mailed.

The caller holds the migration's transfer lock, so no transfer moves these documents at
the same time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from basecone_migrate.db.models import (
    Access,
    AccountingSystem,
    Administration,
    Document,
    Migration,
    MigrationItem,
    TransferProgress,
    User,
    Workflow,
    WorkflowAuthoriser,
)
from basecone_migrate.domain import mails
from basecone_migrate.domain.lifecycle import ItemStatus
from basecone_migrate.errors import TransferIncomplete
from basecone_migrate.inflight import in_flight
from basecone_migrate.runtime import Runtime
from basecone_migrate.services import aliases, audit
from basecone_migrate.services.archive import document_rounds
from basecone_migrate.services.migrations.common import env_label, lines, party, queue_mail
from basecone_migrate.services.migrations.results import archive_size
from basecone_migrate.services.transfer.copying import Doc, stream_all
from basecone_migrate.services.transfer.progress import NoProgress, Progress
from basecone_migrate.storage import Archive, ChecksumMismatch, ThreadBuffers

#: Statuses whose administration goes back (until ``returned_at`` is set).
RETURNING = (ItemStatus.CANCELLED.value, ItemStatus.UNDONE.value)
#: The status each command that brings items back gives them.
RETURNED_AS = {"cancel": ItemStatus.CANCELLED, "undo": ItemStatus.UNDONE}
READ_BATCH = 2000
LOCAL_THREADS = 4
PROBLEMS_SHOWN = 5


def unreturned(s: Any, migration_id: int, item_ids: Sequence[int] | None = None) -> list[MigrationItem]:
    """The migration's cancelled or undone items whose return is not finished."""
    query = select(MigrationItem).where(MigrationItem.migration_id == migration_id,
                                        MigrationItem.status.in_(RETURNING),
                                        MigrationItem.returned_at.is_(None))
    if item_ids is not None:
        query = query.where(MigrationItem.id.in_(list(item_ids)))
    return list(s.scalars(query.order_by(MigrationItem.id).execution_options(populate_existing=True)))


def return_items(rt: Runtime, migration_id: int, item_ids: Sequence[int], *, event: str,
                 actor: str, reason: str | None, progress: Progress | None = None) -> list[int]:
    """Bring each of ``item_ids`` (cancelled or undone) back, reporting to ``progress`` as the
    documents go (a bar at a terminal); the mail ids queued once the last one of the
    migration is back. TransferIncomplete (exit 5) when a document could not be brought back
    or the switch back is blocked: the message says what to do."""
    progress = progress or NoProgress()
    with rt.uow(read_only=True) as uow:
        migration = uow.session.get(Migration, migration_id)
        assert migration is not None
        here = rt.archive(migration.source_environment)
        there = (rt.archive(migration.target_environment) if migration.target_environment is not None
                 else here)
        home = migration.source_environment.code
        todo = [(i.id, i.administration_id, f"{i.source_code} {i.name} back to {home}")
                for i in unreturned(uow.session, migration_id, item_ids)]
    command = f"basecone-migrate {event} {migration_id}"
    for item_id, administration_id, label in todo:
        with rt.reading() as db:
            progress.item_started(label, *archive_size(db, administration_id), 0, 0)
        problems = bring_documents_back(rt, there, here, administration_id, progress)
        if problems:
            shown = "; ".join(problems[:PROBLEMS_SHOWN])
            raise TransferIncomplete(
                f"{len(problems)} document(s) of administration {administration_id} could not be "
                f"brought back ({shown}): fix the cause, then run `{command}` again")
        _switch_back(rt, item_id, actor, event, command)
        if not here.same_place(there):
            there.tidy(administration_id)
        progress.item_finished(label, RETURNED_AS[event].value, "every document back")
    return _finish(rt, migration_id, item_ids, event=event, actor=actor, reason=reason)


def bring_documents_back(rt: Runtime, there: Archive, here: Archive, administration_id: int,
                         progress: Progress | None = None) -> list[str]:
    """Every document of the administration into ``here`` (verified, durable), then out of
    ``there``, each round reported to ``progress``; what could not be done, one line a
    document. On one filesystem the whole
    folder goes back in one rename when ``here`` holds none of it (as the transfer's first
    run does); otherwise each document is renamed, or streamed and hashed on the way by the
    transfer's own streamer, with many in flight."""
    progress = progress or NoProgress()
    if here.same_place(there):
        return []
    rename = there.shares_filesystem_with(here)
    columns = (Document.id, Document.storage_key, Document.size, Document.sha256)
    if rename and there.move_folder(here, administration_id):
        problems = []
        for rows in document_rounds(rt, administration_id, columns, READ_BATCH):
            sizes = here.sizes_of(administration_id, [row[1] for row in rows])
            problems += [f"document {row[0]}: in neither archive with its recorded size"
                         for row, size in zip(rows, sizes, strict=True) if size != row[2]]
            progress.advance(len(rows), sum(row[2] for row in rows))
        return problems
    buffers = ThreadBuffers(for_store=there.object_store or here.object_store)
    threads = max(there.transfers, here.transfers) if (there.object_store or here.object_store) else LOCAL_THREADS

    def renamed(doc: Doc) -> str | None:  # a rename, or a server-side move checked against the SHA-256
        if here.size(doc.key) == doc.size:
            return None  # back already
        if there.size(doc.key) != doc.size:
            return f"document {doc.id}: in neither archive with its recorded size"
        try:
            there.move_to(here, doc.key, doc.sha256, buffers.get())
        except (OSError, ChecksumMismatch) as exc:
            return f"document {doc.id}: {exc}"
        return None if here.size(doc.key) == doc.size else f"document {doc.id}: not back after the move"

    problems = []
    for rows in document_rounds(rt, administration_id, columns, READ_BATCH):
        docs = [Doc(*row) for row in rows]
        found = (list(in_flight(renamed, docs, threads, "return")) if rename
                 else list(stream_all(there, here, docs, check_first=True)))
        problems += [problem for _, problem in found if problem is not None]
        here.make_durable()  # on disk here before the receiving copies go
        if not rename:  # a rename leaves nothing behind
            there.remove_all([doc.key for doc, problem in found if problem is None], LOCAL_THREADS)
        progress.advance(len(docs), sum(doc.size for doc in docs))
    return sorted(problems)


def _switch_back(rt: Runtime, item_id: int, actor: str, event: str, command: str) -> None:
    """The administration as it was offered, in one transaction (nothing when it was never
    switched)."""
    with rt.uow() as uow:
        s = uow.session
        item = s.get(MigrationItem, item_id, with_for_update=True)
        assert item is not None
        admin = s.scalar(select(Administration).where(Administration.id == item.administration_id)
                         .with_for_update())
        migration = item.migration
        assert admin is not None
        if admin.environment_id == migration.source_environment_id:
            return  # never switched: nothing of it changed
        before = {"environment": admin.environment.code, "accounting_system": admin.accounting_system_id,
                  "code": admin.code, "email": admin.email}
        if s.get(AccountingSystem, item.source_accounting_system_id) is None:
            raise TransferIncomplete(
                f"the connection {item.source_accounting_system_id} that administration "
                f"{item.source_code} had is gone: load it again, then run `{command}` again")
        s.execute(delete(Access).where(Access.administration_id == admin.id))
        s.execute(delete(Workflow).where(Workflow.administration_id == admin.id))
        admin.environment_id = migration.source_environment_id
        admin.accounting_system_id = item.source_accounting_system_id
        admin.code = item.source_code
        admin.name = item.name
        _give_back(s, admin.id, migration.source_environment_id, item.kept or {})
        aliases.record_change(s, admin.id, before["email"], item.source_email, rt.now())
        audit.record(s, at=rt.now(), actor=actor, action=f"{event}_switch_back",
                     administration_id=admin.id, migration_id=migration.id, before=before,
                     after={"environment": migration.source_environment.code,
                            "accounting_system": item.source_accounting_system_id,
                            "code": item.source_code, "email": item.source_email})
        try:
            uow.commit()
        except IntegrityError as exc:
            raise TransferIncomplete(
                f"administration {item.source_code} cannot take back code {item.source_code} in "
                f"{item.source_accounting_system_id}: it was taken meanwhile "
                f"({str(exc.orig).splitlines()[0]}); free it, then run `{command}` again") from None


def _give_back(s: Any, administration_id: int, environment_id: int, kept: dict[str, Any]) -> None:
    """The access and workflows the switch took, for the users still in the environment."""
    still = set(s.scalars(select(User.id).where(User.environment_id == environment_id)))
    for user_id in kept.get("access", []):
        if user_id in still:
            s.add(Access(administration_id=administration_id, user_id=user_id))
    for flow in kept.get("workflows", []):
        authorisers = [u for u in flow.get("authorisers", []) if u in still]
        if not authorisers:
            continue  # a workflow without its authorisers authorises nothing
        workflow = Workflow(administration_id=administration_id, name=flow["name"])
        s.add(workflow)
        s.flush()
        for user_id in authorisers:
            s.add(WorkflowAuthoriser(workflow_id=workflow.id, user_id=user_id))
    s.flush()


def _finish(rt: Runtime, migration_id: int, item_ids: Sequence[int], *, event: str, actor: str,
            reason: str | None) -> list[int]:
    """Mark the items back; with the migration's last one, mail both sides."""
    now = rt.now()
    with rt.uow() as uow:
        s = uow.session
        migration = s.scalar(select(Migration).where(Migration.id == migration_id).with_for_update())
        assert migration is not None
        done = unreturned(s, migration_id, item_ids)
        for item in done:
            item.returned_at = now
            item.phase = None
            s.execute(delete(TransferProgress).where(TransferProgress.item_id == item.id))
        s.flush()
        mail_ids: list[int] = []
        if done and not unreturned(s, migration_id):
            # Every item back: one mail names all those not yet told of (the workers bring
            # an undo's items back one job each; the last one to finish mails).
            done = [i for i in s.scalars(select(MigrationItem).where(
                MigrationItem.migration_id == migration_id, MigrationItem.status == RETURNED_AS[event].value)
                .order_by(MigrationItem.id)) if not (i.kept or {}).get("told")]
            for item in done:
                item.kept = {**(item.kept or {}), "told": True}
            by = s.scalar(select(User).where(User.email == actor))
            receiver = migration.redeemed_by or by
            mail_ids.append(queue_mail(rt, s, mails.returned(
                event=event, migration_id=migration_id, by=party(by or receiver),
                sender=party(migration.created_by), receiver=party(receiver),
                source=env_label(migration.source_environment),
                target=env_label(migration.target_environment or migration.source_environment),
                admins=lines(done), reason=reason), migration_id))
        uow.commit()
    return mail_ids
