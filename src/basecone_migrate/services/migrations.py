"""Cross-environment migrations (kinds 1 and 4): offer, revoke, resend, redeem, reject,
list, status, resume and expire.

Each command checks everything before it changes anything, changes the database in
one transaction, and hands its mails to the outbox in that same transaction; they are
delivered after the commit. Races are settled by guarded UPDATEs (``... WHERE status =
'offered'``) and, for the transfer, by a lock that dies with its process.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import String, and_, case, cast, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from basecone_migrate.db.models import (
    OPEN_STATUSES,
    AccountingSystem,
    Administration,
    CatalogueEntry,
    Charge,
    Environment,
    FailedRedeem,
    Migration,
    MigrationItem,
    Recipient,
    Transfercode,
    User,
    Workflow,
    WorkflowAuthoriser,
)
from basecone_migrate.domain import mails, transfercode
from basecone_migrate.domain.addresses import normalise_address
from basecone_migrate.domain.rules import (
    MIGRATABLE_PACKAGES,
    PREMIUM,
    SUPERUSER,
    administration_email,
    is_migratable,
    package_label,
)
from basecone_migrate.errors import (
    NotAllowed,
    NotFound,
    Refused,
    TransferIncomplete,
    UsageProblem,
)
from basecone_migrate.mail import Delivery, Postman, queue
from basecone_migrate.runtime import Runtime
from basecone_migrate.services import audit, lookup
from basecone_migrate.services.links import check_link
from basecone_migrate.services.lookup import admin_label
from basecone_migrate.services.locks import TransferLock
from basecone_migrate.services.transfer import NoProgress, Progress, transfer

#: Rule 5: more than this many in one offer is allowed, with a warning.
ADVISED_MAXIMUM = 5
#: Failed codes: this many within the window locks a user's redeem until the window passes.
FAILED_CODE_LIMIT = 5
FAILED_CODE_WINDOW = timedelta(minutes=15)


@dataclass
class Outcome:
    """What a command did: the payload for --json and tables, mails, warnings."""

    payload: Any
    delivery: Delivery = field(default_factory=Delivery)
    warnings: list[str] = field(default_factory=list)


class Questions(Protocol):
    """Answers a person gives at a terminal for what the options left out."""

    def accept_terms(self, fee: str, count: int, environment: str) -> bool: ...

    def confirm_checklist(self, findings: list[str]) -> bool: ...

    def select(self, offered: list[dict[str, Any]]) -> list[int]: ...

    def link(self, item: dict[str, Any], options: list[dict[str, Any]]) -> tuple[str, str]: ...


# -- small shared pieces ----------------------------------------------------------------


def effective_status(now: datetime) -> Any:
    """An offer past its expiry reads as expired, whether or not `expire` has run yet."""
    return case(
        (and_(MigrationItem.status == "offered", Migration.expires_at <= now), "expired"),
        else_=MigrationItem.status,
    )


def item_status(item: MigrationItem, now: datetime) -> str:
    if item.status == "offered" and item.migration.expires_at <= now:
        return "expired"
    return item.status


def migration_status(statuses: Sequence[str]) -> str:
    for status in ("in_progress", "failed", "offered", "completed", "rejected", "revoked", "expired"):
        if status in statuses:
            return status
    return "offered"


def open_item(session: Session, administration_id: int) -> MigrationItem | None:
    """The administration's migration item that is still open, if any."""
    return session.scalar(select(MigrationItem).where(
        MigrationItem.administration_id == administration_id,
        MigrationItem.status.in_(OPEN_STATUSES)))


def refuse_while_moving(session: Session, admin: Administration, to_do: str) -> None:
    """An archive being transferred takes no new documents: the transfer could miss them."""
    item = open_item(session, admin.id)
    if item is not None and item.status in ("in_progress", "failed"):
        raise Refused(f"administration {admin_label(admin)} is being moved (migration "
                      f"{item.migration_id}, {item.status}): {to_do} once it has completed")


def _party(user: User) -> mails.Party:
    return mails.Party(user.name, user.email)


def _env_label(environment: Environment) -> str:
    return f"{environment.name} ({environment.code})"


def _lines(items: Sequence[MigrationItem]) -> list[mails.AdminLine]:
    return [mails.AdminLine(i.name, i.source_code, i.package, i.source_email) for i in items]


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


def _migration(session: Session, migration_id: int) -> Migration:
    migration = session.get(Migration, migration_id)
    if migration is None:
        raise NotFound(f"no migration {migration_id} (see `basecone-migrate list`)")
    return migration


def _items(session: Session, migration: Migration) -> list[MigrationItem]:
    return list(session.scalars(select(MigrationItem).where(
        MigrationItem.migration_id == migration.id).order_by(MigrationItem.id)))


def _item_in(items: Sequence[MigrationItem], reference: str) -> MigrationItem:
    """An item of this migration by administration id or by the code it was offered under."""
    reference = reference.strip()
    number = reference[3:] if reference.lower().startswith("id:") else reference
    for item in items:
        if number.isdigit() and item.administration_id == int(number):
            return item
    for item in items:
        if item.source_code == reference:
            return item
    offered = ", ".join(f"{i.administration_id} ({i.source_code})" for i in items)
    raise NotFound(f"administration {reference!r} is not in this migration (it holds: {offered})")


def _offer_payload(migration: Migration, items: Sequence[MigrationItem], recipients: list[str],
                   code: str | None, status: str) -> dict[str, Any]:
    return {
        "migration_id": migration.id,
        "transfercode": code,
        "expires_at": migration.expires_at,
        "recipients": recipients,
        "administrations": [{"id": i.administration_id, "code": i.source_code, "name": i.name,
                             "email": i.source_email} for i in items],
        "status": status,
    }


def _queue(rt: Runtime, session: Session, mail: mails.Mail, migration_id: int | None) -> int:
    row = queue(session, mail, sender=rt.settings.mail_from, at=rt.now(), migration_id=migration_id)
    session.flush()
    return row.id


def _new_code(session: Session, migration: Migration, now: datetime) -> str:
    code = transfercode.generate()
    migration.expires_at = now + transfercode.VALIDITY
    migration.code_hint = transfercode.hint(code)
    session.add(Transfercode(code_sha256=transfercode.digest(code), migration_id=migration.id,
                             issued_at=now, expires_at=migration.expires_at))
    return code


# -- offer --------------------------------------------------------------------------------


def offer(
    rt: Runtime,
    references: Sequence[str],
    recipients: Sequence[str],
    *,
    accept_terms: bool,
    confirm_checklist: bool,
    dry_run: bool = False,
    ask: Questions | None = None,
) -> Outcome:
    addresses = _addresses(recipients)
    warnings: list[str] = []
    now = rt.now()
    with rt.uow() as uow:
        s = uow.session
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

        fee = str(rt.settings.fee)
        if not accept_terms and not (ask and ask.accept_terms(fee, len(admins), "the receiver")):
            raise Refused("accept the terms of the migration with --accept-terms")
        for admin in admins:
            package = admin.accounting_system.package
            if not is_migratable(package):
                raise Refused(
                    f"administration {admin_label(admin)} is linked to {package_label(package)}, "
                    "which cannot move between environments (only "
                    f"{', '.join(MIGRATABLE_PACKAGES.values())})")
        for admin in admins:
            busy = open_item(s, admin.id)
            if busy is not None:
                raise Refused(f"administration {admin_label(admin)} is already in migration "
                              f"{busy.migration_id} ({busy.status}): revoke that offer first")
        findings = _authoriser_findings(s, admins)
        if findings and not confirm_checklist and not (ask and ask.confirm_checklist(findings)):
            raise Refused(
                "authorisers are not transferred and must not be part of an authorisation "
                f"workflow of a moved administration, but: {'; '.join(findings)}. Remove them "
                "from the workflows, or confirm the checklist with --confirm-checklist")
        warnings += _recipient_warnings(s, addresses, source)
        if len(admins) > ADVISED_MAXIMUM:
            warnings.append(f"{len(admins)} administrations in one offer: the help centre advises at "
                            f"most {ADVISED_MAXIMUM} per offer")

        expires = now + transfercode.VALIDITY
        if dry_run:
            return Outcome({
                "dry_run": True, "migration_id": None, "transfercode": None, "expires_at": expires,
                "recipients": addresses,
                "administrations": [{"id": a.id, "code": a.code, "name": a.name, "email": a.email}
                                    for a in admins],
                "status": "offered",
            }, warnings=warnings)

        migration = Migration(source_environment_id=source.id, created_by_id=user.id, created_at=now,
                              expires_at=expires, code_hint="", checklist_confirmed=bool(findings))
        s.add(migration)
        s.flush()
        code = _new_code(s, migration, now)
        s.add_all(Recipient(migration_id=migration.id, email=a) for a in addresses)
        items = [MigrationItem(
            migration_id=migration.id, administration_id=a.id, status="offered", name=a.name,
            source_code=a.code, source_accounting_system_id=a.accounting_system_id,
            package=a.accounting_system.package, source_email=a.email) for a in admins]
        s.add_all(items)
        try:
            s.flush()
        except IntegrityError:
            raise Refused("one of these administrations was offered by someone else a moment ago: "
                          "see `basecone-migrate list`") from None
        for item in items:
            audit.record(s, at=now, actor=user.email, action="offer", administration_id=item.administration_id,
                         migration_id=migration.id, recipients=addresses,
                         checklist_confirmed=bool(findings))
        mail_id = _queue(rt, s, mails.offer(
            migration_id=migration.id, code=code, expires_at=migration.expires_at, sender=_party(user),
            source=_env_label(source), recipients=addresses, admins=_lines(items), fee=fee), migration.id)
        uow.commit()
        payload = _offer_payload(migration, items, addresses, code, "offered")
    return Outcome(payload, Postman(rt).deliver([mail_id]), warnings)


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


def _recipient_warnings(s: Session, addresses: Sequence[str], source: Environment) -> list[str]:
    warnings = []
    offices: set[str] = set()
    for address in addresses:
        user = lookup.find_user(s, address)
        if user is None:
            warnings.append(f"{address} is not a user of any environment: only a Superuser of the "
                            "receiving environment can redeem the code")
            continue
        offices.add(user.environment.code)
        if user.environment_id == source.id:
            warnings.append(f"{address} is in {source.code}, the environment the administrations "
                            "leave: they cannot redeem the code")
        elif user.role != SUPERUSER:
            warnings.append(f"{address} is not a Superuser of {user.environment.code}: they cannot "
                            "redeem the code")
        elif user.environment.plan != PREMIUM:
            warnings.append(f"{user.environment.code} is on a {user.environment.plan} plan: it cannot "
                            "receive administrations until it is premium")
    if len(offices) > 1:
        raise Refused(f"the recipients are in different environments ({', '.join(sorted(offices))}): "
                      "one offer goes to one environment")
    return warnings


# -- revoke and resend ------------------------------------------------------------------------


def _sender_side(rt: Runtime, s: Session, migration_id: int, to_do: str) -> tuple[User, Migration]:
    user = lookup.acting_user(rt, s)
    migration = _migration(s, migration_id)
    lookup.require_superuser(user, migration.source_environment, to_do)
    return user, migration


def _recipients(s: Session, migration: Migration) -> list[str]:
    return list(s.scalars(select(Recipient.email).where(Recipient.migration_id == migration.id)
                          .order_by(Recipient.email)))


def revoke(rt: Runtime, migration_id: int, admin_reference: str | None = None) -> Outcome:
    now = rt.now()
    with rt.uow() as uow:
        s = uow.session
        user, migration = _sender_side(rt, s, migration_id, "revoke its offers")
        items = _items(s, migration)
        chosen = [_item_in(items, admin_reference)] if admin_reference else items
        revocable = [i for i in chosen if item_status(i, now) == "offered"]
        if not revocable:
            states = ", ".join(sorted({item_status(i, now) for i in chosen}))
            raise Refused(f"nothing to revoke in migration {migration.id}: only offered "
                          f"administrations can be revoked, these are {states}")
        ids = [i.id for i in revocable]
        changed = s.execute(update(MigrationItem).where(
            MigrationItem.id.in_(ids), MigrationItem.status == "offered")
            .values(status="revoked", finished_at=now).execution_options(synchronize_session=False)).rowcount
        if changed != len(ids):
            raise Refused(f"migration {migration.id} changed a moment ago (redeemed or revoked): "
                          "see `basecone-migrate status`")
        for item in revocable:
            audit.record(s, at=now, actor=user.email, action="revoke",
                         administration_id=item.administration_id, migration_id=migration.id)
        recipients = _recipients(s, migration)
        mail_id = _queue(rt, s, mails.revoke(
            migration_id=migration.id, sender=_party(user), source=_env_label(migration.source_environment),
            recipients=recipients, admins=_lines(revocable)), migration.id)
        uow.commit()
        s.expire_all()
        items = _items(s, migration)
        payload = {
            "migration_id": migration.id,
            "revoked": [{"id": i.administration_id, "code": i.source_code, "name": i.name} for i in revocable],
            "status": migration_status([item_status(i, now) for i in items]),
        }
    return Outcome(payload, Postman(rt).deliver([mail_id]))


def resend(rt: Runtime, migration_id: int) -> Outcome:
    now = rt.now()
    with rt.uow() as uow:
        s = uow.session
        user, migration = _sender_side(rt, s, migration_id, "resend its offers")
        items = [i for i in _items(s, migration) if item_status(i, now) == "offered"]
        if not items:
            states = ", ".join(sorted({item_status(i, now) for i in _items(s, migration)}))
            raise Refused(f"migration {migration.id} has nothing on offer any more ({states}): "
                          "make a new offer instead")
        s.execute(update(Transfercode).where(Transfercode.migration_id == migration.id,
                                             Transfercode.replaced_at.is_(None))
                  .values(replaced_at=now))
        code = _new_code(s, migration, now)
        recipients = _recipients(s, migration)
        for item in items:
            audit.record(s, at=now, actor=user.email, action="resend",
                         administration_id=item.administration_id, migration_id=migration.id)
        mail_id = _queue(rt, s, mails.offer(
            migration_id=migration.id, code=code, expires_at=migration.expires_at, sender=_party(user),
            source=_env_label(migration.source_environment), recipients=recipients,
            admins=_lines(items), fee=str(rt.settings.fee), resent=True), migration.id)
        uow.commit()
        payload = _offer_payload(migration, items, recipients, code, "offered")
    return Outcome(payload, Postman(rt).deliver([mail_id]))


# -- redeem and reject -----------------------------------------------------------------------


class _NoOffer(Refused):
    """The code opens no offer: refused, and counted towards the lock-out."""


def locked_until(s: Session, user_id: int, now: datetime) -> datetime | None:
    recent = list(s.scalars(select(FailedRedeem.at).where(
        FailedRedeem.user_id == user_id, FailedRedeem.at > now - 2 * FAILED_CODE_WINDOW)
        .order_by(FailedRedeem.at.desc()).limit(FAILED_CODE_LIMIT)))
    if len(recent) < FAILED_CODE_LIMIT:
        return None
    last, first = recent[0], recent[-1]
    if last - first <= FAILED_CODE_WINDOW and now < last + FAILED_CODE_WINDOW:
        return last + FAILED_CODE_WINDOW
    return None


def _open_offer(rt: Runtime, s: Session, user: User, code_text: str) -> tuple[Migration, str]:
    """The migration a code opens, or _NoOffer saying why not."""
    now = rt.now()
    until = locked_until(s, user.id, now)
    if until is not None:
        raise NotAllowed(f"too many transfercodes that opened no offer: redeeming is locked for "
                         f"{user.email} until {until:%Y-%m-%d %H:%M} UTC")
    digest = transfercode.digest(code_text)
    code = s.get(Transfercode, digest) if digest else None
    if code is None:
        raise _NoOffer("unknown transfercode: check it against the mail (case, spaces and dashes "
                       "do not matter)")
    migration = _migration(s, code.migration_id)
    if code.replaced_at is not None:
        raise _NoOffer(f"this transfercode was replaced by a new one on {code.replaced_at:%Y-%m-%d}: "
                       "use the code from the latest mail")
    if code.spent_at is not None or migration.redeemed_at is not None:
        how = "rejected" if migration.reject_reason is not None else "redeemed"
        raise _NoOffer(f"this transfercode was already used: the offer was {how} on "
                       f"{migration.redeemed_at or code.spent_at:%Y-%m-%d}")
    statuses = {item_status(i, now) for i in _items(s, migration)}
    if "offered" not in statuses:
        if code.expires_at <= now or statuses == {"expired"}:
            raise _NoOffer(f"this transfercode expired on {code.expires_at:%Y-%m-%d %H:%M} UTC: ask "
                           f"{migration.created_by.email} to resend the offer")
        raise _NoOffer("this offer was revoked by its sender")
    return migration, digest  # type: ignore[return-value]


def _record_failed_code(rt: Runtime, user_id: int) -> None:
    with rt.uow() as uow:
        uow.session.add(FailedRedeem(user_id=user_id, at=rt.now()))
        uow.commit()


def _receiver(rt: Runtime, s: Session, code_text: str, *, rejecting: bool) -> tuple[User, Migration, str]:
    user = lookup.acting_user(rt, s)
    migration, digest = _open_offer(rt, s, user, code_text)
    if user.role != SUPERUSER:
        raise NotAllowed(f"{user.email} is not a Superuser: only a Superuser of the receiving "
                         f"environment may {'reject' if rejecting else 'redeem'} an offer")
    if user.email not in _recipients(s, migration):
        raise NotAllowed(f"{user.email} is not a recipient of this transfercode: ask the sender to "
                         "resend the offer to you")
    target = user.environment
    if target.id == migration.source_environment_id:
        raise Refused(f"these administrations are already in your environment {target.code}: a "
                      "transfercode moves them to another environment")
    if not rejecting and target.plan != PREMIUM:
        raise Refused(f"environment {target.code} is on a {target.plan} plan: only premium "
                      "environments can receive administrations")
    return user, migration, digest


def _find_offer(rt: Runtime, code_text: str, *, rejecting: bool) -> int:
    """Look the code up (recording a failed attempt) and return the migration id."""
    user_id = None
    try:
        with rt.uow() as uow:
            user = lookup.acting_user(rt, uow.session)
            user_id = user.id
            _, migration, _ = _receiver(rt, uow.session, code_text, rejecting=rejecting)
            return migration.id
    except _NoOffer:
        assert user_id is not None
        _record_failed_code(rt, user_id)
        raise


@dataclass
class _Link:
    item: MigrationItem
    connection: AccountingSystem
    code: str


def _link_options(s: Session, environment: Environment, package: str) -> list[AccountingSystem]:
    return list(s.scalars(select(AccountingSystem).where(
        AccountingSystem.environment_id == environment.id, AccountingSystem.package == package)
        .order_by(AccountingSystem.id)))


def _plan_links(s: Session, chosen: list[MigrationItem], items: list[MigrationItem],
                links: Sequence[tuple[str, str, str | None]], target: Environment,
                ask: Questions | None) -> list[_Link]:
    explicit: dict[int, tuple[str, str | None]] = {}
    for reference, connection_id, code in links:
        item = _item_in(items, reference)
        if item not in chosen:
            raise UsageProblem(f"--link names {admin_label(item)}, which is not taken (see --select)")
        if item.id in explicit:
            raise UsageProblem(f"--link names {admin_label(item)} twice")
        explicit[item.id] = (connection_id, code)
    plans: list[_Link] = []
    for item in chosen:
        admin = item.administration
        package = admin.accounting_system.package
        if item.id in explicit:
            connection_id, code = explicit[item.id]
            connection = lookup.accounting_system(s, connection_id)
            code = code or admin.code
        else:
            options = _link_options(s, target, package)
            if not options:
                raise Refused(f"environment {target.code} has no {package_label(package)} connection "
                              f"for {admin_label(item)}: add one first (the package never changes)")
            matching = [c for c in options if s.scalar(select(CatalogueEntry.id).where(
                CatalogueEntry.accounting_system_id == c.id, CatalogueEntry.code == admin.code,
                CatalogueEntry.name == admin.name))]
            if len(matching) == 1:
                connection, code = matching[0], admin.code
            elif ask is not None:
                connection_id, code = ask.link(_item_view(item), [_option_view(s, c) for c in options])
                connection = lookup.accounting_system(s, connection_id)
            else:
                why = (f"{len(matching)} connections have {admin.code} {admin.name} in their catalogue"
                       if matching else f"no connection has {admin.code} {admin.name} in its catalogue")
                names = ", ".join(c.id for c in (matching or options))
                raise UsageProblem(f"say where {admin_label(item)} goes with --link "
                                   f"{item.source_code}=CONNECTION[:CODE] ({why}; {package_label(package)} "
                                   f"connections: {names})")
        check_link(s, admin, connection, code, target)
        for other in plans:
            if (other.connection.id, other.code) == (connection.id, code):
                raise Refused(f"{admin_label(other.item)} and {admin_label(item)} are both linked to "
                              f"code {code} of connection {connection.id}")
            if (other.code, other.item.administration.name) == (code, admin.name):
                raise Refused(f"{admin_label(other.item)} and {admin_label(item)} would both be "
                              f"{code} {admin.name} in {target.code}")
        plans.append(_Link(item, connection, code))
    return plans


def _item_view(item: MigrationItem) -> dict[str, Any]:
    return {"administration_id": item.administration_id, "code": item.source_code, "name": item.name,
            "package": item.package, "email": item.source_email}


def _option_view(s: Session, connection: AccountingSystem) -> dict[str, Any]:
    entries = s.execute(select(CatalogueEntry.code, CatalogueEntry.name).where(
        CatalogueEntry.accounting_system_id == connection.id).order_by(CatalogueEntry.code)).all()
    return {"id": connection.id, "name": connection.name,
            "catalogue": [{"code": c, "name": n} for c, n in entries]}


def _result_items(s: Session, migration: Migration, now: datetime) -> list[dict[str, Any]]:
    rows = []
    for item in _items(s, migration):
        moved = item.target_accounting_system_id is not None and item.status != "rejected"
        target_code = migration.target_environment.code if migration.target_environment else None
        rows.append({
            "administration_id": item.administration_id,
            "administration": item.name,
            "status": item_status(item, now),
            "accounting_system": item.target_accounting_system_id if moved else item.source_accounting_system_id,
            "code": item.target_code if moved else item.source_code,
            "email": (item.target_email or administration_email(target_code, item.target_code))  # type: ignore[arg-type]
            if moved else item.source_email,
            "documents": item.documents_total,
            "bytes": item.bytes_total,
        })
    return rows


def _redeem_payload(rt: Runtime, migration_id: int) -> dict[str, Any]:
    now = rt.now()
    with rt.uow() as uow:
        migration = _migration(uow.session, migration_id)
        items = _result_items(uow.session, migration, now)
        return {"migration_id": migration.id, "status": migration_status([i["status"] for i in items]),
                "items": items}


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
) -> Outcome:
    migration_id = _find_offer(rt, code_text, rejecting=False)
    if dry_run:
        return _redeem(rt, code_text, accept_terms, select_, links, reason, dry_run, ask)
    # Held from before the checks until the transfer ends: a concurrent redeem of the same
    # code, or a resume, is refused instead of racing (the guarded UPDATE still decides).
    with TransferLock(rt, migration_id):
        outcome = _redeem(rt, code_text, accept_terms, select_, links, reason, dry_run, ask)
        outcome.delivery.merge(_transfer(rt, migration_id, progress))
    outcome.payload = _redeem_payload(rt, migration_id)
    return outcome


def _transfer(rt: Runtime, migration_id: int, progress: Progress | None) -> Delivery:
    try:
        return transfer(rt, migration_id, rt.settings.user or audit.SYSTEM, progress or NoProgress())
    except TransferIncomplete as incomplete:
        raise TransferIncomplete(incomplete.message, payload=_redeem_payload(rt, migration_id)) from None


def _redeem(rt: Runtime, code_text: str, accept_terms: bool, select_: Sequence[str],
            links: Sequence[tuple[str, str, str | None]], reason: str | None, dry_run: bool,
            ask: Questions | None) -> Outcome:
    now = rt.now()
    fee = rt.settings.fee
    with rt.uow() as uow:
        s = uow.session
        user, migration, digest = _receiver(rt, s, code_text, rejecting=False)
        target = user.environment
        items = _items(s, migration)
        offered = [i for i in items if item_status(i, now) == "offered"]
        if not accept_terms and not (ask and ask.accept_terms(str(fee), len(offered), target.code)):
            raise Refused(f"accept the terms and the costs ({fee} per administration, invoiced to "
                          f"{target.code}) with --accept-terms")
        if select_:
            chosen = []
            for reference in select_:
                item = _item_in(items, reference)
                if item not in offered:
                    raise Refused(f"{admin_label(item)} is {item_status(item, now)}, not offered")
                if item not in chosen:
                    chosen.append(item)
        elif ask is not None:
            wanted = set(ask.select([_item_view(i) for i in offered]))
            chosen = [i for i in offered if i.administration_id in wanted]
        else:
            chosen = offered
        if not chosen:
            raise UsageProblem("take at least one administration with --select, or use --reject")
        plans = _plan_links(s, chosen, items, links, target, ask)
        left = [i for i in offered if i not in chosen]

        if dry_run:
            rows = [{"administration_id": p.item.administration_id, "administration": p.item.name,
                     "status": "offered", "action": "take", "accounting_system": p.connection.id,
                     "code": p.code, "email": administration_email(target.code, p.code),
                     **dict(zip(("documents", "bytes"),
                                _count_documents(s, p.item.administration_id), strict=True))}
                    for p in plans]
            rows += [{"administration_id": i.administration_id, "administration": i.name,
                      "status": "offered", "action": "reject",
                      "accounting_system": i.source_accounting_system_id, "code": i.source_code,
                      "email": i.source_email, "documents": 0, "bytes": 0} for i in left]
            return Outcome({"dry_run": True, "migration_id": migration.id, "status": "offered",
                            "fee": str(fee), "items": rows})

        spent = s.execute(update(Transfercode).where(
            Transfercode.code_sha256 == digest, Transfercode.spent_at.is_(None),
            Transfercode.replaced_at.is_(None), Transfercode.expires_at > now)
            .values(spent_at=now)).rowcount
        if spent != 1:
            raise Refused("this transfercode was used by someone else a moment ago")
        migration.redeemed_at = now
        migration.redeemed_by_id = user.id
        migration.target_environment_id = target.id
        for plan in plans:
            documents, size = _count_documents(s, plan.item.administration_id)
            taken = s.execute(update(MigrationItem).where(
                MigrationItem.id == plan.item.id, MigrationItem.status == "offered")
                .values(status="in_progress", phase="copying",
                        target_accounting_system_id=plan.connection.id, target_code=plan.code,
                        target_email=administration_email(target.code, plan.code),
                        documents_total=documents, bytes_total=size)
                .execution_options(synchronize_session=False)).rowcount
            if taken != 1:
                raise Refused(f"{admin_label(plan.item)} was revoked a moment ago")
            s.add(Charge(environment_id=target.id, item_id=plan.item.id, currency=fee.currency,
                         amount_cents=fee.cents, created_at=now))
            audit.record(s, at=now, actor=user.email, action="redeem",
                         administration_id=plan.item.administration_id, migration_id=migration.id,
                         environment=target.code, accounting_system=plan.connection.id,
                         code=plan.code, fee=str(fee))
        mail_ids = [_queue(rt, s, mails.started(
            migration_id=migration.id, sender=_party(migration.created_by), receiver=_party(user),
            target=_env_label(target), admins=_lines([p.item for p in plans])), migration.id)]
        if left:
            mail_ids.append(_reject_left(rt, s, user, migration, left, reason or "not selected", now))
        uow.commit()
    return Outcome({}, Postman(rt).deliver(mail_ids))


def _count_documents(s: Session, administration_id: int) -> tuple[int, int]:
    from basecone_migrate.db.models import Document

    count, size = s.execute(select(func.count(Document.id), func.coalesce(func.sum(Document.size), 0))
                            .where(Document.administration_id == administration_id)).one()
    return int(count), int(size)


def _reject_left(rt: Runtime, s: Session, user: User, migration: Migration,
                 items: Sequence[MigrationItem], reason: str | None, now: datetime) -> int:
    ids = [i.id for i in items]
    changed = s.execute(update(MigrationItem).where(
        MigrationItem.id.in_(ids), MigrationItem.status == "offered")
        .values(status="rejected", finished_at=now).execution_options(synchronize_session=False)).rowcount
    if changed != len(ids):
        raise Refused("the offer changed a moment ago (revoked?): see `basecone-migrate status`")
    for item in items:
        audit.record(s, at=now, actor=user.email, action="reject", administration_id=item.administration_id,
                     migration_id=migration.id, reason=reason)
    return _queue(rt, s, mails.reject(
        migration_id=migration.id, sender=_party(migration.created_by), receiver=_party(user),
        target=_env_label(user.environment), admins=_lines(items), reason=reason), migration.id)


def reject(rt: Runtime, code_text: str, *, reason: str | None, dry_run: bool = False) -> Outcome:
    now = rt.now()
    migration_id = _find_offer(rt, code_text, rejecting=True)
    with rt.uow() as uow:
        s = uow.session
        user, migration, digest = _receiver(rt, s, code_text, rejecting=True)
        offered = [i for i in _items(s, migration) if item_status(i, now) == "offered"]
        if dry_run:
            return Outcome({"dry_run": True, "migration_id": migration_id, "status": "offered",
                            "items": [{**_item_view(i), "action": "reject"} for i in offered]})
        spent = s.execute(update(Transfercode).where(
            Transfercode.code_sha256 == digest, Transfercode.spent_at.is_(None),
            Transfercode.replaced_at.is_(None)).values(spent_at=now)).rowcount
        if spent != 1:
            raise Refused("this transfercode was used by someone else a moment ago")
        migration.redeemed_at = now
        migration.redeemed_by_id = user.id
        migration.target_environment_id = user.environment_id
        migration.reject_reason = reason or ""
        mail_id = _reject_left(rt, s, user, migration, offered, reason, now)
        uow.commit()
    outcome = Outcome(_redeem_payload(rt, migration_id), Postman(rt).deliver([mail_id]))
    return outcome


# -- list, status -----------------------------------------------------------------------------


def list_migrations(rt: Runtime, *, search: str | None = None, status: str | None = None,
                    offered: bool = True, received: bool = True, limit: int = 100,
                    offset: int = 0) -> dict[str, Any]:
    now = rt.now()
    with rt.uow() as uow:
        s = uow.session
        user = lookup.acting_user(rt, s)
        environment = user.environment
        if user.role != SUPERUSER:
            raise NotAllowed(f"{user.email} is not a Superuser of {environment.code}: the migration "
                             "overview is for Superusers")
        result: dict[str, Any] = {}
        if offered:
            result["offered"], result["offered_total"] = _offered_rows(s, environment, now, search,
                                                                       status, limit, offset)
        if received:
            result["received"], result["received_total"] = _received_rows(s, environment, now, search,
                                                                          status, limit, offset)
        return result


def _received_by(environment_id: int) -> Any:
    """Migrations this environment received, or that were offered to one of its users."""
    addressed_here = (select(Recipient.migration_id).join(User, User.email == Recipient.email)
                      .where(User.environment_id == environment_id))
    return or_(Migration.target_environment_id == environment_id,
               and_(Migration.target_environment_id.is_(None), Migration.id.in_(addressed_here)))


def _text(column: Any) -> Any:
    return func.lower(cast(column, String))


def _matching(search: str | None, columns: Sequence[Any]) -> Any:
    needle = (search or "").strip().lower()
    return or_(*(_text(c).contains(needle, autoescape=True) for c in columns))


def _page(s: Session, query: Any, limit: int, offset: int) -> tuple[list[Any], int]:
    total = s.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = s.execute(query.order_by(Migration.created_at.desc(), MigrationItem.id)
                     .limit(limit).offset(offset)).all()
    return rows, int(total or 0)


def _recipient_map(s: Session, migration_ids: set[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = defaultdict(list)
    if migration_ids:
        for mid, email in s.execute(select(Recipient.migration_id, Recipient.email).where(
                Recipient.migration_id.in_(migration_ids)).order_by(Recipient.email)):
            found[mid].append(email)
    return found


def _offered_rows(s: Session, environment: Environment, now: datetime, search: str | None,
                  status: str | None, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    state = effective_status(now)
    target = Environment.__table__.alias("target")
    query = (select(MigrationItem.migration_id, MigrationItem.administration_id, MigrationItem.name,
                    MigrationItem.source_code, MigrationItem.source_email, Migration.created_at,
                    Migration.expires_at, Migration.code_hint, state.label("status"),
                    target.c.code.label("target"))
             .join(Migration, Migration.id == MigrationItem.migration_id)
             .outerjoin(target, target.c.id == Migration.target_environment_id)
             .where(Migration.source_environment_id == environment.id))
    if status:
        query = query.where(state == status)
    if search:
        query = query.where(or_(
            _matching(search, [MigrationItem.migration_id, MigrationItem.administration_id,
                               MigrationItem.name, MigrationItem.source_code, MigrationItem.source_email,
                               Migration.created_at, Migration.expires_at, Migration.code_hint, state]),
            exists().where(Recipient.migration_id == Migration.id,
                           func.lower(Recipient.email).contains(search.strip().lower(), autoescape=True))))
    rows, total = _page(s, query, limit, offset)
    recipients = _recipient_map(s, {r.migration_id for r in rows})
    return [{
        "migration_id": r.migration_id,
        "administration_id": r.administration_id,
        "administration": r.name,
        "administration_code": r.source_code,
        "administration_email": r.source_email,
        "recipients": recipients[r.migration_id],
        "created_at": r.created_at,
        "expires_at": r.expires_at,
        "transfercode_hint": transfercode.masked(r.code_hint),
        "status": r.status,
        "target_environment": r.target,
    } for r in rows], total


def _received_rows(s: Session, environment: Environment, now: datetime, search: str | None,
                   status: str | None, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    state = effective_status(now)
    source = Environment.__table__.alias("source")
    system = func.coalesce(MigrationItem.target_accounting_system_id, MigrationItem.package)
    query = (select(MigrationItem.migration_id, MigrationItem.administration_id, MigrationItem.name,
                    system.label("accounting_system"), Migration.created_at, state.label("status"),
                    source.c.code.label("source"))
             .join(Migration, Migration.id == MigrationItem.migration_id)
             .join(source, source.c.id == Migration.source_environment_id)
             .where(_received_by(environment.id)))
    if status:
        query = query.where(state == status)
    if search:
        query = query.where(_matching(search, [
            MigrationItem.migration_id, MigrationItem.administration_id, MigrationItem.name, system,
            Migration.created_at, state, source.c.code]))
    rows, total = _page(s, query, limit, offset)
    return [{
        "migration_id": r.migration_id,
        "administration_id": r.administration_id,
        "administration": r.name,
        "accounting_system": r.accounting_system,
        "created_at": r.created_at,
        "status": r.status,
        "source_environment": r.source,
    } for r in rows], total


def _status_view(rt: Runtime, s: Session, migration: Migration, now: datetime) -> dict[str, Any]:
    items = []
    for item in _items(s, migration):
        seconds = None
        if item.started_at and item.finished_at:
            seconds = round((item.finished_at - item.started_at).total_seconds(), 3)
        items.append({
            "administration_id": item.administration_id,
            "administration": item.name,
            "status": item_status(item, now),
            "documents_done": item.documents_done,
            "documents_total": item.documents_total,
            "bytes_done": item.bytes_done,
            "bytes_total": item.bytes_total,
            "started_at": item.started_at,
            "finished_at": item.finished_at,
            "seconds": seconds,
            "mode": item.mode,
            "timings": item.timings,
            "error": item.error,
            "from": {"accounting_system": item.source_accounting_system_id, "code": item.source_code,
                     "email": item.source_email},
            "to": {"accounting_system": item.target_accounting_system_id, "code": item.target_code,
                   "email": item.target_email},
        })
    statuses = [i["status"] for i in items]
    running = "in_progress" in statuses and TransferLock(rt, migration.id).is_running()
    return {
        "migration_id": migration.id,
        "status": migration_status(statuses),
        "transfer_running": running,
        "source_environment": migration.source_environment.code,
        "target_environment": migration.target_environment.code if migration.target_environment else None,
        "sender": migration.created_by.email,
        "recipients": _recipients(s, migration),
        "created_at": migration.created_at,
        "expires_at": migration.expires_at,
        "redeemed_at": migration.redeemed_at,
        "redeemed_by": migration.redeemed_by.email if migration.redeemed_by else None,
        "transfercode_hint": transfercode.masked(migration.code_hint),
        "items": items,
    }


def status(rt: Runtime, migration_id: int | None = None, limit: int = 20) -> Any:
    now = rt.now()
    with rt.uow() as uow:
        s = uow.session
        if migration_id is not None:
            return _status_view(rt, s, _migration(s, migration_id), now)
        query = select(Migration).order_by(Migration.created_at.desc(), Migration.id.desc()).limit(limit)
        user = lookup.optional_acting_user(rt, s)
        if user is not None:
            query = query.where(or_(Migration.source_environment_id == user.environment_id,
                                    _received_by(user.environment_id)))
        return [_status_view(rt, s, m, now) for m in s.scalars(query)]


# -- resume, expire ------------------------------------------------------------------------------


def resume(rt: Runtime, migration_id: int, progress: Progress | None = None) -> Outcome:
    now = rt.now()
    with rt.uow() as uow:
        s = uow.session
        migration = _migration(s, migration_id)
        statuses = [item_status(i, now) for i in _items(s, migration)]
    if not any(state in ("in_progress", "failed") for state in statuses):
        if "offered" in statuses:
            raise Refused(f"migration {migration_id} has not been redeemed yet: there is no "
                          "transfer to resume")
        return Outcome(_redeem_payload(rt, migration_id),
                       warnings=[f"nothing to resume: migration {migration_id} is "
                                 f"{migration_status(statuses)}"])
    with TransferLock(rt, migration_id):
        delivery = _transfer(rt, migration_id, progress)
    return Outcome(_redeem_payload(rt, migration_id), delivery)


def expire(rt: Runtime) -> Outcome:
    """Mark every offer past its expiry as expired: one statement; safe to run at any time."""
    now = rt.now()
    with rt.uow() as uow:
        s = uow.session
        stale = select(Migration.id).where(Migration.expires_at <= now)
        expired = s.execute(
            update(MigrationItem)
            .where(MigrationItem.status == "offered", MigrationItem.migration_id.in_(stale))
            .values(status="expired", finished_at=now)
            .returning(MigrationItem.id, MigrationItem.migration_id, MigrationItem.administration_id)
            .execution_options(synchronize_session=False)).all()
        by_sender: dict[int, list[tuple[Migration, list[MigrationItem]]]] = defaultdict(list)
        per_migration: dict[int, list[int]] = defaultdict(list)
        for item_id, migration_id, administration_id in expired:
            per_migration[migration_id].append(item_id)
            audit.record(s, at=now, actor=audit.CRON, action="expire", administration_id=administration_id,
                         migration_id=migration_id)
        for migration_id, item_ids in sorted(per_migration.items()):
            migration = s.get(Migration, migration_id)
            assert migration is not None
            items = [s.get(MigrationItem, i) for i in sorted(item_ids)]
            by_sender[migration.created_by_id].append((migration, items))  # type: ignore[arg-type]
        mail_ids = []
        for offers in by_sender.values():
            sender = offers[0][0].created_by
            mail_ids.append(_queue(rt, s, mails.expired(
                sender=_party(sender),
                offers=[(m.id, ", ".join(_recipients(s, m)), _lines(items)) for m, items in offers]),
                offers[0][0].id if len(offers) == 1 else None))
        uow.commit()
    return Outcome({"expired": len(expired)}, Postman(rt).deliver(mail_ids))

