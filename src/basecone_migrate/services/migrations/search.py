"""What `list --search` matches, kept in two lower-case columns that an index can serve.

Each migration item has, in ``migration_item_search``, the text of its row in the sender's
overview (``offered``) and in the receiver's (``received``): every field the row shows
but its status, lower-cased. PostgreSQL serves ``LIKE '%text%'`` on them with
trigram (``pg_trgm``) GIN indexes; SQLite scans one narrow column. The status is matched
apart, as the statuses whose name holds the text, because an offer past its expiry reads
as expired before `expire` has run.

The texts are written when the row is made (`offer`) and refreshed whenever a field they
hold changes: a new code and expiry (`resend`), a receiver and a connection (`redeem`,
`reject`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select

from basecone_migrate.db.tables import (
    environments,
    migration_item_search,
    migration_items,
    migrations,
)
from basecone_migrate.domain import transfercode

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

#: How the overview shows a transfercode: never more than its last group.
HINT_PREFIX = transfercode.masked("")


def _moments(value: datetime) -> str:
    """A time as the table shows it and as the JSON does, so either can be searched."""
    return f"{value:%Y-%m-%d %H:%M} {value.isoformat()}"


def offered_text(*, migration_id: int, administration_id: int, name: str, code: str, email: str,
                 created_at: datetime, expires_at: datetime, code_hint: str,
                 target: str | None, recipients: Sequence[str]) -> str:
    parts = [str(migration_id), str(administration_id), name, code, email, _moments(created_at),
             _moments(expires_at), HINT_PREFIX + code_hint, target or "", *recipients]
    return " | ".join(parts).lower()


def received_text(*, migration_id: int, administration_id: int, name: str, created_at: datetime,
                  system: str, source: str, package: str) -> str:
    parts = [str(migration_id), str(administration_id), name, system, _moments(created_at), source,
             package]
    return " | ".join(parts).lower()


def texts(item: Any, migration: Any, source: str, target: str | None,
          recipients: Sequence[str]) -> dict[str, str]:
    """Both texts for one item, from its rows (or models) as they are now."""
    return {
        "offered": offered_text(
            migration_id=migration.id, administration_id=item.administration_id, name=item.name,
            code=item.source_code, email=item.source_email, created_at=migration.created_at,
            expires_at=migration.expires_at, code_hint=migration.code_hint, target=target,
            recipients=recipients),
        "received": received_text(
            migration_id=migration.id, administration_id=item.administration_id, name=item.name,
            created_at=migration.created_at,
            system=item.target_accounting_system_id or item.package, source=source,
            package=item.package),
    }


def refresh(session: Session, migration_id: int) -> None:
    """Rewrite the search texts of one migration's items (a handful of rows), as the
    database holds them after the session's pending changes."""
    from basecone_migrate.services.migrations.states import recipients_by_migration

    session.flush()
    migration = session.execute(select(migrations).where(migrations.c.id == migration_id)).one()
    codes = dict(session.execute(select(environments.c.id, environments.c.code).where(
        environments.c.id.in_([migration.source_environment_id,
                               migration.target_environment_id or 0]))).all())
    recipients = recipients_by_migration(session, [migration_id])[migration_id]
    items = session.execute(select(migration_items)
                            .where(migration_items.c.migration_id == migration_id)).all()
    if not items:
        return
    session.execute(delete(migration_item_search).where(
        migration_item_search.c.item_id.in_([item.id for item in items])))
    session.execute(insert(migration_item_search), [
        {"item_id": item.id, **texts(item, migration, codes[migration.source_environment_id],
                                     codes.get(migration.target_environment_id or 0), recipients)}
        for item in items])


def needle(text: str) -> str:
    """The pattern for ``LIKE ... ESCAPE '\\'``: lower-case, wildcards taken literally."""
    escaped = text.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
