"""Every change of a migration item's status, through the lifecycle's table
(`domain/lifecycle.py`): one item in hand (`change`) or many in one guarded UPDATE
(`guarded`), which changes only the rows still in a status the event may leave; the caller
compares the rowcount with what it expected, so that of two processes acting at once only
one changes a row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import update

from basecone_migrate.db.tables import migration_items
from basecone_migrate.domain.lifecycle import Actor, Event, ItemStatus, next_status, sources, target


def change(item: Any, event: Event, actor: Actor) -> str:
    """Set ``item.status`` (an ORM row) to where ``event`` by ``actor`` leads, or raise
    ForbiddenTransition; the new status."""
    item.status = next_status(item.status, event, actor).value
    if item.status != ItemStatus.SCHEDULED:
        item.scheduled_for = None  # an instant to start at holds only while scheduled
    return item.status


def guarded(event: Event, actor: Actor, *criteria: Any) -> Any:
    """``UPDATE migration_items SET status = <event's target> WHERE status IN <the statuses
    ``actor`` may leave by ``event``> AND criteria``: add ``.values(...)`` for other columns."""
    values: dict[str, Any] = {"status": target(event).value}
    if target(event) != ItemStatus.SCHEDULED:
        values["scheduled_for"] = None  # an instant to start at holds only while scheduled
    return update(migration_items).where(in_status(sources(event, actor)), *criteria).values(**values)


def in_status(statuses: Sequence[str]) -> Any:
    """``status = x`` for one status (the form a partial index on it is proved from), else
    ``status IN (...)``."""
    column = migration_items.c.status
    values = [str(s) for s in statuses]
    return column == values[0] if len(values) == 1 else column.in_(values)
