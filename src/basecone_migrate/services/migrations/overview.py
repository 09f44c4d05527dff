"""The migration overview (`list`) and the transfer view (`status`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import String, and_, cast, exists, func, literal, or_, select
from sqlalchemy.orm import Session

from basecone_migrate.db.models import Environment, Migration, MigrationItem, Recipient, User
from basecone_migrate.domain import transfercode
from basecone_migrate.domain.rules import SUPERUSER
from basecone_migrate.errors import NotAllowed
from basecone_migrate.runtime import Runtime
from basecone_migrate.services import lookup
from basecone_migrate.services.locks import TransferLock
from basecone_migrate.services.migrations.common import (
    effective_status,
    item_status,
    items_of,
    migration_status,
    recipients_of,
)

#: How the overview shows a transfercode: never more than its last group.
HINT_PREFIX = transfercode.masked("")


def list_migrations(rt: Runtime, *, search: str | None = None, status: str | None = None,
                    offered: bool = True, received: bool = True, limit: int = 100,
                    offset: int = 0) -> dict[str, Any]:
    now = rt.now()
    with rt.uow(read_only=True) as uow:
        s = uow.session
        user = lookup.acting_user(rt, s)
        environment = user.environment
        if user.role != SUPERUSER:
            raise NotAllowed(f"{user.email} is not a Superuser of {environment.code}: the migration "
                             "overview is for Superusers")
        result: dict[str, Any] = {"offered": [], "offered_total": 0, "received": [],
                                  "received_total": 0}  # a section left out stays, empty
        if offered:
            result["offered"], result["offered_total"] = _offered_rows(s, environment, now, search,
                                                                       status, limit, offset)
        if received:
            result["received"], result["received_total"] = _received_rows(s, environment, now, search,
                                                                          status, limit, offset)
        return result


def _received_by(environment_id: int) -> Any:
    """Migrations this environment received, or that were offered to one of its users."""
    addressed_here = (select(Recipient.migration_id).join(User, User.email == Recipient.email)
                      .where(User.environment_id == environment_id))
    return or_(Migration.target_environment_id == environment_id,
               and_(Migration.target_environment_id.is_(None), Migration.id.in_(addressed_here)))


def _text(column: Any) -> Any:
    return func.lower(cast(column, String))


def _matching(search: str | None, columns: Sequence[Any]) -> Any:
    needle = (search or "").strip().lower()
    return or_(*(_text(c).contains(needle, autoescape=True) for c in columns))


def _page(s: Session, query: Any, limit: int, offset: int) -> tuple[list[Any], int]:
    total = s.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = s.execute(query.order_by(Migration.created_at.desc(), MigrationItem.id)
                     .limit(limit).offset(offset)).all()
    return rows, int(total or 0)


def _recipient_map(s: Session, migration_ids: set[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = defaultdict(list)
    if migration_ids:
        for mid, email in s.execute(select(Recipient.migration_id, Recipient.email).where(
                Recipient.migration_id.in_(migration_ids)).order_by(Recipient.email)):
            found[mid].append(email)
    return found


def _offered_rows(s: Session, environment: Environment, now: datetime, search: str | None,
                  status: str | None, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    state = effective_status(now)
    target = Environment.__table__.alias("target")
    query = (select(MigrationItem.migration_id, MigrationItem.administration_id, MigrationItem.name,
                    MigrationItem.source_code, MigrationItem.source_email, Migration.created_at,
                    Migration.expires_at, Migration.code_hint, state.label("status"),
                    target.c.code.label("target"))
             .join(Migration, Migration.id == MigrationItem.migration_id)
             .outerjoin(target, target.c.id == Migration.target_environment_id)
             .where(Migration.source_environment_id == environment.id))
    if status:
        query = query.where(state == status)
    if search:
        query = query.where(or_(
            _matching(search, [MigrationItem.migration_id, MigrationItem.administration_id,
                               MigrationItem.name, MigrationItem.source_code, MigrationItem.source_email,
                               Migration.created_at, Migration.expires_at,
                               literal(HINT_PREFIX, String) + Migration.code_hint, state,
                               target.c.code]),
            exists().where(Recipient.migration_id == Migration.id,
                           func.lower(Recipient.email).contains(search.strip().lower(), autoescape=True))))
    rows, total = _page(s, query, limit, offset)
    recipients = _recipient_map(s, {r.migration_id for r in rows})
    return [{
        "migration_id": r.migration_id,
        "administration_id": r.administration_id,
        "administration": r.name,
        "administration_code": r.source_code,
        "administration_email": r.source_email,
        "recipients": recipients[r.migration_id],
        "created_at": r.created_at,
        "expires_at": r.expires_at,
        "transfercode_hint": HINT_PREFIX + r.code_hint,
        "status": r.status,
        "target_environment": r.target,
    } for r in rows], total


def _received_rows(s: Session, environment: Environment, now: datetime, search: str | None,
                   status: str | None, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    state = effective_status(now)
    source = Environment.__table__.alias("source")
    system = func.coalesce(MigrationItem.target_accounting_system_id, MigrationItem.package)
    query = (select(MigrationItem.migration_id, MigrationItem.administration_id, MigrationItem.name,
                    system.label("accounting_system"), MigrationItem.package, Migration.created_at,
                    state.label("status"), source.c.code.label("source"))
             .join(Migration, Migration.id == MigrationItem.migration_id)
             .join(source, source.c.id == Migration.source_environment_id)
             .where(_received_by(environment.id)))
    if status:
        query = query.where(state == status)
    if search:
        query = query.where(_matching(search, [
            MigrationItem.migration_id, MigrationItem.administration_id, MigrationItem.name, system,
            Migration.created_at, state, source.c.code]))
    rows, total = _page(s, query, limit, offset)
    return [{
        "migration_id": r.migration_id,
        "administration_id": r.administration_id,
        "administration": r.name,
        "accounting_system": r.accounting_system,
        "created_at": r.created_at,
        "status": r.status,
        "source_environment": r.source,
        "package": r.package,
    } for r in rows], total


def _status_view(rt: Runtime, s: Session, migration: Migration, now: datetime) -> dict[str, Any]:
    items = []
    for item in items_of(s, migration):
        seconds = None
        if item.started_at and item.finished_at:
            seconds = round((item.finished_at - item.started_at).total_seconds(), 3)
        items.append({
            "administration_id": item.administration_id,
            "administration": item.name,
            "status": item_status(item, now),
            "documents_done": item.documents_done,
            "documents_total": item.documents_total,
            "bytes_done": item.bytes_done,
            "bytes_total": item.bytes_total,
            "started_at": item.started_at,
            "finished_at": item.finished_at,
            "seconds": seconds,
            "mode": item.mode,
            "timings": item.timings,
            "error": item.error,
            "from": {"accounting_system": item.source_accounting_system_id, "code": item.source_code,
                     "email": item.source_email},
            "to": {"accounting_system": item.target_accounting_system_id, "code": item.target_code,
                   "email": item.target_email},
        })
    statuses = [i["status"] for i in items]
    running = "in_progress" in statuses and TransferLock(rt, migration.id).is_running()
    return {
        "migration_id": migration.id,
        "status": migration_status(statuses),
        "transfer_running": running,
        "source_environment": migration.source_environment.code,
        "target_environment": migration.target_environment.code if migration.target_environment else None,
        "sender": migration.created_by.email,
        "recipients": recipients_of(s, migration),
        "created_at": migration.created_at,
        "expires_at": migration.expires_at,
        "redeemed_at": migration.redeemed_at,
        "redeemed_by": migration.redeemed_by.email if migration.redeemed_by else None,
        "transfercode_hint": HINT_PREFIX + migration.code_hint,
        "items": items,
    }


def status(rt: Runtime, migration_id: int | None = None, limit: int = 20) -> Any:
    now = rt.now()
    with rt.uow(read_only=True) as uow:
        s = uow.session
        if migration_id is not None:
            return _status_view(rt, s, lookup.migration(s, migration_id), now)
        query = select(Migration).order_by(Migration.created_at.desc(), Migration.id.desc()).limit(limit)
        user = lookup.optional_acting_user(rt, s)
        if user is not None:
            query = query.where(or_(Migration.source_environment_id == user.environment_id,
                                    _received_by(user.environment_id)))
        return [_status_view(rt, s, m, now) for m in s.scalars(query)]


# -- resume, expire ------------------------------------------------------------------------------
