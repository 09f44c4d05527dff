"""resume: finish a transfer that did not finish, here or on the workers."""

from __future__ import annotations

from basecone_migrate.db.lifecycle import change
from basecone_migrate.domain import lifecycle
from basecone_migrate.domain.lifecycle import Actor, Event, ItemStatus
from basecone_migrate.errors import (
    Refused,
)
from basecone_migrate.runtime import Runtime
from basecone_migrate.services import audit, lookup
from basecone_migrate.services.locks import TransferLock
from basecone_migrate.services.migrations.common import (
    Outcome,
    acting_side,
    item_status,
    items_of,
    migration_status,
    require_mail_settings,
)
from basecone_migrate.services.migrations.receiving import check_archives, run_transfer
from basecone_migrate.services.migrations.results import redeem_payload
from basecone_migrate.services.transfer import Progress


def resume(rt: Runtime, migration_id: int, progress: Progress | None = None,
           background: bool = False) -> Outcome:
    """Finish an unfinished transfer: a Superuser of either side may; here, or
    (``background``) by queueing a job for each unfinished item."""
    if background:
        from basecone_migrate.services.background import require_postgres

        require_postgres(rt)
    require_mail_settings(rt)
    now = rt.now()
    with rt.uow(read_only=True) as uow:
        s = uow.session
        user = lookup.acting_user(rt, s)
        migration = lookup.migration(s, migration_id)
        side = acting_side(user, migration, Event.RESUME, "resume", "the sending environment")
        statuses = [item_status(i, now) for i in items_of(s, migration)]
        resumable = lifecycle.sources(Event.RESUME, side)
        if any(state in resumable for state in statuses):
            check_archives(rt, migration.source_environment, migration.target_environment)
    if not any(state in resumable for state in statuses):
        if ItemStatus.OFFERED in statuses:
            raise Refused(f"migration {migration_id} has not been redeemed yet: there is no "
                          "transfer to resume")
        return Outcome(redeem_payload(rt, migration_id),
                       warnings=[f"nothing to resume: migration {migration_id} is "
                                 f"{migration_status(statuses)}"])
    if background:
        warnings = _queue_unfinished(rt, migration_id, side)  # first: the payload shows them queued
        return Outcome(redeem_payload(rt, migration_id), warnings=warnings)
    with TransferLock(rt, migration_id):
        _unpause(rt, migration_id, side)
        delivery = run_transfer(rt, migration_id, progress)
    return Outcome(redeem_payload(rt, migration_id), delivery)


def _queue_unfinished(rt: Runtime, migration_id: int, side: Actor) -> list[str]:
    """Queue a job for each item ``side`` may resume (`resume --background`); a failed one is
    set back in progress, as an inline resume does when it starts it."""
    from basecone_migrate.services.background import enqueue

    with rt.uow() as uow:
        s = uow.session
        migration = lookup.migration(s, migration_id, lock=True)
        items = [i for i in items_of(s, migration) if lifecycle.allows(i.status, Event.RESUME, side)]
        for item in items:
            change(item, Event.RESUME, side)
        queued = enqueue(s, [i.id for i in items], rt.settings.user or audit.SYSTEM, rt)
        uow.commit()
    waiting = len(items) - queued
    return [f"{waiting} of {len(items)} administrations were already waiting in the queue"] if waiting else []


def _unpause(rt: Runtime, migration_id: int, side: Actor) -> None:
    """Paused items go on (a person resumes them; a transfer takes up only what is in progress)."""
    with rt.uow() as uow:
        s = uow.session
        for item in items_of(s, lookup.migration(s, migration_id, lock=True)):
            if item.status == ItemStatus.PAUSED:
                change(item, Event.RESUME, side)
                audit.record(s, at=rt.now(), actor=rt.settings.user or audit.SYSTEM, action="resume",
                             administration_id=item.administration_id, migration_id=migration_id)
        uow.commit()
