"""Statuses and recipients of migrations, in SQLAlchemy Core.

What the read commands (`list`, `status`) and the writing ones share; nothing here loads
the ORM (see db/tables.py), and every function takes a Core connection or an ORM session.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, select

from basecone_migrate.db.tables import migration_items, migration_recipients, migrations

#: Ids per IN list (SQLite allows 32,766 bound values).
IN_CHUNK = 5000


def chunks(values: Sequence[int], size: int = IN_CHUNK) -> Iterator[Sequence[int]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def effective_status(now: datetime) -> Any:
    """An offer past its expiry reads as expired, whether or not `expire` has run yet."""
    return case(
        (and_(migration_items.c.status == "offered", migrations.c.expires_at <= now), "expired"),
        else_=migration_items.c.status,
    )


def status_at(status: str, expires_at: datetime, now: datetime) -> str:
    """`effective_status` of one item, in Python."""
    return "expired" if status == "offered" and expires_at <= now else status


def migration_status(statuses: Sequence[str]) -> str:
    for status in ("in_progress", "failed", "offered", "completed", "rejected", "revoked", "expired"):
        if status in statuses:
            return status
    return "offered"


def recipients_by_migration(db: Any, migration_ids: Iterable[int]) -> dict[int, list[str]]:
    """Each migration's recipients, by address (an empty list for one with none)."""
    found: dict[int, list[str]] = defaultdict(list)
    for chunk in chunks(sorted(set(migration_ids))):
        for mid, email in db.execute(
                select(migration_recipients.c.migration_id, migration_recipients.c.email)
                .where(migration_recipients.c.migration_id.in_(chunk))
                .order_by(migration_recipients.c.email)):
            found[mid].append(email)
    return found
