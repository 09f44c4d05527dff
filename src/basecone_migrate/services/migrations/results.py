"""What redeem, reject and resume answer: each administration as it stands."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from basecone_migrate.db.models import (
    Document,
    Migration,
)
from basecone_migrate.domain.lifecycle import ItemStatus
from basecone_migrate.domain.rules import (
    administration_email,
)
from basecone_migrate.runtime import Runtime
from basecone_migrate.services import lookup
from basecone_migrate.services.migrations.common import (
    item_status,
    items_of,
    migration_status,
)


def archive_size(s: Session, administration_id: int) -> tuple[int, int]:
    count, size = s.execute(select(func.count(Document.id), func.coalesce(func.sum(Document.size), 0))
                            .where(Document.administration_id == administration_id)).one()
    return int(count), int(size)



def result_items(s: Session, migration: Migration, now: datetime) -> list[dict[str, Any]]:
    rows = []
    for item in items_of(s, migration):
        taken = item.target_accounting_system_id is not None and item.status != ItemStatus.REJECTED
        if taken:
            target = migration.target_environment
            assert target is not None
            documents, size = item.documents_total, item.bytes_total
            where = (item.target_accounting_system_id, item.target_code,
                     item.target_email or administration_email(target.code, item.target_code or ""))
        else:  # not taken: still where it was, with its archive
            documents, size = archive_size(s, item.administration_id)
            where = (item.source_accounting_system_id, item.source_code, item.source_email)
        renamed = taken and item.target_name is not None
        rows.append({
            "administration_id": item.administration_id,
            "administration": item.target_name if renamed else item.name,
            "renamed_from": item.name if renamed else None,
            "status": item_status(item, now),
            "accounting_system": where[0],
            "code": where[1],
            "email": where[2],
            "documents": documents,
            "bytes": size,
        })
    return rows


def redeem_payload(rt: Runtime, migration_id: int) -> dict[str, Any]:
    now = rt.now()
    with rt.uow(read_only=True) as uow:
        migration = lookup.migration(uow.session, migration_id)
        items = result_items(uow.session, migration, now)
        return {"migration_id": migration.id, "status": migration_status([i["status"] for i in items]),
                "items": items}
