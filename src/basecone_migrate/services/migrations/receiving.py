"""The receiver's side: redeem (take) and reject; `resuming` finishes a transfer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from basecone_migrate.clock import real_time_of
from basecone_migrate.db.lifecycle import guarded
from basecone_migrate.db.models import (
    Administration,
    Charge,
    Environment,
    Migration,
    MigrationItem,
    User,
)
from basecone_migrate.db.tables import migration_items
from basecone_migrate.domain import lifecycle, mails
from basecone_migrate.domain.lifecycle import Actor, Event, ItemStatus
from basecone_migrate.domain.rules import (
    administration_email,
)
from basecone_migrate.errors import (
    Refused,
    TransferIncomplete,
    UsageProblem,
)
from basecone_migrate.mail import Delivery, Postman
from basecone_migrate.runtime import Runtime
from basecone_migrate.services import audit
from basecone_migrate.services.locks import TransferLock
from basecone_migrate.services.lookup import admin_label
from basecone_migrate.services.migrations import search
from basecone_migrate.services.migrations.codes import find_offer, receiver, spend_code
from basecone_migrate.services.migrations.common import (
    Outcome,
    Questions,
    check_reason,
    env_label,
    item_in,
    item_status,
    items_of,
    lines,
    party,
    queue_mail,
    require_mail_settings,
)
from basecone_migrate.services.migrations.linking import Link, item_view, plan_links
from basecone_migrate.services.migrations.results import archive_size, redeem_payload
from basecone_migrate.services.transfer import NoProgress, Progress, transfer

# -- redeem -------------------------------------------------------------------------------------


@dataclass
class _Decision:
    user: User
    migration: Migration
    digest: str
    target: Environment
    plans: list[Link]
    left: list[MigrationItem]
    reason: str | None = None  # why the others are rejected (asked, or --reason)


def _decide(rt: Runtime, s: Session, code_text: str, accept_terms: bool, select_: Sequence[str],
            links: Sequence[tuple[str, str, str | None]], ask: Questions | None,
            lock: bool, link_lines: Sequence[int] | None = None,
            reason: str | None = None, take_name: bool = False) -> _Decision:
    """Every check of a redeem, in the contract's order; asks what is missing when it may,
    and nothing that the options answer: the terms unless accepted, which administrations
    only when several are offered and neither --select nor a link names them, a link only
    where no single connection has the administration's code and name."""
    now = rt.now()
    fee = rt.settings.fee
    user, migration, digest = receiver(rt, s, code_text, rejecting=False, lock=lock)
    target = user.environment
    items = items_of(s, migration)
    offered = [i for i in items if lifecycle.allows(item_status(i, now), Event.REDEEM)]
    if not accept_terms and not (ask and ask.accept_terms(str(fee), len(offered), target.code)):
        raise Refused(f"accept the terms and the costs ({fee} per administration, invoiced to "
                      f"{target.code}) with --accept-terms (read them first: "
                      "`basecone-migrate terms`)")
    if select_:
        chosen: list[MigrationItem] = []
        for reference in select_:
            item = item_in(items, reference)
            if item not in offered:
                raise Refused(f"{admin_label(item)} is {item_status(item, now)}, not offered")
            if item not in chosen:
                chosen.append(item)
    elif ask is not None and not links and len(offered) > 1:
        chosen, reason = _ask_selection(ask, offered, reason)
    else:
        chosen = offered
    if not chosen:
        raise UsageProblem("take at least one administration with --select, or use --reject")
    plans = plan_links(s, chosen, items, links, target, ask, link_lines, take_name)
    return _Decision(user, migration, digest, target, plans, [i for i in offered if i not in chosen],
                     reason)


def _ask_selection(ask: Questions, offered: list[MigrationItem],
                   reason: str | None) -> tuple[list[MigrationItem], str | None]:
    """Which administrations a person takes; what they leave is rejected (its sender is
    mailed), so that is said and confirmed, with a reason, before anything is decided. A
    person who does not confirm chooses again."""
    views = [item_view(i) for i in offered]
    while True:
        wanted = set(ask.select(views))
        chosen = [i for i in offered if i.administration_id in wanted]
        left = [view for view in views if view["administration_id"] not in wanted]
        if not chosen or not left:
            return chosen, reason
        confirmed = ask.confirm_rejection(left, reason)
        if confirmed is not None:
            return chosen, confirmed


def redeem(
    rt: Runtime,
    code_text: str,
    *,
    accept_terms: bool,
    select_: Sequence[str] = (),
    links: Sequence[tuple[str, str, str | None]] = (),
    reason: str | None = None,
    dry_run: bool = False,
    ask: Questions | None = None,
    progress: Progress | None = None,
    background: bool = False,
    link_lines: Sequence[int] | None = None,
    take_name: bool = False,
    start_after: datetime | None = None,
) -> Outcome:
    """Take what a code offers, then move the archives: here, inline, or (``background``)
    by workers, with the items left ``in_progress`` and one queued job per item (with
    ``start_after``, ``scheduled`` and their jobs due at that instant).
    ``take_name``: an administration linked to a catalogue entry of another name takes that
    name at the switch (without it, such a link is refused)."""
    check_reason(reason)
    check_start_after(start_after, background)
    if background:
        from basecone_migrate.services.background import require_postgres

        require_postgres(rt)
    require_mail_settings(rt)
    migration_id = find_offer(rt, code_text, rejecting=False)
    if ask is not None:
        # Questions first, in a read-only pass: nobody waits on a lock while a person thinks.
        with rt.uow(read_only=True) as uow:
            asked = _decide(rt, uow.session, code_text, accept_terms, select_, links, ask, lock=False,
                            reason=reason, take_name=take_name)
            accept_terms = True
            reason = asked.reason
            check_reason(reason)  # as if given with --reason
            select_ = [str(p.item.administration_id) for p in asked.plans]
            links = [(str(p.item.administration_id), p.connection.id, p.code) for p in asked.plans]
    if dry_run:
        with rt.uow(read_only=True) as uow:
            decision = _decide(rt, uow.session, code_text, accept_terms, select_, links, None, lock=False,
                               link_lines=link_lines, take_name=take_name)
            return Outcome(_dry_run(uow.session, decision, rt, start_after))
    # Held from before the checks until the transfer ends: a concurrent redeem of the same
    # code, or a resume, is refused instead of racing (the guarded UPDATEs still decide).
    # (In the background the items' locks are the workers' to take: the jobs are visible the
    # moment the redeem commits.)
    with TransferLock(rt, migration_id, items=not background):
        outcome = _take(rt, code_text, accept_terms, select_, links, reason, background, link_lines,
                        take_name, start_after)
        if not background:
            outcome.delivery.merge(run_transfer(rt, migration_id, progress))
    outcome.payload = redeem_payload(rt, migration_id)
    return outcome


def check_start_after(start_after: datetime | None, background: bool) -> None:
    """A start at an instant is for the workers: inline, nobody would wait for it."""
    if start_after is not None and not background:
        raise UsageProblem("--start-after is for background transfers: add --background (workers "
                           "start the transfer at that instant)")


def _dry_run(s: Session, decision: _Decision, rt: Runtime,
             start_after: datetime | None = None) -> dict[str, Any]:
    """What the redeem would do; with ``start_after``, each taken item's ``scheduled_for``."""
    target = decision.target
    rows = [{"administration_id": p.item.administration_id, "administration": p.name,
             "renamed_from": p.item.name if p.name != p.item.name else None,
             "status": ItemStatus.OFFERED.value, "action": "take",
             **({"scheduled_for": start_after} if start_after else {}), "accounting_system": p.connection.id,
             "code": p.code, "email": administration_email(target.code, p.code),
             **dict(zip(("documents", "bytes"), archive_size(s, p.item.administration_id), strict=True))}
            for p in decision.plans]
    rows += [{"administration_id": i.administration_id, "administration": i.name, "renamed_from": None,
              "status": ItemStatus.OFFERED.value, "action": "reject",
              "accounting_system": i.source_accounting_system_id, "code": i.source_code,
              "email": i.source_email,
              **dict(zip(("documents", "bytes"), archive_size(s, i.administration_id), strict=True))}
             for i in decision.left]
    return {"dry_run": True, "migration_id": decision.migration.id, "status": ItemStatus.OFFERED.value,
            "fee": str(rt.settings.fee), "items": rows}


def _take(rt: Runtime, code_text: str, accept_terms: bool, select_: Sequence[str],
          links: Sequence[tuple[str, str, str | None]], reason: str | None,
          background: bool = False, link_lines: Sequence[int] | None = None,
          take_name: bool = False, start_after: datetime | None = None) -> Outcome:
    now = rt.now()
    fee = rt.settings.fee
    with rt.uow() as uow:
        s = uow.session
        d = _decide(rt, s, code_text, accept_terms, select_, links, None, lock=True, link_lines=link_lines,
                    take_name=take_name)
        check_archives(rt, d.migration.source_environment, d.target)
        # The administrations' rows are held too: no document joins an archive that is about
        # to move (archive add and load take the same lock).
        s.execute(select(Administration.id).where(
            Administration.id.in_([p.item.administration_id for p in d.plans])).with_for_update())
        spend_code(s, d.digest, now)
        migration = d.migration
        migration.redeemed_at = now
        migration.redeemed_by_id = d.user.id
        migration.target_environment_id = d.target.id
        for plan in d.plans:
            documents, size = archive_size(s, plan.item.administration_id)
            event = Event.REDEEM if start_after is None else Event.SCHEDULE
            taken = s.execute(guarded(event, Actor.RECEIVER, migration_items.c.id == plan.item.id)
                .values(phase="copying", scheduled_for=start_after,
                        target_accounting_system_id=plan.connection.id, target_code=plan.code,
                        target_email=administration_email(d.target.code, plan.code),
                        target_name=plan.name if plan.name != plan.item.name else None,
                        documents_total=documents, bytes_total=size)).rowcount
            if taken != 1:
                raise Refused(f"{admin_label(plan.item)} was revoked a moment ago")
            s.add(Charge(environment_id=d.target.id, item_id=plan.item.id, currency=fee.currency,
                         amount_cents=fee.cents, created_at=now))
            audit.record(s, at=now, actor=d.user.email, action="redeem",
                         administration_id=plan.item.administration_id, migration_id=migration.id,
                         environment=d.target.code, accounting_system=plan.connection.id,
                         code=plan.code, fee=str(fee),
                         **({"name": plan.name} if plan.name != plan.item.name else {}))
        search.refresh(s, migration.id)  # a receiver and connections to find them by
        mail_ids = [queue_mail(rt, s, mails.started(
            migration_id=migration.id, sender=party(migration.created_by), receiver=party(d.user),
            target=env_label(d.target), admins=lines([p.item for p in d.plans])), migration.id)]
        if d.left:
            mail_ids.append(_reject_left(rt, s, d.user, migration, d.left, reason or "not selected", now))
        if background:  # in this transaction: no job without the change, no change without its jobs
            from basecone_migrate.services.background import enqueue

            enqueue(s, [p.item.id for p in d.plans], d.user.email, rt,
                    schedule_at=real_time_of(start_after, rt.settings.fixed_now) if start_after else None)
        uow.commit()
    return Outcome({}, Postman(rt).deliver(mail_ids))


def check_archives(rt: Runtime, source: Environment, target: Environment | None) -> None:
    """The archives a transfer will use can be opened as configured (a driver, an endpoint,
    credentials: else 2), are this database's (else 1), and are two places: two names of
    one folder or bucket, or one inside the other, would have the move remove what it
    moved (1). Refused before the command changes anything."""
    archive = rt.archive(source, claim=False)  # checked first: a refusal writes nothing
    other = rt.archive(target, claim=False) if target is not None else None
    if other is not None and archive.overlaps(other):
        how = "are one place" if archive.same_place(other) else "are one inside the other"
        raise Refused(f"the archives of {source.code} ({archive.url}) and {target.code} "  # type: ignore[union-attr]
                      f"({other.url}) {how}: a move between them could remove what it moved; "
                      "give each environment a storage of its own in the world file")
    for environment in (source, target):
        if environment is not None:
            rt.archive(environment)  # marked as this database's


def run_transfer(rt: Runtime, migration_id: int, progress: Progress | None) -> Delivery:
    try:
        return transfer(rt, migration_id, rt.settings.user or audit.SYSTEM, progress or NoProgress())
    except TransferIncomplete as incomplete:
        raise TransferIncomplete(incomplete.message, payload=redeem_payload(rt, migration_id)) from None


def _reject_left(rt: Runtime, s: Session, user: User, migration: Migration,
                 items: Sequence[MigrationItem], reason: str | None, now: datetime) -> int:
    ids = [i.id for i in items]
    changed = s.execute(guarded(Event.REJECT, Actor.RECEIVER, migration_items.c.id.in_(ids))
                        .values(finished_at=now)).rowcount
    if changed != len(ids):
        raise Refused("the offer changed a moment ago (revoked?): see `basecone-migrate status`")
    for item in items:
        audit.record(s, at=now, actor=user.email, action="reject", administration_id=item.administration_id,
                     migration_id=migration.id, reason=reason)
    return queue_mail(rt, s, mails.reject(
        migration_id=migration.id, sender=party(migration.created_by), receiver=party(user),
        target=env_label(user.environment), admins=lines(items), reason=reason), migration.id)


def reject(rt: Runtime, code_text: str, *, reason: str | None, dry_run: bool = False) -> Outcome:
    check_reason(reason)
    require_mail_settings(rt)
    now = rt.now()
    migration_id = find_offer(rt, code_text, rejecting=True)
    with rt.uow(read_only=dry_run) as uow:
        s = uow.session
        user, migration, digest = receiver(rt, s, code_text, rejecting=True, lock=not dry_run)
        offered = [i for i in items_of(s, migration) if lifecycle.allows(item_status(i, now), Event.REJECT)]
        if dry_run:
            return Outcome({"dry_run": True, "migration_id": migration_id, "status": ItemStatus.OFFERED.value,
                            "items": [{**item_view(i), "action": "reject"} for i in offered]})
        spend_code(s, digest, now)
        migration.redeemed_at = now
        migration.redeemed_by_id = user.id
        migration.target_environment_id = user.environment_id
        migration.reject_reason = reason or ""
        search.refresh(s, migration.id)
        mail_id = _reject_left(rt, s, user, migration, offered, reason, now)
        uow.commit()
    return Outcome(redeem_payload(rt, migration_id), Postman(rt).deliver([mail_id]))
