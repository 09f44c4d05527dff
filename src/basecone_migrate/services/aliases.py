"""Old mail addresses kept as aliases, so invoices sent to them can still be routed.

When an administration's address changes (a move to another office, a new code), the
old one becomes an alias of the administration. A live address always wins: an alias
that becomes someone's live address again is dropped.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select

from basecone_migrate.db.tables import administration_aliases, administrations, environments
from basecone_migrate.domain.rules import MAIL_DOMAIN

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


def record_change(session: Session, administration_id: int, old: str, new: str, at: datetime) -> None:
    from basecone_migrate.db.models import Alias

    if old.lower() == new.lower():
        return
    session.execute(delete(Alias).where(func.lower(Alias.email) == new.lower()))
    existing = session.scalar(select(Alias).where(func.lower(Alias.email) == old.lower()))
    if existing is not None:  # the address moves on to its latest owner
        existing.administration_id = administration_id
        existing.created_at = at
    else:
        session.add(Alias(administration_id=administration_id, email=old, created_at=at))
    session.flush()


def of(db: Any, administration_id: int) -> list[str]:
    aliases = administration_aliases.c
    return list(db.scalars(select(aliases.email).where(aliases.administration_id == administration_id)
                           .order_by(aliases.created_at, aliases.id)))


def route(db: Any, address: str) -> int | None:
    """The id of the administration a mail address reaches: its live address first, else
    an alias (a Core connection or an ORM session)."""
    local, _, domain = address.strip().partition("@")
    office, _, code = local.partition(".")
    if domain.lower() == MAIL_DOMAIN and office and code:
        live = db.scalar(select(administrations.c.id)
                         .join(environments, environments.c.id == administrations.c.environment_id)
                         .where(func.upper(environments.c.code) == office.upper(),
                                administrations.c.code == code))
        if live is not None:
            return int(live)
    return routed_alias(db, address)


def routed_alias(db: Any, address: str) -> int | None:
    """The id of the administration an earlier address of it (an alias) reaches, if any."""
    aliases = administration_aliases.c
    found = db.scalar(select(aliases.administration_id)
                      .where(func.lower(aliases.email) == address.strip().lower()))
    return int(found) if found is not None else None
