"""The audit log: one row per state change, only ever added."""

from __future__ import annotations

from datetime import datetime
from typing import Any

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
