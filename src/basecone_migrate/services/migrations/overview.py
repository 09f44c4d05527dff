"""The migration overview (`list`) and the transfer view (`status`)."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Subquery, and_, func, or_, select, true, union_all
from sqlalchemy.orm import Session

from basecone_migrate.db.models import (
    ITEM_STATUSES,
    Environment,
    Migration,
    MigrationItem,
    MigrationItemSearch,
    Recipient,
    User,
)
from basecone_migrate.domain.rules import SUPERUSER
from basecone_migrate.errors import NotAllowed, UsageProblem
from basecone_migrate.runtime import Runtime
from basecone_migrate.services import lookup
from basecone_migrate.services.locks import TransferLock
from basecone_migrate.services.migrations import search
from basecone_migrate.services.migrations.common import (
    effective_status,
    item_status,
    items_of,
    migration_status,
    recipients_by_migration,
    recipients_of,
)
from basecone_migrate.services.migrations.search import HINT_PREFIX

#: A total is counted exactly up to this many rows; past it, the page says "more than".
COUNT_CAP = 10_000


@dataclass(frozen=True)
class Cursor:
    """Where a page of one section ended: the next page starts after this row."""

    section: str
    created_at: datetime
    item_id: int

    def encode(self) -> str:
        raw = json.dumps([self.section, self.created_at.isoformat(), self.item_id]).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
            section, created, item_id = json.loads(raw)
            if section not in SECTIONS or not isinstance(item_id, int):
                raise ValueError(section)
            return cls(section, datetime.fromisoformat(created), item_id)
        except (ValueError, TypeError, UnicodeDecodeError):
            raise UsageProblem(f"--after {text!r} is not a cursor from `list --json` "
                               "(offered_next or received_next)") from None


SECTIONS = ("offered", "received")


def list_migrations(rt: Runtime, *, search: str | None = None, status: str | None = None,
                    offered: bool = True, received: bool = True, limit: int = 100,
                    offset: int = 0, after: str | None = None) -> dict[str, Any]:
    """The overview of the acting user's environment, one page per section.

    Pages are newest first. ``after`` (a cursor from the previous page) continues one
    section from where it stopped, by key, so a page deep into a million rows costs what
    the first one does; ``offset`` still skips rows. Totals are exact up to COUNT_CAP.
    """
    cursor = Cursor.decode(after) if after else None
    if cursor is not None:
        offered, received = cursor.section == "offered", cursor.section == "received"
    now = rt.now()
    with rt.uow(read_only=True) as uow:
        s = uow.session
        user = lookup.acting_user(rt, s)
        environment = user.environment
        if user.role != SUPERUSER:
            raise NotAllowed(f"{user.email} is not a Superuser of {environment.code}: the migration "
                             "overview is for Superusers")
        result: dict[str, Any] = {}
        for section, wanted, rows_of in (("offered", offered, _offered_query),
                                         ("received", received, _received_query)):
            rows: Sequence[Any] = []
            total, exact, following = 0, True, None
            if wanted:
                query = rows_of(environment, now, search, status)
                rows, total, exact, following = _page(s, query, limit, offset, cursor, section)
            result[section] = [_ROW[section](r) for r in rows]
            result[f"{section}_total"] = total  # a section left out stays, empty
            result[f"{section}_total_exact"] = exact
            result[f"{section}_next"] = following
        _add_recipients(s, result["offered"])
        return result


def status_condition(status: str, now: datetime) -> Any:
    """An item's status as the overview reads it, in a form the status index serves: an
    offer past its expiry is expired whether or not `expire` has run."""
    if status == "expired":
        return or_(MigrationItem.status == "expired",
                   and_(MigrationItem.status == "offered", Migration.expires_at <= now))
    if status == "offered":
        return and_(MigrationItem.status == "offered", Migration.expires_at > now)
    return MigrationItem.status == status


def _search_condition(column: Any, text: str, now: datetime) -> Any:
    word = text.strip().lower()
    return or_(column.like(search.needle(text), escape="\\"),
               *(status_condition(state, now) for state in ITEM_STATUSES if word in state))


def _filtered(query: Any, column: Any, now: datetime, text: str | None, status: str | None) -> Any:
    if status:
        query = query.where(status_condition(status, now))
    if text and text.strip():
        query = (query.join(MigrationItemSearch, MigrationItemSearch.item_id == MigrationItem.id)
                 .where(_search_condition(column, text, now)))
    return query


def _offered_query(environment: Environment, now: datetime, text: str | None,
                   status: str | None) -> Any:
    target = Environment.__table__.alias("target")
    query = (select(MigrationItem.id.label("item_id"), MigrationItem.migration_id,
                    MigrationItem.administration_id, MigrationItem.name, MigrationItem.source_code,
                    MigrationItem.source_email, Migration.created_at, Migration.expires_at,
                    Migration.code_hint, effective_status(now).label("status"),
                    target.c.code.label("target"))
             .join(Migration, Migration.id == MigrationItem.migration_id)
             .outerjoin(target, target.c.id == Migration.target_environment_id)
             .where(Migration.source_environment_id == environment.id))
    return _filtered(query, MigrationItemSearch.offered, now, text, status)


def _received_query(environment: Environment, now: datetime, text: str | None,
                    status: str | None) -> Any:
    """Offers this environment took, and those addressed to its users that nobody took yet:
    two index-served parts joined with UNION ALL (an OR across them would scan)."""
    source = Environment.__table__.alias("source")
    system = func.coalesce(MigrationItem.target_accounting_system_id, MigrationItem.package)

    def part(where: Any) -> Any:
        query = (select(MigrationItem.id.label("item_id"), MigrationItem.migration_id,
                        MigrationItem.administration_id, MigrationItem.name,
                        system.label("accounting_system"), MigrationItem.package,
                        Migration.created_at, effective_status(now).label("status"),
                        source.c.code.label("source"))
                 .join(Migration, Migration.id == MigrationItem.migration_id)
                 .join(source, source.c.id == Migration.source_environment_id)
                 .where(where))
        return _filtered(query, MigrationItemSearch.received, now, text, status)

    taken = part(Migration.target_environment_id == environment.id)
    addressed = part(and_(Migration.target_environment_id.is_(None),
                          Migration.id.in_(addressed_to(environment.id))))
    return union_all(taken, addressed).subquery("received")


def addressed_to(environment_id: int) -> Any:
    """Migrations offered to one of the environment's users."""
    return (select(Recipient.migration_id).join(User, User.email == Recipient.email)
            .where(User.environment_id == environment_id))


def _page(s: Session, query: Any, limit: int, offset: int, cursor: Cursor | None,
          section: str) -> tuple[Sequence[Any], int, bool, str | None]:
    """One page, newest first, with the total (exact up to COUNT_CAP) and the next cursor."""
    if isinstance(query, Subquery):  # a union: order and filter on its columns
        page = select(query)
        created, item_id = query.c.created_at, query.c.item_id
    else:
        page, created, item_id = query, Migration.created_at, MigrationItem.id
    counted = s.scalar(select(func.count()).select_from(page.limit(COUNT_CAP + 1).subquery()))
    total, exact = min(int(counted or 0), COUNT_CAP), int(counted or 0) <= COUNT_CAP
    if cursor is not None:
        page = page.where(or_(created < cursor.created_at,
                              and_(created == cursor.created_at, item_id > cursor.item_id)))
    rows = s.execute(page.order_by(created.desc(), item_id).limit(limit + 1).offset(offset)).all()
    following = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        following = Cursor(section, last.created_at, last.item_id).encode()
    return rows, total, exact, following


def _offered_row(r: Any) -> dict[str, Any]:
    return {
        "migration_id": r.migration_id,
        "administration_id": r.administration_id,
        "administration": r.name,
        "administration_code": r.source_code,
        "administration_email": r.source_email,
        "recipients": [],
        "created_at": r.created_at,
        "expires_at": r.expires_at,
        "transfercode_hint": HINT_PREFIX + r.code_hint,
        "status": r.status,
        "target_environment": r.target,
    }


def _received_row(r: Any) -> dict[str, Any]:
    return {
        "migration_id": r.migration_id,
        "administration_id": r.administration_id,
        "administration": r.name,
        "accounting_system": r.accounting_system,
        "created_at": r.created_at,
        "status": r.status,
        "source_environment": r.source,
        "package": r.package,
    }


_ROW = {"offered": _offered_row, "received": _received_row}


def _add_recipients(s: Session, rows: list[dict[str, Any]]) -> None:
    found = recipients_by_migration(s, (r["migration_id"] for r in rows))
    for row in rows:
        row["recipients"] = found[row["migration_id"]]


def _status_view(rt: Runtime, s: Session, migration: Migration, now: datetime) -> dict[str, Any]:
    items = []
    for item in items_of(s, migration):
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
        "recipients": recipients_of(s, migration),
        "created_at": migration.created_at,
        "expires_at": migration.expires_at,
        "redeemed_at": migration.redeemed_at,
        "redeemed_by": migration.redeemed_by.email if migration.redeemed_by else None,
        "transfercode_hint": HINT_PREFIX + migration.code_hint,
        "items": items,
    }


def status(rt: Runtime, migration_id: int | None = None, limit: int = 20,
           after: int | None = None) -> Any:
    """One migration's transfer view, or the most recent ones (those of the acting user's
    environment with ``--as``), newest first; ``after`` continues below that migration."""
    now = rt.now()
    with rt.uow(read_only=True) as uow:
        s = uow.session
        if migration_id is not None:
            return _status_view(rt, s, lookup.migration(s, migration_id), now)
        user = lookup.optional_acting_user(rt, s)
        below = None
        if after is not None:
            last = lookup.migration(s, after)
            below = or_(Migration.created_at < last.created_at,
                        and_(Migration.created_at == last.created_at, Migration.id < last.id))
        ids = [row.id for row in s.execute(_recent(user.environment_id if user else None, below, limit))]
        found = {m.id: m for m in s.scalars(select(Migration).where(Migration.id.in_(ids)))}
        return [_status_view(rt, s, found[i], now) for i in ids]


def _recent(environment_id: int | None, below: Any, limit: int) -> Any:
    """The newest migrations' ids: of one environment, as three index-served parts (sent,
    taken, addressed to its users), each its own top ``limit``, then the top of those."""
    def part(where: Any) -> Any:
        query = select(Migration.id, Migration.created_at).where(where)
        if below is not None:
            query = query.where(below)
        return query.order_by(Migration.created_at.desc(), Migration.id.desc()).limit(limit).subquery()

    if environment_id is None:
        parts = [part(true())]
    else:
        parts = [part(Migration.source_environment_id == environment_id),
                 part(Migration.target_environment_id == environment_id),
                 part(and_(Migration.target_environment_id.is_(None),
                           Migration.id.in_(addressed_to(environment_id))))]
    top = union_all(*(select(p) for p in parts)).subquery("recent")
    return (select(top.c.id, top.c.created_at).distinct()
            .order_by(top.c.created_at.desc(), top.c.id.desc()).limit(limit))
