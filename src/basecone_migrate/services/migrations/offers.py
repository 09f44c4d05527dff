"""The sender's side: offer, revoke, resend; and expire, for cron."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from basecone_migrate.batches import Row, summary
from basecone_migrate.db.lifecycle import guarded
from basecone_migrate.db.models import (
    Administration,
    Environment,
    Migration,
    MigrationItem,
    Recipient,
    Transfercode,
    User,
    Workflow,
    WorkflowAuthoriser,
)
from basecone_migrate.db.tables import migration_items
from basecone_migrate.domain import lifecycle, mails, transfercode
from basecone_migrate.domain.addresses import normalise_address
from basecone_migrate.domain.lifecycle import Actor, Event, ItemStatus
from basecone_migrate.domain.rules import (
    MIGRATABLE_PACKAGES,
    OFFER_WARNING_SIZE,
    can_receive,
    is_migratable,
    is_superuser,
    offer_is_large,
    package_label,
)
from basecone_migrate.errors import Refused, UsageProblem
from basecone_migrate.mail import Delivery, Postman
from basecone_migrate.runtime import Runtime
from basecone_migrate.services import audit, lookup
from basecone_migrate.services.lookup import admin_label
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
    open_item,
    party,
    queue_mail,
    recipients_of,
    require_mail_settings,
    sender_groups,
    stale_items,
)

#: Rule 5: more than this many in one offer is allowed, with a warning.


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


@dataclass
class _Offer:
    user: User
    admins: list[Administration]
    source: Environment
    target: Environment
    findings: list[str]
    warnings: list[str]


def _check_offer(rt: Runtime, s: Session, references: Sequence[str], addresses: list[str],
                 accept_terms: bool | None, confirm_checklist: bool | None,
                 allow_unknown: bool = False, to_env: str | None = None) -> _Offer:
    """Every check of an offer, in the contract's order. ``None`` for the terms or the
    checklist means "not asked yet" (the read-only pass before questions)."""
    now = rt.now()
    user = lookup.acting_user(rt, s)
    admins: list[Administration] = []
    for reference in references:
        admin = lookup.administration(s, reference, user.environment)
        if admin not in admins:
            admins.append(admin)
    offices = sorted({a.environment.code for a in admins})
    if len(offices) > 1:
        raise Refused("one offer moves administrations of one environment; these are in "
                      f"{', '.join(offices)}: make one offer per environment")
    source = admins[0].environment
    lookup.require_superuser(user, source, "offer its administrations")
    if accept_terms is False:
        raise Refused("accept the terms of the migration with --accept-terms (read them first: "
                      "`basecone-migrate terms`)")
    for admin in admins:
        _check_migratable(admin)
    for admin in admins:
        _check_free(s, admin, now)
    findings = _authoriser_findings(s, admins)
    if findings and confirm_checklist is False:
        raise Refused(
            "authorisers are not transferred and must not be part of an authorisation "
            f"workflow of a moved administration, but: {'; '.join(findings)}. Remove them "
            "from the workflows, or confirm the checklist with --confirm-checklist")
    target, warnings = _check_recipients(s, addresses, source, allow_unknown, to_env)
    if offer_is_large(len(admins)):
        warnings.append(f"{len(admins)} administrations in one offer: the help centre advises at "
                        f"most {OFFER_WARNING_SIZE} per offer")
    return _Offer(user, admins, source, target, findings, warnings)


def _check_migratable(admin: Administration) -> None:
    package = admin.accounting_system.package
    if not is_migratable(package):
        raise Refused(
            f"administration {admin_label(admin)} is linked to {package_label(package)}, "
            "which cannot move between environments (only "
            f"{', '.join(MIGRATABLE_PACKAGES.values())})")


def _check_free(s: Session, admin: Administration, now: datetime) -> None:
    busy = open_item(s, admin.id, now)
    if busy is not None:
        raise Refused(f"administration {admin_label(admin)} is already in migration "
                      f"{busy.migration_id} ({busy.status}): revoke that offer first")


def check_offer_rows(rt: Runtime, rows: Sequence[Row]) -> list[str]:
    """`offer --from FILE`: each row (an administration) checked on its own, every refused
    row named; the references to offer when none is refused."""
    from basecone_migrate.errors import BaseconeError

    now = rt.now()
    report: list[dict[str, Any]] = []
    with rt.uow(read_only=True) as uow:
        s = uow.session
        user = lookup.acting_user(rt, s)
        for row in rows:
            entry: dict[str, Any] = {"line": row.line, "admin": row["admin"]}
            try:
                admin = lookup.administration(s, row["admin"] or "", user.environment)
                entry.update(administration_id=admin.id, code=admin.code, name=admin.name)
                _check_migratable(admin)
                _check_free(s, admin, now)
                entry.update(status="ok", error=None)
            except BaseconeError as exc:
                entry.update(status="refused", error=exc.message)
            report.append(entry)
    refused = [e for e in report if e["status"] == "refused"]
    if refused:
        named = summary([f"line {e['line']}: {e['error']}" for e in refused])
        raise Refused(f"{len(refused)} of {len(report)} rows refused, so nothing changed: {named}",
                      payload={"rows": report, "refused": len(refused)})
    return [row["admin"] or "" for row in rows]


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
            look = _check_offer(rt, uow.session, references, addresses, None, None, allow_unknown, to_env)
        if not accept_terms:
            accept_terms = ask.accept_terms(str(rt.settings.fee), len(look.admins), "the receiver")
        if look.findings and not confirm_checklist:
            confirm_checklist = ask.confirm_checklist(look.findings)
    now = rt.now()
    with rt.uow(read_only=dry_run) as uow:
        s = uow.session
        checked = _check_offer(rt, s, references, addresses, accept_terms, confirm_checklist,
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


def _authoriser_findings(s: Session, admins: Sequence[Administration]) -> list[str]:
    findings = []
    for admin in admins:
        rows = s.execute(
            select(Workflow.name, User.email)
            .join(WorkflowAuthoriser, WorkflowAuthoriser.workflow_id == Workflow.id)
            .join(User, User.id == WorkflowAuthoriser.user_id)
            .where(Workflow.administration_id == admin.id).order_by(Workflow.name, User.email)).all()
        flows: dict[str, list[str]] = defaultdict(list)
        for name, email in rows:
            flows[name].append(email)
        for name, emails in flows.items():
            findings.append(f"{admin.code} {admin.name} has workflow {name!r} with authorisers "
                            f"{', '.join(emails)}")
    return findings


def _check_recipients(s: Session, addresses: Sequence[str], source: Environment,
                      allow_unknown: bool = False,
                      to_env: str | None = None) -> tuple[Environment, list[str]]:
    """The environment the offer is for, and warnings. Refused (1) what can never be
    redeemed: a known user who is not a Superuser of a premium environment other than the
    source, recipients of two environments, and (without ``allow_unknown``) an address no
    user has. Unknown addresses alone need ``to_env`` to say where the offer goes."""
    known: list[tuple[str, User]] = []
    unknown: list[str] = []
    for address in addresses:
        user = lookup.find_user(s, address)
        if user is None:
            unknown.append(address)
            continue
        if user.environment_id == source.id:
            raise Refused(f"{address} is in {source.code}, the environment the administrations leave: "
                          "offer them to a Superuser of the receiving environment")
        known.append((address, user))
    offices = sorted({user.environment.code for _, user in known})
    if len(offices) > 1:
        raise Refused(f"the recipients are in different environments ({', '.join(offices)}): "
                      "one offer goes to one environment")
    for address, user in known:
        if not is_superuser(user.role):
            raise Refused(f"{address} is not a Superuser of {user.environment.code}: only a Superuser of "
                          "the receiving environment can redeem the code; offer it to one of them")
    target = known[0][1].environment if known else None
    if to_env is not None:
        named = s.get(Environment, lookup.environment_row(s, to_env).id)
        assert named is not None
        if target is not None and named.id != target.id:
            raise Refused(f"--to-env {named.code} does not match the recipients, who are Superusers of "
                          f"{target.code}: one offer goes to one environment")
        if named.id == source.id:
            raise Refused(f"--to-env {named.code} is the environment the administrations leave: name "
                          "the receiving environment")
        target = named
    if unknown and not allow_unknown:
        raise Refused(f"{unknown[0]} is not a user of any environment: only a Superuser of the "
                      "receiving environment can redeem the code. Check the address, or pass "
                      "--allow-unknown-recipient (and --to-env OFFICE) to mail it all the same")
    if target is None:
        raise UsageProblem("no recipient is a known Superuser, so say which environment the offer is "
                           "for with --to-env OFFICE (only its Superusers will be able to redeem it)")
    if not can_receive(target.plan):
        raise Refused(f"{target.code} is on a {target.plan} plan: only premium environments can receive "
                      "administrations")
    warnings = [f"{address} is not a user of any environment yet: the code works only once they "
                f"are a Superuser of {target.code}" for address in unknown]
    return target, warnings


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
