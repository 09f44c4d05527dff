"""cancel and undo: a Superuser takes a move back (`returning` brings the administrations
home). Both check everything first and change nothing when refused; then, in one
transaction, the items take their new status (which stops a transfer running elsewhere at
its next document), the fee is credited and the audit written; then the return runs under
the migration's transfer lock, and both sides are mailed once it is done."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from basecone_migrate.db.lifecycle import guarded
from basecone_migrate.db.models import AccountingSystem, Administration, Charge, MigrationItem
from basecone_migrate.db.tables import OPEN_STATUSES, migration_items
from basecone_migrate.domain import lifecycle
from basecone_migrate.domain.lifecycle import Actor, Event, ItemStatus
from basecone_migrate.domain.rules import SUPERUSER, within_undo_window
from basecone_migrate.errors import NotAllowed, Refused, TransferIncomplete
from basecone_migrate.runtime import Runtime
from basecone_migrate.services import audit, lookup
from basecone_migrate.services.locks import TransferLock
from basecone_migrate.services.migrations.common import (
    Outcome,
    acting_side,
    item_in,
    items_of,
    require_mail_settings,
)
from basecone_migrate.services.migrations.returning import return_items
from basecone_migrate.services.transfer.progress import Progress

#: How long `cancel` and `undo` wait for a running transfer to stop at its next document.
STOP_WAIT_SECONDS = 60.0


def cancel(rt: Runtime, migration_id: int, admins: Sequence[str] = (), reason: str | None = None,
           progress: Progress | None = None) -> Outcome:
    """Stop the items that have not completed and bring their administrations back (their
    documents reported to ``progress`` as they go)."""
    require_mail_settings(rt)
    with rt.uow() as uow:
        s = uow.session
        user = lookup.acting_user(rt, s)
        migration = lookup.migration(s, migration_id, lock=True)
        side = acting_side(user, migration, Event.CANCEL, "cancel", "the sending environment")
        chosen = _chosen(items_of(s, migration), admins)
        pending = [i for i in chosen if _unreturned(i, ItemStatus.CANCELLED)]
        taken = [i for i in chosen if lifecycle.allows(i.status, Event.CANCEL, side)]
        # Named administrations must each be cancellable; the whole migration cancels what is.
        refused = [i for i in chosen if i not in taken and i not in pending] if admins else []
        if refused or not (taken or pending):
            raise Refused(_why_not_cancelled(migration_id, refused or chosen))
        _take(rt, s, Event.CANCEL, side, taken, user.email, reason)
        uow.commit()
        ids, actor = [i.id for i in taken + pending], user.email
    mail_ids = _bring_back(rt, migration_id, ids, "cancel", actor, reason, progress)
    return _outcome(rt, migration_id, ids, mail_ids)


def pause(rt: Runtime, migration_id: int) -> Outcome:
    """Pause the scheduled and in-progress items: running transfers stop at their next
    document (this waits for them), no worker starts them until `resume`."""
    with rt.uow() as uow:
        s = uow.session
        user = lookup.acting_user(rt, s)
        migration = lookup.migration(s, migration_id, lock=True)
        side = acting_side(user, migration, Event.PAUSE, "pause", "the receiver")
        items = items_of(s, migration)
        taken = [i for i in items if lifecycle.allows(i.status, Event.PAUSE, side)]
        if not taken:
            statuses = ", ".join(sorted({i.status for i in items}))
            raise Refused(f"nothing to pause in migration {migration_id}: its administrations are "
                          f"{statuses} (only scheduled and in-progress transfers pause)")
        _take(rt, s, Event.PAUSE, side, taken, user.email, None, credit=False)
        uow.commit()
        ids = [i.id for i in taken]
    _wait_until_stopped(rt, migration_id, "pause").release()
    return _outcome(rt, migration_id, ids, [])


def undo(rt: Runtime, migration_id: int, admins: Sequence[str] = (), reason: str | None = None,
         dry_run: bool = False, background: bool = False, progress: Progress | None = None) -> Outcome:
    """Within the grace window, bring completed items back to the sending environment: here
    (their documents reported to ``progress``), or (``background``, PostgreSQL) by the workers."""
    if background:
        from basecone_migrate.services.background import require_postgres

        require_postgres(rt)
    days = rt.settings.undo_days
    if not dry_run:
        require_mail_settings(rt)
    now = rt.now()
    with rt.uow() as uow:
        s = uow.session
        user = lookup.acting_user(rt, s)
        migration = lookup.migration(s, migration_id, lock=not dry_run)
        items = items_of(s, migration)
        try:
            side: Actor | None = acting_side(user, migration, Event.UNDO, "undo",
                                             "the environment that holds it")
            forbidden = None
        except NotAllowed as refusal:
            # A Superuser of where the administrations are now (not the receiver's: they
            # moved on, or never left) is told why they cannot be undone (1), not that they
            # may not (4); the rest are not the holder's.
            if not _holds_one(s, user, items):
                raise
            side, forbidden = None, refusal
        if days == 0:
            raise Refused("undo is turned off here (BASECONE_MIGRATE_UNDO_DAYS=0)")
        chosen = _chosen(items, admins)
        pending = [i for i in chosen if _unreturned(i, ItemStatus.UNDONE)]
        candidates = [i for i in chosen if i.status == ItemStatus.COMPLETED]
        if not admins and (candidates or pending):
            chosen = candidates + pending  # the whole migration: what can be undone
        problems = [problem for item in chosen if item not in pending
                    for problem in [_why_not_undone(s, item, migration, days, now)] if problem]
        if problems or not chosen:
            raise Refused(f"migration {migration_id} cannot be undone: " + (
                "; ".join(problems) if problems else "it has no administration to undo"))
        if forbidden is not None:
            raise forbidden
        assert side is not None
        if dry_run:
            return Outcome({"migration_id": migration_id, "dry_run": True, "items": [
                {"administration_id": i.administration_id, "status": "would be undone"} for i in chosen]})
        taken = [i for i in chosen if i not in pending]
        _take(rt, s, Event.UNDO, side, taken, user.email, reason)
        ids, actor = [i.id for i in chosen], user.email
        if background:  # in this transaction: no job without the change, no change without its job
            from basecone_migrate.services.background import enqueue_returns

            enqueue_returns(s, ids, actor, rt, "undo", reason)
        uow.commit()
    if background:
        return _outcome(rt, migration_id, ids, [])
    mail_ids = _bring_back(rt, migration_id, ids, "undo", actor, reason, progress)
    return _outcome(rt, migration_id, ids, mail_ids)


# -- the steps --------------------------------------------------------------------------------


def _holds_one(s: Any, user: Any, items: list[MigrationItem]) -> bool:
    """Whether ``user`` is a Superuser of an environment that holds one of the items'
    administrations now."""
    if user.role != SUPERUSER or user.environment_id is None or not items:
        return False
    return s.scalar(select(Administration.id).where(
        Administration.id.in_([i.administration_id for i in items]),
        Administration.environment_id == user.environment_id).limit(1)) is not None


def _chosen(items: list[MigrationItem], admins: Sequence[str]) -> list[MigrationItem]:
    if not admins:
        return items
    chosen: list[MigrationItem] = []
    for reference in admins:
        item = item_in(items, reference)
        if item not in chosen:
            chosen.append(item)
    return chosen


def _unreturned(item: MigrationItem, status: ItemStatus) -> bool:
    return item.status == status and item.returned_at is None


def _why_not_cancelled(migration_id: int, items: list[MigrationItem]) -> str:
    reasons = []
    for item in items:
        label = lookup.admin_label(item)
        if item.status == ItemStatus.COMPLETED:
            reasons.append(f"{label} is completed: undo it with `basecone-migrate undo {migration_id}`")
        elif item.status == ItemStatus.OFFERED:
            reasons.append(f"{label} is offered, not redeemed: the sender revokes it "
                           f"(`basecone-migrate revoke {migration_id}`)")
        else:
            reasons.append(f"{label} is {item.status}")
    return f"nothing to cancel in migration {migration_id}: " + "; ".join(reasons)


def _why_not_undone(s: Any, item: MigrationItem, migration: Any, days: int, now: Any) -> str | None:
    """The first reason (rules.md: the grace window, rule 18) the item cannot be undone."""
    label = lookup.admin_label(item)
    if item.status != ItemStatus.COMPLETED:
        hint = f" (cancel it: `basecone-migrate cancel {migration.id}`)" if item.status in lifecycle.UNFINISHED else ""
        return f"{label} is {item.status}, not completed{hint}"
    if not within_undo_window(item.finished_at, days, now):
        return (f"{label} completed on {item.finished_at:%Y-%m-%d}, more than {days} days ago "
                "(BASECONE_MIGRATE_UNDO_DAYS)")
    other = s.scalar(select(MigrationItem.migration_id).where(
        MigrationItem.administration_id == item.administration_id, MigrationItem.id != item.id,
        MigrationItem.status.in_(OPEN_STATUSES)))
    if other is not None:
        return f"{label} is in migration {other} now"
    admin = s.get(Administration, item.administration_id)
    if admin is None or admin.environment_id != migration.target_environment_id:
        return f"{label} is no longer held by {migration.target_environment.code}"
    if s.get(AccountingSystem, item.source_accounting_system_id) is None:
        return f"{label}: its old connection {item.source_accounting_system_id} is gone"
    taken = s.scalar(select(Administration).where(
        Administration.accounting_system_id == item.source_accounting_system_id,
        Administration.code == item.source_code, Administration.id != item.administration_id))
    if taken is not None:
        return (f"{label}: its old code {item.source_code} in {item.source_accounting_system_id} is "
                f"now taken by {taken.name} (id {taken.id})")
    return None


def _take(rt: Runtime, s: Any, event: Event, side: Actor, items: list[MigrationItem], actor: str,
          reason: str | None, credit: bool = True) -> None:
    """The items' new status in one guarded UPDATE (of two commands at once, one takes each
    item), the fee credited, an audit row each."""
    if not items:
        return
    now = rt.now()
    ids = [i.id for i in items]
    before = {i.id: i.status for i in items}
    changed = s.execute(guarded(event, side, migration_items.c.id.in_(ids))  # a failed
                        .values(returned_at=None, error=None)).rowcount       # one's advice goes
    if changed != len(ids):
        raise Refused("another command changed these administrations a moment ago: look at "
                      f"`basecone-migrate status {items[0].migration_id}` and try again")
    scheduled = [i.id for i in items if before[i.id] == ItemStatus.SCHEDULED]
    if scheduled:  # their jobs wait for an instant: gone, so that a resume starts afresh
        from basecone_migrate.services.background import drop_waiting

        drop_waiting(s, scheduled)
    fees = {c.item_id: c for c in s.scalars(select(Charge).where(Charge.item_id.in_(ids)))
            if c.kind == "fee"}
    credited = set(s.scalars(select(Charge.item_id).where(Charge.item_id.in_(ids), Charge.kind == "credit")))
    for item in items:
        fee = fees.get(item.id)
        if credit and fee is not None and item.id not in credited:
            s.add(Charge(environment_id=fee.environment_id, item_id=item.id, currency=fee.currency,
                         amount_cents=-fee.amount_cents, created_at=now, kind="credit"))
        audit.record(s, at=now, actor=actor, action=event.value, administration_id=item.administration_id,
                     migration_id=item.migration_id, status=before[item.id],
                     **({"reason": reason} if reason else {}))
    s.flush()


def _bring_back(rt: Runtime, migration_id: int, ids: list[int], event: str, actor: str,
                reason: str | None, progress: Progress | None) -> list[int]:
    """Wait for a running transfer to stop at its next document, then bring the items back."""
    lock = _wait_until_stopped(rt, migration_id, event)
    try:
        return return_items(rt, migration_id, ids, event=event, actor=actor, reason=reason,
                            progress=progress)
    finally:
        lock.release()


def _wait_until_stopped(rt: Runtime, migration_id: int, event: str) -> TransferLock:
    """The migration's transfer lock, once a transfer running elsewhere has stopped at its
    next document (exit 5 when it does not within STOP_WAIT_SECONDS)."""
    lock = TransferLock(rt, migration_id)
    deadline = time.monotonic() + STOP_WAIT_SECONDS
    while not lock.try_acquire():
        if time.monotonic() > deadline:
            done = {"cancel": "cancelled", "undo": "undone", "pause": "paused"}[event]
            raise TransferIncomplete(
                f"the administrations are {done}, but a process still holds migration "
                f"{migration_id}: run `basecone-migrate {event} {migration_id}` again once it has stopped")
        time.sleep(0.2)
    return lock


def _outcome(rt: Runtime, migration_id: int, ids: list[int], mail_ids: list[int]) -> Outcome:
    from basecone_migrate.mail import Postman

    delivery = Postman(rt).deliver(mail_ids)
    with rt.reading() as db:
        rows = db.execute(select(migration_items.c.administration_id, migration_items.c.status)
                          .where(migration_items.c.id.in_(ids)).order_by(migration_items.c.id)).all()
    return Outcome({"migration_id": migration_id,
                    "items": [{"administration_id": a, "status": st} for a, st in rows]}, delivery)
