"""Old mail addresses kept as aliases, so invoices sent to them can still be routed.

When an administration's address changes (a move to another office, a new code), the
old one becomes an alias of the administration. A live address always wins: an alias
that becomes someone's live address again is dropped.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from basecone_migrate.db.models import Administration, Alias, Environment
from basecone_migrate.domain.rules import MAIL_DOMAIN


def record_change(session: Session, administration_id: int, old: str, new: str, at: datetime) -> None:
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


def of(session: Session, administration_id: int) -> list[str]:
    return list(session.scalars(select(Alias.email).where(Alias.administration_id == administration_id)
                                .order_by(Alias.created_at, Alias.id)))


def route(session: Session, address: str) -> Administration | None:
    """The administration a mail address reaches: its live address first, else an alias."""
    local, _, domain = address.strip().partition("@")
    office, _, code = local.partition(".")
    if domain.lower() == MAIL_DOMAIN and office and code:
        live = session.scalar(select(Administration).join(Environment).where(
            func.upper(Environment.code) == office.upper(), Administration.code == code))
        if live is not None:
            return live
    return routed_alias(session, address)


def routed_alias(session: Session, address: str) -> Administration | None:
    """The administration an earlier address of it (an alias) reaches, if any."""
    alias = session.scalar(select(Alias).where(func.lower(Alias.email) == address.strip().lower()))
    return session.get(Administration, alias.administration_id) if alias else None
