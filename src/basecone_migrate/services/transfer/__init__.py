"""The transfer engine: moves an administration's archive and switches it over.

``copying`` moves documents, ``engine`` runs one item phase by phase, ``progress`` is what
they report; this module runs a migration's items.

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

from sqlalchemy import select

from basecone_migrate.db.models import MigrationItem
from basecone_migrate.domain.lifecycle import ItemStatus
from basecone_migrate.errors import TransferIncomplete
from basecone_migrate.mail import Delivery, Postman
from basecone_migrate.runtime import Runtime
from basecone_migrate.services.transfer.copying import Doc, stream_all
from basecone_migrate.services.transfer.engine import RESUMABLE, ItemTransfer
from basecone_migrate.services.transfer.progress import NoProgress, Progress

__all__ = ["RESUMABLE", "Doc", "ItemTransfer", "NoProgress", "Progress", "run_item", "stream_all",
           "transfer"]


def run_item(rt: Runtime, item_id: int, actor: str, progress: Progress,
             worker: str | None = None) -> tuple[str, list[int]]:
    """Move one item (the caller holds its lock): its final status and the mails queued."""
    job = ItemTransfer(rt, item_id, actor, progress, worker)
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
    stopped: list[str] = []
    try:
        for item_id in item_ids:
            status, mail_ids = run_item(rt, item_id, actor, progress)
            if status == ItemStatus.FAILED:
                failed += 1
            elif status in (ItemStatus.CANCELLED, ItemStatus.PAUSED):
                stopped.append(status)
            delivery.merge(Postman(rt).deliver(mail_ids))
    except KeyboardInterrupt:
        raise TransferIncomplete(
            f"transfer of migration {migration_id} interrupted: run "
            f"`basecone-migrate resume {migration_id}` to finish it") from None
    if stopped:
        how = " and ".join(sorted(set(stopped)))
        raise TransferIncomplete(
            f"transfer of migration {migration_id} stopped: {len(stopped)} administration(s) "
            f"{how} meanwhile (see `basecone-migrate status {migration_id}`)")
    if failed:
        raise TransferIncomplete(
            f"{failed} of {len(item_ids)} administrations did not finish moving: fix the cause "
            f"shown by `basecone-migrate status {migration_id}`, then run "
            f"`basecone-migrate resume {migration_id}`")
    return delivery
