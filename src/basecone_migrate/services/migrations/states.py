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
from basecone_migrate.domain import lifecycle
from basecone_migrate.domain.lifecycle import ItemStatus


def effective_status(now: datetime) -> Any:
    """`lifecycle.effective` in SQL: an offer past its expiry reads as expired, whether or
    not `expire` has run yet."""
    return case(
        (and_(migration_items.c.status == ItemStatus.OFFERED.value, migrations.c.expires_at <= now),
         ItemStatus.EXPIRED.value),
        else_=migration_items.c.status,
    )


def status_at(status: str, expires_at: datetime, now: datetime) -> str:
    """`effective_status` of one item, in Python."""
    return lifecycle.effective(status, expires_at, now).value


def migration_status(statuses: Sequence[str]) -> str:
    """One word for a migration from its items' statuses (`lifecycle.summary`)."""
    return lifecycle.summary(statuses).value


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
