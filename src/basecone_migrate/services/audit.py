"""The audit log: one row per state change, only ever added."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, or_, select

from basecone_migrate.db.tables import audit_log
from basecone_migrate.services import lookup
from basecone_migrate.whoami import describe

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from basecone_migrate.runtime import Runtime

CRON = "cron"
SYSTEM = "system"


def record(
    session: Session,
    *,
    at: datetime,
    actor: str,
    action: str,
    administration_id: int | None = None,
    migration_id: int | None = None,
    **details: Any,
) -> None:
    from basecone_migrate.db.models import AuditEntry

    session.add(
        AuditEntry(
            at=at,
            actor=actor,
            action=action,
            administration_id=administration_id,
            migration_id=migration_id,
            details=details,
        )
    )


def entries(db: Any, *, administration_id: int | None = None, migration_id: int | None = None,
            since: datetime | None = None, limit: int = 1000,
            after: int | None = None) -> list[dict[str, Any]]:
    """The log in the order it was written (the story of an administration reads top-down).

    Pages by key: ``after`` is the id of the last row of the previous page. From an instant
    (``since``) the rows come in time order, which the (at, id) index serves.
    """
    log = audit_log.c
    query = select(audit_log).limit(limit)
    if administration_id is not None:
        query = query.where(log.administration_id == administration_id)
    if migration_id is not None:
        query = query.where(log.migration_id == migration_id)
    if since is None:
        query = query.order_by(log.id)
        if after is not None:
            query = query.where(log.id > after)
    else:
        query = query.where(log.at >= since).order_by(log.at, log.id)
        last = db.execute(select(log.at, log.id).where(log.id == after)).first() if after else None
        if after is not None and last is None:
            query = query.where(log.id > after)  # no such row: nothing after it
        elif last is not None:
            query = query.where(or_(log.at > last.at, and_(log.at == last.at, log.id > last.id)))
    return [{"id": e.id, "at": e.at, "recorded_at": e.recorded_at, "actor": e.actor,
             "operator": describe(e.operator, e.db_role), "action": e.action,
             "administration_id": e.administration_id, "migration_id": e.migration_id,
             "details": e.details} for e in db.execute(query)]


def log(rt: Runtime, *, admin: str | None = None, migration: int | None = None,
        since: datetime | None = None, limit: int = 1000, after: int | None = None) -> list[dict[str, Any]]:
    """`audit`: the entries, of one administration (by id or code) or migration if given
    (NotFound, exit 3, for one that never existed)."""
    with rt.reading() as db:
        admin_id = lookup.administration_row_for(rt, db, admin).id if admin else None
        if migration is not None:
            lookup.migration_id(db, migration)
        return entries(db, administration_id=admin_id, migration_id=migration, since=since,
                       limit=limit, after=after)
