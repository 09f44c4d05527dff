"""The audit log: one row per state change, only ever added."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from basecone_migrate.db.models import AuditEntry

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


def entries(session: Session, *, administration_id: int | None = None, migration_id: int | None = None,
            since: datetime | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    """The log in the order it was written (the story of an administration reads top-down)."""
    query = select(AuditEntry).order_by(AuditEntry.id).limit(limit)
    if administration_id is not None:
        query = query.where(AuditEntry.administration_id == administration_id)
    if migration_id is not None:
        query = query.where(AuditEntry.migration_id == migration_id)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    return [{"id": e.id, "at": e.at, "actor": e.actor, "action": e.action,
             "administration_id": e.administration_id, "migration_id": e.migration_id,
             "details": e.details} for e in session.scalars(query)]
