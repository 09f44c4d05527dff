"""What the migration commands share: results, statuses, lookups, mails, expiry."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import and_, case, select, update
from sqlalchemy.orm import Session

from basecone_migrate.db.models import (
    OPEN_STATUSES,
    Administration,
    Environment,
    Migration,
    MigrationItem,
    Recipient,
    User,
)
from basecone_migrate.domain import mails
from basecone_migrate.errors import NotFound, Refused
from basecone_migrate.mail import Delivery, check_settings, queue
from basecone_migrate.runtime import Runtime
from basecone_migrate.services import audit, lookup
from basecone_migrate.services.lookup import admin_label


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


# -- statuses -------------------------------------------------------------------------------


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


def open_item(session: Session, administration_id: int, now: datetime) -> MigrationItem | None:
    """The administration's migration item that is still open: an offer not yet past its
    expiry, or a transfer in progress or failed."""
    for item in session.scalars(select(MigrationItem).where(
            MigrationItem.administration_id == administration_id,
            MigrationItem.status.in_(OPEN_STATUSES))):
        if item_status(item, now) in OPEN_STATUSES:
            return item
    return None


def refuse_while_moving(session: Session, admin: Administration, to_do: str) -> None:
    """An archive being transferred takes no new documents: the transfer could miss them."""
    item = session.scalar(select(MigrationItem).where(
        MigrationItem.administration_id == admin.id,
        MigrationItem.status.in_(("in_progress", "failed"))))
    if item is not None:
        raise Refused(f"administration {admin_label(admin)} is being moved (migration "
                      f"{item.migration_id}, {item.status}): {to_do} once it has completed")


# -- lookups ----------------------------------------------------------------------------------


def items_of(session: Session, migration: Migration) -> list[MigrationItem]:
    return list(session.scalars(select(MigrationItem).where(
        MigrationItem.migration_id == migration.id).order_by(MigrationItem.id)
        .execution_options(populate_existing=True)))


def item_in(items: Sequence[MigrationItem], reference: str) -> MigrationItem:
    """An item of this migration by administration id or by the code it was offered under."""
    reference = reference.strip()
    number = lookup.parse_id(reference[3:] if reference.lower().startswith("id:") else reference)
    for item in items:
        if number is not None and item.administration_id == number:
            return item
    for item in items:
        if item.source_code == reference:
            return item
    offered = ", ".join(f"{i.administration_id} ({i.source_code})" for i in items)
    raise NotFound(f"administration {reference!r} is not in this migration (it holds: {offered})")


def recipients_of(session: Session, migration: Migration) -> list[str]:
    return list(session.scalars(select(Recipient.email).where(Recipient.migration_id == migration.id)
                                .order_by(Recipient.email)))


# -- mails ------------------------------------------------------------------------------------


def party(user: User) -> mails.Party:
    return mails.Party(user.name, user.email)


def env_label(environment: Environment) -> str:
    return f"{environment.name} ({environment.code})"


def lines(items: Sequence[MigrationItem]) -> list[mails.AdminLine]:
    return [mails.AdminLine(i.name, i.source_code, i.package, i.source_email) for i in items]


def queue_mail(rt: Runtime, session: Session, mail: mails.Mail, migration_id: int | None) -> int:
    row = queue(session, mail, sender=rt.settings.mail_from, at=rt.now(), migration_id=migration_id)
    session.flush()
    return row.id


def require_mail_settings(rt: Runtime) -> None:
    """A malformed mail setting refuses the command before it changes anything."""
    check_settings(rt.settings)


# -- expiry -----------------------------------------------------------------------------------


def expire_items(rt: Runtime, session: Session, now: datetime, *, actor: str,
                 administration_ids: Sequence[int] | None = None) -> tuple[int, list[int]]:
    """Mark offered items past their expiry as expired, in one guarded statement.

    Each sender gets one mail for what expired. Returns (items expired, mail ids). With
    ``administration_ids``, only those administrations' offers (so a new offer or a link
    is not blocked by an old offer that cron has not expired yet).
    """
    stale = select(Migration.id).where(Migration.expires_at <= now)
    statement = (update(MigrationItem)
                 .where(MigrationItem.status == "offered", MigrationItem.migration_id.in_(stale))
                 .values(status="expired", finished_at=now)
                 .returning(MigrationItem.id, MigrationItem.migration_id, MigrationItem.administration_id)
                 .execution_options(synchronize_session=False))
    if administration_ids is not None:
        statement = statement.where(MigrationItem.administration_id.in_(administration_ids))
    expired = session.execute(statement).all()
    per_migration: dict[int, list[int]] = defaultdict(list)
    for item_id, migration_id, administration_id in expired:
        per_migration[migration_id].append(item_id)
        audit.record(session, at=now, actor=actor, action="expire", administration_id=administration_id,
                     migration_id=migration_id)
    by_sender: dict[int, list[tuple[Migration, list[MigrationItem]]]] = defaultdict(list)
    for migration_id, item_ids in sorted(per_migration.items()):
        migration = session.get(Migration, migration_id)
        assert migration is not None
        found = [session.get(MigrationItem, i) for i in sorted(item_ids)]
        by_sender[migration.created_by_id].append((migration, [i for i in found if i is not None]))
    mail_ids = []
    for offers in by_sender.values():
        sender = offers[0][0].created_by
        mail_ids.append(queue_mail(rt, session, mails.expired(
            sender=party(sender),
            offers=[(m.id, ", ".join(recipients_of(session, m)), lines(items)) for m, items in offers]),
            offers[0][0].id if len(offers) == 1 else None))
    return len(expired), mail_ids
