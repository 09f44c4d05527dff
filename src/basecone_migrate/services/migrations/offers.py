"""The sender's side: offer, revoke, resend; and expire, for cron."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from basecone_migrate.db.lifecycle import guarded
from basecone_migrate.db.models import (
    Environment,
    Migration,
    MigrationItem,
    Recipient,
    Transfercode,
    User,
)
from basecone_migrate.db.tables import migration_items
from basecone_migrate.domain import lifecycle, mails, transfercode
from basecone_migrate.domain.addresses import normalise_address
from basecone_migrate.domain.lifecycle import Actor, Event, ItemStatus
from basecone_migrate.errors import Refused, UsageProblem
from basecone_migrate.mail import Delivery, Postman
from basecone_migrate.runtime import Runtime
from basecone_migrate.services import audit, lookup
from basecone_migrate.services.migrations import search
from basecone_migrate.services.migrations.common import (
    EXPIRE_BATCH,
    Outcome,
    Questions,
    env_label,
    expire_items,
    item_in,
    item_status,
    items_of,
    lines,
    migration_status,
    party,
    queue_mail,
    recipients_of,
    require_mail_settings,
    sender_groups,
    stale_items,
)
from basecone_migrate.services.migrations.offer_checks import check_offer


def _addresses(recipients: Sequence[str]) -> list[str]:
    addresses: list[str] = []
    for recipient in recipients:
        try:
            address = normalise_address(recipient)
        except ValueError as exc:
            raise UsageProblem(f"--to {exc}") from None
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UsageProblem("give at least one --to EMAIL: a Superuser of the receiving environment")
    return addresses


def _offer_payload(migration: Migration, items: Sequence[MigrationItem], recipients: list[str],
                   code: str | None, status: str, target: str | None) -> dict[str, Any]:
    return {
        "migration_id": migration.id,
        "transfercode": code,
        "expires_at": migration.expires_at,
        "recipients": recipients,
        "administrations": [{"id": i.administration_id, "code": i.source_code, "name": i.name,
                             "email": i.source_email} for i in items],
        "status": status,
        "target_environment": target,
    }


def _new_code(session: Session, migration: Migration, now: datetime) -> str:
    code = transfercode.generate()
    migration.expires_at = now + transfercode.VALIDITY
    migration.code_hint = transfercode.hint(code)
    session.add(Transfercode(code_sha256=transfercode.digest(code), migration_id=migration.id,
                             issued_at=now, expires_at=migration.expires_at))
    return code


# -- offer ----------------------------------------------------------------------------------


def offer(
    rt: Runtime,
    references: Sequence[str],
    recipients: Sequence[str],
    *,
    accept_terms: bool,
    confirm_checklist: bool,
    dry_run: bool = False,
    ask: Questions | None = None,
    allow_unknown: bool = False,
    to_env: str | None = None,
) -> Outcome:
    """Offer administrations to the Superusers of one premium environment (``to_env``, or
    that of the recipients); ``allow_unknown`` lets the code go to addresses that are no
    user yet (then ``to_env`` is needed when none of them is known)."""
    addresses = _addresses(recipients)
    require_mail_settings(rt)
    if ask is not None and not (accept_terms and confirm_checklist):
        with rt.uow(read_only=True) as uow:  # questions never wait inside a writing transaction
            look = check_offer(rt, uow.session, references, addresses, None, None, allow_unknown, to_env)
        if not accept_terms:
            accept_terms = ask.accept_terms(str(rt.settings.fee), len(look.admins), "the receiver")
        if look.findings and not confirm_checklist:
            confirm_checklist = ask.confirm_checklist(look.findings)
    now = rt.now()
    with rt.uow(read_only=dry_run) as uow:
        s = uow.session
        checked = check_offer(rt, s, references, addresses, accept_terms, confirm_checklist,
                               allow_unknown, to_env)
        user, admins, source, findings = checked.user, checked.admins, checked.source, checked.findings
        target = checked.target
        expires = now + transfercode.VALIDITY
        if dry_run:
            return Outcome({
                "dry_run": True, "migration_id": None, "transfercode": None, "expires_at": expires,
                "recipients": addresses,
                "administrations": [{"id": a.id, "code": a.code, "name": a.name, "email": a.email}
                                    for a in admins],
                "status": ItemStatus.OFFERED.value,
                "target_environment": target.code,
            }, warnings=checked.warnings)

        # An earlier offer of these administrations, past its expiry but not yet expired by
        # cron, blocks nothing: expire it now (its sender is told, as cron would).
        _, mail_ids = expire_items(rt, s, now, actor=audit.SYSTEM,
                                   administration_ids=[a.id for a in admins])
        migration = Migration(source_environment_id=source.id, created_by_id=user.id, created_at=now,
                              expires_at=expires, code_hint="", checklist_confirmed=bool(findings),
                              offered_to_environment_id=target.id)
        s.add(migration)
        s.flush()
        code = _new_code(s, migration, now)
        s.add_all(Recipient(migration_id=migration.id, email=a) for a in addresses)
        items = [MigrationItem(
            migration_id=migration.id, administration_id=a.id, status=lifecycle.INITIAL.value, name=a.name,
            source_code=a.code, source_accounting_system_id=a.accounting_system_id,
            package=a.accounting_system.package, source_email=a.email) for a in admins]
        s.add_all(items)
        try:
            s.flush()
        except IntegrityError:
            raise Refused("one of these administrations was offered by someone else a moment ago: "
                          "see `basecone-migrate list`") from None
        search.refresh(s, migration.id)
        for item in items:
            audit.record(s, at=now, actor=user.email, action="offer",
                         administration_id=item.administration_id, migration_id=migration.id,
                         recipients=addresses, checklist_confirmed=bool(findings),
                         target_environment=target.code)
        mail_ids.append(queue_mail(rt, s, mails.offer(
            migration_id=migration.id, code=code, expires_at=migration.expires_at, sender=party(user),
            source=env_label(source), recipients=addresses, admins=lines(items),
            fee=str(rt.settings.fee), target=env_label(target)), migration.id))
        uow.commit()
        payload = _offer_payload(migration, items, addresses, code, ItemStatus.OFFERED.value, target.code)
    return Outcome(payload, Postman(rt).deliver(mail_ids), checked.warnings)


# -- revoke and resend ----------------------------------------------------------------------


def _sender_side(rt: Runtime, s: Session, migration_id: int, to_do: str) -> tuple[User, Migration]:
    user = lookup.acting_user(rt, s)
    migration = lookup.migration(s, migration_id, lock=True)
    lookup.require_superuser(user, migration.source_environment, to_do)
    return user, migration


def revoke(rt: Runtime, migration_id: int, admin_reference: str | None = None) -> Outcome:
    require_mail_settings(rt)
    now = rt.now()
    with rt.uow() as uow:
        s = uow.session
        user, migration = _sender_side(rt, s, migration_id, "revoke its offers")
        items = items_of(s, migration)
        chosen = [item_in(items, admin_reference)] if admin_reference else items
        revocable = [i for i in chosen if lifecycle.allows(item_status(i, now), Event.REVOKE)]
        if not revocable:
            states = ", ".join(sorted({item_status(i, now) for i in chosen}))
            raise Refused(f"nothing to revoke in migration {migration.id}: only offered "
                          f"administrations can be revoked, these are {states}")
        ids = [i.id for i in revocable]
        changed = s.execute(guarded(Event.REVOKE, Actor.SENDER, migration_items.c.id.in_(ids))
                            .values(finished_at=now)).rowcount
        if changed != len(ids):
            raise Refused(f"migration {migration.id} changed a moment ago (redeemed or revoked): "
                          "see `basecone-migrate status`")
        for item in revocable:
            audit.record(s, at=now, actor=user.email, action="revoke",
                         administration_id=item.administration_id, migration_id=migration.id)
        mail_id = queue_mail(rt, s, mails.revoke(
            migration_id=migration.id, sender=party(user), source=env_label(migration.source_environment),
            recipients=recipients_of(s, migration), admins=lines(revocable)), migration.id)
        uow.commit()
        payload = {
            "migration_id": migration.id,
            "revoked": [{"id": i.administration_id, "code": i.source_code, "name": i.name}
                        for i in revocable],
            "status": migration_status([item_status(i, now) for i in items_of(s, migration)]),
        }
    return Outcome(payload, Postman(rt).deliver([mail_id]))


def resend(rt: Runtime, migration_id: int) -> Outcome:
    """A new code, mailed again; the old one stops working. An offer that expired before
    anyone redeemed it is offered again (what a receiver who found the code expired asks for)."""
    require_mail_settings(rt)
    now = rt.now()
    with rt.uow() as uow:
        s = uow.session
        user, migration = _sender_side(rt, s, migration_id, "resend its offers")
        everything = items_of(s, migration)
        # Still offered (a new code and expiry) or expired (offered again).
        again = ([i for i in everything if i.status == ItemStatus.OFFERED
                  or lifecycle.allows(i.status, Event.RESEND)] if migration.redeemed_at is None else [])
        if not again:
            states = ", ".join(sorted({item_status(i, now) for i in everything}))
            raise Refused(f"migration {migration.id} has nothing on offer any more ({states}): "
                          "make a new offer instead")
        expired = [i.id for i in again if lifecycle.allows(i.status, Event.RESEND)]
        if expired:
            try:
                s.execute(guarded(Event.RESEND, Actor.SENDER, migration_items.c.id.in_(expired))
                          .values(finished_at=None))
            except IntegrityError:
                raise Refused("an administration of this expired offer is in another migration now: "
                              "make a new offer for the others") from None
        s.execute(update(Transfercode).where(Transfercode.migration_id == migration.id,
                                             Transfercode.replaced_at.is_(None),
                                             Transfercode.spent_at.is_(None))
                  .values(replaced_at=now))
        code = _new_code(s, migration, now)
        search.refresh(s, migration.id)  # a new expiry and code hint
        recipients = recipients_of(s, migration)
        target = (s.get(Environment, migration.offered_to_environment_id)  # kept: one offer, one target
                  if migration.offered_to_environment_id is not None else None)
        for item in again:
            audit.record(s, at=now, actor=user.email, action="resend",
                         administration_id=item.administration_id, migration_id=migration.id,
                         renewed=item.id in expired)
        mail_id = queue_mail(rt, s, mails.offer(
            migration_id=migration.id, code=code, expires_at=migration.expires_at, sender=party(user),
            source=env_label(migration.source_environment), recipients=recipients,
            admins=lines(again), fee=str(rt.settings.fee), resent=True,
            target=env_label(target) if target is not None else None), migration.id)
        uow.commit()
        payload = _offer_payload(migration, again, recipients, code, ItemStatus.OFFERED.value,
                                 target.code if target is not None else None)
    return Outcome(payload, Postman(rt).deliver([mail_id]))


def expire(rt: Runtime) -> Outcome:
    """Mark every offer past its expiry as expired; safe to run at any time, and at once.

    One streamed read of the stale offers, by sender; a few senders at a time (about
    EXPIRE_BATCH items) are expired by id in a transaction of their own, with their audit
    rows and mails, so memory and SQLite's write lock stay short whatever the count; each
    sender gets one mail. Two runs at once mark each item once: the UPDATE takes only rows
    still offered.
    """
    require_mail_settings(rt)
    now = rt.now()
    count, delivery = 0, Delivery()
    with rt.reading() as reading:
        rows = reading.execution_options(yield_per=EXPIRE_BATCH).execute(stale_items(now))
        for group in sender_groups(rows):
            with rt.uow() as uow:
                expired, mail_ids = expire_items(rt, uow.session, now, actor=audit.CRON,
                                                 item_ids=group)
                uow.commit()
            count += expired
            delivery.merge(Postman(rt).deliver(mail_ids))
    return Outcome({"expired": count}, delivery)
