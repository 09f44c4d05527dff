"""What the migration commands share: results, statuses, lookups, mails, expiry."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import insert, literal, select
from sqlalchemy.orm import Session

from basecone_migrate.db.lifecycle import guarded, in_status
from basecone_migrate.db.models import (
    OPEN_STATUSES,
    UNFINISHED_STATUSES,
    Administration,
    Environment,
    Migration,
    MigrationItem,
)
from basecone_migrate.db.sql import among
from basecone_migrate.db.tables import audit_log, migration_items, migrations, users
from basecone_migrate.domain import mails
from basecone_migrate.domain.lifecycle import Actor, Event, sources
from basecone_migrate.errors import NotFound, Refused
from basecone_migrate.runtime import Runtime
from basecone_migrate.services import lookup
from basecone_migrate.services.lookup import admin_label
from basecone_migrate.services.migrations.states import (  # noqa: F401 - shared with the writers
    effective_status,
    migration_status,
    recipients_by_migration,
    status_at,
)
from basecone_migrate.whoami import os_operator

if TYPE_CHECKING:  # the mail stack (ssl, email) loads only in commands that mail
    from basecone_migrate.mail import Delivery


def _no_delivery() -> Delivery:
    from basecone_migrate.mail import Delivery

    return Delivery()


@dataclass
class Outcome:
    """What a command did: the payload for --json and tables, mails, warnings."""

    payload: Any
    delivery: Delivery = field(default_factory=_no_delivery)
    warnings: list[str] = field(default_factory=list)


class Questions(Protocol):
    """Answers a person gives at a terminal for what the options left out."""

    def accept_terms(self, fee: str, count: int, environment: str) -> bool: ...

    def confirm_checklist(self, findings: list[str]) -> bool: ...

    def select(self, offered: list[dict[str, Any]]) -> list[int]: ...

    def confirm_rejection(self, left: list[dict[str, Any]], reason: str | None) -> str | None:
        """The reason to reject what was not selected with, or None to choose again."""

    def link(self, item: dict[str, Any], options: list[dict[str, Any]]) -> tuple[str, str]: ...


# -- statuses -------------------------------------------------------------------------------


def item_status(item: MigrationItem, now: datetime) -> str:
    return status_at(item.status, item.migration.expires_at, now)


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
        MigrationItem.status.in_(UNFINISHED_STATUSES)))
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
    return recipients_by_migration(session, [migration.id])[migration.id]


def acting_side(user: Any, migration: Migration, event: Any, verb: str, nobody: str) -> Any:
    """The side (`domain.lifecycle.party`) ``user`` acts for in ``migration``, when that side
    may cause ``event``; else NotAllowed (exit 4) naming the offices whose Superusers may
    (``nobody`` when none is known yet)."""
    from basecone_migrate.domain.lifecycle import Actor, may, party
    from basecone_migrate.errors import NotAllowed

    # Before the redeem the receiving environment is the one the offer was made to.
    side = party(user.role, user.environment_id, migration.source_environment_id,
                 migration.target_environment_id or migration.offered_to_environment_id)
    if side is None or not may(side, event):
        receiver = migration.target_environment or migration.offered_to_environment
        sides = ((Actor.SENDER, migration.source_environment), (Actor.RECEIVER, receiver))
        offices = " or ".join(e.code for actor, e in sides if e is not None and may(actor, event))
        raise NotAllowed(f"{user.email} is not a Superuser of {offices or nobody}: only they may "
                         f"{verb} migration {migration.id}")
    return side


# -- mails ------------------------------------------------------------------------------------


def party(user: Any) -> mails.Party:
    return mails.Party(user.name, user.email)


def env_label(environment: Environment) -> str:
    return f"{environment.name} ({environment.code})"


def lines(items: Sequence[Any]) -> list[mails.AdminLine]:
    """Items (or rows with their name, source_code, package and source_email) for a mail."""
    return [mails.AdminLine(i.name, i.source_code, i.package, i.source_email) for i in items]


def queue_mails(rt: Runtime, session: Session,
                mails_to_queue: Iterable[tuple[mails.Mail, int | None]]) -> list[int]:
    """Queue (mail, migration id) pairs in the outbox: one INSERT for them all."""
    from basecone_migrate.mail import queue

    return queue(session, list(mails_to_queue), sender=rt.settings.mail_from, at=rt.now())


def queue_mail(rt: Runtime, session: Session, mail: mails.Mail, migration_id: int | None) -> int:
    [mail_id] = queue_mails(rt, session, [(mail, migration_id)])
    return mail_id


#: A reason (reject, cancel, undo) fits in a mail and an audit row.
REASON_LIMIT = 2000


def check_reason(reason: str | None) -> None:
    from basecone_migrate.errors import UsageProblem

    if reason is not None and len(reason) > REASON_LIMIT:
        raise UsageProblem(f"--reason is {len(reason)} characters; keep it under {REASON_LIMIT}")


def require_mail_settings(rt: Runtime) -> None:
    """A malformed mail setting, or an outbox of another database, refuses the command before
    it changes anything."""
    from basecone_migrate.mail import check_mail

    check_mail(rt)


# -- expiry -----------------------------------------------------------------------------------

#: Stale offers are expired a few senders at a time: about this many items per transaction.
EXPIRE_BATCH = 5000

def stale_items(now: datetime) -> Any:
    """(sender id, item id) of every offer past its expiry that `expire` has not marked yet,
    by sender then item: one pass over the open offers (the partial index on ``status =
    'offered'``; the history is never read), streamed by the caller."""
    items, offers = migration_items.c, migrations.c
    return (select(offers.created_by_id, items.id)
            .join(migrations, offers.id == items.migration_id)
            .where(in_status(sources(Event.EXPIRE)), offers.expires_at <= now)
            .order_by(offers.created_by_id, items.id))


def sender_groups(rows: Iterable[tuple[int, int]], size: int = EXPIRE_BATCH) -> Iterator[list[int]]:
    """Item ids in groups of about ``size``, cut only where the sender changes: a sender is
    never split, so each gets one mail. Holds one group at a time."""
    group: list[int] = []
    last_sender = None
    for sender, item_id in rows:
        if sender != last_sender and len(group) >= size:
            yield group
            group = []
        group.append(item_id)
        last_sender = sender
    if group:
        yield group


def expire_statement(db: Any, now: datetime, administration_ids: Sequence[int] | None = None,
                     item_ids: Sequence[int] | None = None) -> Any:
    """The guarded ``UPDATE ... FROM migrations ... RETURNING`` of `expire_items` (tests
    EXPLAIN it): the items still offered whose offer is past its expiry. (SQLite returns
    only the updated table's columns.)"""
    items, offers = migration_items.c, migrations.c
    statement = (guarded(Event.EXPIRE, Actor.CRON, items.migration_id == offers.id,
                         offers.expires_at <= now)
                 .values(finished_at=now)
                 .returning(items.id, items.migration_id, items.administration_id, items.name,
                            items.source_code, items.package, items.source_email))
    if administration_ids is not None:
        statement = statement.where(among(db, items.administration_id, administration_ids))
    if item_ids is not None:
        statement = statement.where(among(db, items.id, item_ids))
    return statement


def expire_items(rt: Runtime, session: Session, now: datetime, *, actor: str,
                 administration_ids: Sequence[int] | None = None,
                 item_ids: Sequence[int] | None = None) -> tuple[int, list[int]]:
    """Mark offered items past their expiry as expired: one guarded UPDATE ... RETURNING,
    the audit rows with one INSERT ... SELECT, one mail per sender from the returned rows.

    Scoped to ``administration_ids`` (an offer or a link expires what blocks it) or to
    ``item_ids`` (cron, one group of senders at a time). Two runs at once mark each item once:
    the UPDATE only takes rows still ``offered``, and each run mails what it took. The ids
    travel as one bound array, never as an IN list. Returns (items expired, mail ids).
    """
    # (id, migration id, administration id, name, code, package, email), by id
    expired = sorted(session.execute(expire_statement(session, now, administration_ids, item_ids))
                     .all(), key=itemgetter(0))
    if not expired:
        return 0, []
    items = migration_items.c
    session.execute(insert(audit_log).from_select(
        ["at", "actor", "action", "administration_id", "migration_id", "details", "operator",
         "recorded_at"],
        select(literal(now, audit_log.c.at.type), literal(actor), literal("expire"),
               items.administration_id, items.migration_id, literal({}, audit_log.c.details.type),
               literal(os_operator()), literal(datetime.now(UTC), audit_log.c.recorded_at.type))
        .where(among(session, items.id, [row[0] for row in expired])).order_by(items.id)))
    by_migration: dict[int, list[mails.AdminLine]] = defaultdict(list)
    for row in expired:  # a plain tuple per item: 100,000 of them at a time
        by_migration[row[1]].append(mails.AdminLine._make(row[3:]))
    by_sender: dict[int, list[int]] = defaultdict(list)
    for mid, sender in sorted(session.execute(select(migrations.c.id, migrations.c.created_by_id)
                                              .where(among(session, migrations.c.id, list(by_migration))))
                              .all()):
        by_sender[sender].append(mid)
    to = recipients_by_migration(session, by_migration)
    people = {u.id: u for u in session.execute(select(users.c.id, users.c.name, users.c.email)
                                               .where(among(session, users.c.id, list(by_sender))))}
    mail_ids = queue_mails(rt, session, (
        (mails.expired(sender=party(people[sender_id]),
                       offers=[(mid, ", ".join(to[mid]), by_migration[mid]) for mid in offers]),
         offers[0] if len(offers) == 1 else None)
        for sender_id, offers in sorted(by_sender.items())))
    return len(expired), mail_ids
