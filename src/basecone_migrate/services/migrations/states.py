"""Statuses and recipients of migrations, in SQLAlchemy Core.

What the read commands (`list`, `status`) and the writing ones share; nothing here loads
the ORM (see db/tables.py), and every function takes a Core connection or an ORM session.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, select

from basecone_migrate.db.sql import among
from basecone_migrate.db.tables import migration_items, migration_recipients, migrations


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
    """Each migration's recipients, by address (an empty list for one with none): one
    statement, however many migrations."""
    found: dict[int, list[str]] = defaultdict(list)
    recipients = migration_recipients.c
    ids = sorted(set(migration_ids))
    if ids:
        for mid, email in db.execute(select(recipients.migration_id, recipients.email)
                                     .where(among(db, recipients.migration_id, ids))
                                     .order_by(recipients.email)):
            found[mid].append(email)
    return found
