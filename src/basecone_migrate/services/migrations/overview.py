"""The migration overview (`list`) and the transfer view (`status`).

SQLAlchemy Core on a read-only connection: these commands never load the ORM.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Subquery, and_, func, or_, select, true, union_all

from basecone_migrate.db.tables import (
    ITEM_STATUSES,
    UNFINISHED_STATUSES,
    environments,
    migration_item_search,
    migration_items,
    migration_recipients,
    migrations,
    users,
)
from basecone_migrate.domain.lifecycle import ItemStatus
from basecone_migrate.domain.rules import is_superuser
from basecone_migrate.errors import NotAllowed, UsageProblem
from basecone_migrate.runtime import Runtime
from basecone_migrate.services import lookup
from basecone_migrate.services.locks import TransferLock
from basecone_migrate.services.migrations import search
from basecone_migrate.services.migrations.search import HINT_PREFIX
from basecone_migrate.services.migrations.states import (
    effective_status,
    migration_status,
    recipients_by_migration,
    status_at,
)

item_c, migration_c = migration_items.c, migrations.c

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
    with rt.reading() as db:
        user = lookup.acting_user_row(rt, db)
        if not is_superuser(user.role):
            raise NotAllowed(f"{user.email} is not a Superuser of {user.environment_code}: the "
                             "migration overview is for Superusers")
        result: dict[str, Any] = {}
        for section, wanted, rows_of in (("offered", offered, _offered_query),
                                         ("received", received, _received_query)):
            rows: Sequence[Any] = []
            total, exact, following = 0, True, None
            if wanted:
                query = rows_of(user.environment_id, now, search, status)
                rows, total, exact, following = _page(db, query, limit, offset, cursor, section)
            result[section] = [_ROW[section](r) for r in rows]
            result[f"{section}_total"] = total  # a section left out stays, empty
            result[f"{section}_total_exact"] = exact
            result[f"{section}_next"] = following
        _add_recipients(db, result["offered"])
        return result


def status_condition(status: str, now: datetime) -> Any:
    """An item's status as the overview reads it, in a form the status index serves: an
    offer past its expiry is expired whether or not `expire` has run."""
    if status == ItemStatus.EXPIRED:  # as `lifecycle.effective` reads them
        return or_(item_c.status == ItemStatus.EXPIRED.value,
                   and_(item_c.status == ItemStatus.OFFERED.value, migration_c.expires_at <= now))
    if status == ItemStatus.OFFERED:
        return and_(item_c.status == ItemStatus.OFFERED.value, migration_c.expires_at > now)
    return item_c.status == status


def _search_condition(column: Any, text: str, now: datetime) -> Any:
    word = text.strip().lower()
    return or_(column.like(search.needle(text), escape="\\"),
               *(status_condition(state, now) for state in ITEM_STATUSES if word in state))


def _filtered(query: Any, column: Any, now: datetime, text: str | None, status: str | None) -> Any:
    if status:
        query = query.where(status_condition(status, now))
    if text and text.strip():
        query = (query.join(migration_item_search, migration_item_search.c.item_id == item_c.id)
                 .where(_search_condition(column, text, now)))
    return query


def _offered_query(environment_id: int, now: datetime, text: str | None,
                   status: str | None) -> Any:
    target = environments.alias("target")
    query = (select(item_c.id.label("item_id"), item_c.migration_id, item_c.administration_id,
                    item_c.name, item_c.source_code, item_c.source_email, migration_c.created_at,
                    migration_c.expires_at, migration_c.code_hint,
                    effective_status(now).label("status"), target.c.code.label("target"))
             .join(migrations, migration_c.id == item_c.migration_id)
             .outerjoin(target, target.c.id == migration_c.target_environment_id)
             .where(migration_c.source_environment_id == environment_id))
    return _filtered(query, migration_item_search.c.offered, now, text, status)


def _received_query(environment_id: int, now: datetime, text: str | None,
                    status: str | None) -> Any:
    """Offers this environment took, and those addressed to its users that nobody took yet:
    two index-served parts joined with UNION ALL (an OR across them would scan)."""
    source = environments.alias("source")
    system = func.coalesce(item_c.target_accounting_system_id, item_c.package)

    def part(where: Any) -> Any:
        query = (select(item_c.id.label("item_id"), item_c.migration_id, item_c.administration_id,
                        item_c.name, system.label("accounting_system"), item_c.package,
                        migration_c.created_at, effective_status(now).label("status"),
                        source.c.code.label("source"))
                 .join(migrations, migration_c.id == item_c.migration_id)
                 .join(source, source.c.id == migration_c.source_environment_id)
                 .where(where))
        return _filtered(query, migration_item_search.c.received, now, text, status)

    taken = part(migration_c.target_environment_id == environment_id)
    addressed = part(and_(migration_c.target_environment_id.is_(None),
                          migration_c.id.in_(addressed_to(environment_id))))
    return union_all(taken, addressed).subquery("received")


def addressed_to(environment_id: int) -> Any:
    """Migrations offered to one of the environment's users."""
    return (select(migration_recipients.c.migration_id)
            .join(users, users.c.email == migration_recipients.c.email)
            .where(users.c.environment_id == environment_id))


def _page(db: Any, query: Any, limit: int, offset: int, cursor: Cursor | None,
          section: str) -> tuple[Sequence[Any], int, bool, str | None]:
    """One page, newest first, with the total (exact up to COUNT_CAP) and the next cursor."""
    if isinstance(query, Subquery):  # a union: order and filter on its columns
        page = select(query)
        created, item_id = query.c.created_at, query.c.item_id
    else:
        page, created, item_id = query, migration_c.created_at, item_c.id
    counted = db.scalar(select(func.count()).select_from(page.limit(COUNT_CAP + 1).subquery()))
    total, exact = min(int(counted or 0), COUNT_CAP), int(counted or 0) <= COUNT_CAP
    if cursor is not None:
        page = page.where(or_(created < cursor.created_at,
                              and_(created == cursor.created_at, item_id > cursor.item_id)))
    rows = db.execute(page.order_by(created.desc(), item_id).limit(limit + 1).offset(offset)).all()
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


def _add_recipients(db: Any, rows: list[dict[str, Any]]) -> None:
    found = recipients_by_migration(db, (r["migration_id"] for r in rows))
    for row in rows:
        row["recipients"] = found[row["migration_id"]]


def _migrations(db: Any, ids: Sequence[int]) -> dict[int, Any]:
    """Migrations by id, with the codes of their two environments and their two people."""
    source, target = environments.alias("source"), environments.alias("target")
    sender, receiver = users.alias("sender"), users.alias("receiver")
    query = (select(migrations, source.c.code.label("source_code"), target.c.code.label("target_code"),
                    sender.c.email.label("sender"), receiver.c.email.label("receiver"))
             .join(source, source.c.id == migration_c.source_environment_id)
             .outerjoin(target, target.c.id == migration_c.target_environment_id)
             .join(sender, sender.c.id == migration_c.created_by_id)
             .outerjoin(receiver, receiver.c.id == migration_c.redeemed_by_id)
             .where(migration_c.id.in_(ids)))
    return {row.id: row for row in db.execute(query)}


#: What `status` says of an unfinished item: a process holds it, a job waits for a worker,
#: or neither (the process is gone: `resume` it).
RUNNING, QUEUED, NOT_RUNNING = "running", "queued", "not_running"
#: Items whose archive arrived: their receipt is shown.
RECEIPTED = (ItemStatus.COMPLETED, ItemStatus.UNDONE)


def _activity(rt: Runtime, db: Any, migration_id: int,
              unfinished: list[int]) -> dict[int, tuple[str, str | None]]:
    """(running, the process that holds it) for each unfinished item, looked at without
    taking a lock: held by a live process, else queued for a worker, else not running."""
    if not unfinished:
        return {}
    holders = TransferLock(rt, migration_id).holders(unfinished)
    queued = set()
    if db.dialect.name == "postgresql" and len(holders) < len(unfinished):
        from basecone_migrate.services.background import queued_items

        queued = queued_items(db, [i for i in unfinished if i not in holders])
    return {i: ((RUNNING, holders[i]) if i in holders else (QUEUED if i in queued else NOT_RUNNING, None))
            for i in unfinished}


def _status_view(rt: Runtime, db: Any, migration: Any, now: datetime) -> dict[str, Any]:
    items = []
    rows = db.execute(select(migration_items).where(item_c.migration_id == migration.id)
                      .order_by(item_c.id)).all()
    # A paused item waits for a person, not for a process: nothing is said to run it.
    activity = _activity(rt, db, migration.id, [r.id for r in rows if r.status in UNFINISHED_STATUSES
                                                 and r.status != ItemStatus.PAUSED])
    for item in rows:
        running, running_on = activity.get(item.id, (None, None))
        seconds = None
        if item.started_at and item.finished_at:
            seconds = round((item.finished_at - item.started_at).total_seconds(), 3)
        items.append({
            "administration_id": item.administration_id,
            "administration": item.name,
            "status": status_at(item.status, migration.expires_at, now),
            "documents_done": item.documents_done,
            "documents_total": item.documents_total,
            "bytes_done": item.bytes_done,
            "bytes_total": item.bytes_total,
            "scheduled_for": item.scheduled_for,
            "returned_at": item.returned_at,  # a cancelled or undone item: back home since
            "started_at": item.started_at,
            "finished_at": item.finished_at,
            "seconds": seconds,
            "mode": item.mode,
            "worker": item.worker,
            "running": running,
            "running_on": (running_on or item.worker) if running == RUNNING else None,
            "timings": item.timings,
            "error": item.error,
            "from": {"accounting_system": item.source_accounting_system_id, "code": item.source_code,
                     "email": item.source_email, "name": item.name},
            "to": {"accounting_system": item.target_accounting_system_id, "code": item.target_code,
                   "email": item.target_email,
                   "name": item.target_name or (item.name if item.target_code else None)},
            # the receipt of the archive as it arrived, once it did
            **({"digest": item.digest, "documents": item.documents_total, "bytes": item.bytes_total}
               if item.digest is not None and item.status in RECEIPTED else {}),
        })
    statuses = [i["status"] for i in items]
    running = ItemStatus.IN_PROGRESS in statuses and TransferLock(rt, migration.id).is_running()
    return {
        "migration_id": migration.id,
        "status": migration_status(statuses),
        "transfer_running": running,
        "source_environment": migration.source_code,
        "target_environment": migration.target_code,
        "sender": migration.sender,
        "recipients": recipients_by_migration(db, [migration.id])[migration.id],
        "created_at": migration.created_at,
        "expires_at": migration.expires_at,
        "redeemed_at": migration.redeemed_at,
        "redeemed_by": migration.receiver,
        "transfercode_hint": HINT_PREFIX + migration.code_hint,
        "items": items,
    }


def status(rt: Runtime, migration_id: int | None = None, limit: int = 20,
           after: int | None = None) -> Any:
    """One migration's transfer view, or the most recent ones (those of the acting user's
    environment with ``--as``), newest first; ``after`` continues below that migration."""
    now = rt.now()
    with rt.reading() as db:
        if migration_id is not None:
            found = _migrations(db, [lookup.migration_id(db, migration_id)])
            return _status_view(rt, db, found[migration_id], now)
        user = lookup.optional_acting_user_row(rt, db)
        below = None
        if after is not None:
            last = db.execute(select(migration_c.id, migration_c.created_at)
                              .where(migration_c.id == lookup.migration_id(db, after))).one()
            below = or_(migration_c.created_at < last.created_at,
                        and_(migration_c.created_at == last.created_at, migration_c.id < last.id))
        ids = [row.id for row in db.execute(_recent(user.environment_id if user else None, below, limit))]
        found = _migrations(db, ids)
        return [_status_view(rt, db, found[i], now) for i in ids]


def _recent(environment_id: int | None, below: Any, limit: int) -> Any:
    """The newest migrations' ids: of one environment, as three index-served parts (sent,
    taken, addressed to its users), each its own top ``limit``, then the top of those."""
    def part(where: Any) -> Any:
        query = select(migration_c.id, migration_c.created_at).where(where)
        if below is not None:
            query = query.where(below)
        return (query.order_by(migration_c.created_at.desc(), migration_c.id.desc()).limit(limit)
                .subquery())

    if environment_id is None:
        parts = [part(true())]
    else:
        parts = [part(migration_c.source_environment_id == environment_id),
                 part(migration_c.target_environment_id == environment_id),
                 part(and_(migration_c.target_environment_id.is_(None),
                           migration_c.id.in_(addressed_to(environment_id))))]
    top = union_all(*(select(p) for p in parts)).subquery("recent")
    return (select(top.c.id, top.c.created_at).distinct()
            .order_by(top.c.created_at.desc(), top.c.id.desc()).limit(limit))
