"""Read-only views: environments and administrations, as plain dicts for tables and JSON.

SQLAlchemy Core on a read-only connection: these commands never load the ORM.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from basecone_migrate.db.tables import (
    accounting_systems,
    administration_access,
    administrations,
    documents,
    environments,
    users,
    workflow_authorisers,
    workflows,
)
from basecone_migrate.domain.rules import administration_email
from basecone_migrate.runtime import Runtime
from basecone_migrate.services import aliases, lookup
from basecone_migrate.settings import mask_url_password


def _per_environment(db: Any, column: Any) -> dict[int, int]:
    return dict(db.execute(select(column, func.count()).group_by(column)).all())


def environments_list(rt: Runtime) -> list[dict[str, Any]]:
    with rt.reading() as db:
        counts = {
            "users": _per_environment(db, users.c.environment_id),
            "accounting_systems": _per_environment(db, accounting_systems.c.environment_id),
            "administrations": _per_environment(db, administrations.c.environment_id),
        }
        docs = {row[0]: (row[1], row[2]) for row in db.execute(
            select(administrations.c.environment_id, func.count(documents.c.id),
                   func.coalesce(func.sum(documents.c.size), 0))
            .join(documents, documents.c.administration_id == administrations.c.id)
            .group_by(administrations.c.environment_id))}
        return [
            {
                "code": env.code,
                "name": env.name,
                "plan": env.plan,
                "storage": mask_url_password(rt.archive_url(env)),  # credentials in it are not shown
                **{kind: found.get(env.id, 0) for kind, found in counts.items()},
                "documents": docs.get(env.id, (0, 0))[0],
                "bytes": int(docs.get(env.id, (0, 0))[1]),
            }
            for env in db.execute(select(environments).order_by(environments.c.code))
        ]


def _administration_query() -> Any:
    totals = (
        select(documents.c.administration_id.label("administration_id"),
               func.count(documents.c.id).label("documents"),
               func.coalesce(func.sum(documents.c.size), 0).label("bytes"))
        .group_by(documents.c.administration_id)
        .subquery()
    )
    admins = administrations.c
    return (
        select(admins.id, environments.c.code.label("environment"), admins.code, admins.name,
               admins.accounting_system_id, accounting_systems.c.name.label("accounting_system_name"),
               accounting_systems.c.package,
               func.coalesce(totals.c.documents, 0).label("documents"),
               func.coalesce(totals.c.bytes, 0).label("bytes"))
        .join(environments, environments.c.id == admins.environment_id)
        .join(accounting_systems, accounting_systems.c.id == admins.accounting_system_id)
        .outerjoin(totals, totals.c.administration_id == admins.id)
    )


def _row(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "environment": row.environment,
        "code": row.code,
        "name": row.name,
        "accounting_system": row.accounting_system_id,
        "accounting_system_name": row.accounting_system_name,
        "package": row.package,
        "email": administration_email(row.environment, row.code),
        "documents": int(row.documents),
        "bytes": int(row.bytes),
    }


def administrations_list(rt: Runtime, environment_code: str | None = None) -> list[dict[str, Any]]:
    with rt.reading() as db:
        query = _administration_query().order_by(environments.c.code, administrations.c.code,
                                                 administrations.c.id)
        if environment_code is not None:
            environment = lookup.environment_row(db, environment_code)
            query = query.where(administrations.c.environment_id == environment.id)
        return [_row(row) for row in db.execute(query)]


def _emails(db: Any, link: Any, where: Any) -> list[str]:
    return list(db.scalars(select(users.c.email).join(link, link.c.user_id == users.c.id)
                           .where(where).order_by(users.c.email)))


def administration(rt: Runtime, reference: str) -> dict[str, Any]:
    with rt.reading() as db:
        admin = lookup.administration_row_for(rt, db, reference)
        detail = _row(db.execute(_administration_query().where(administrations.c.id == admin.id)).one())
        detail["users"] = _emails(db, administration_access,
                                  administration_access.c.administration_id == admin.id)
        detail["workflows"] = [
            {"name": flow.name,
             "authorisers": _emails(db, workflow_authorisers, workflow_authorisers.c.workflow_id == flow.id)}
            for flow in db.execute(select(workflows.c.id, workflows.c.name)
                                   .where(workflows.c.administration_id == admin.id)
                                   .order_by(workflows.c.name))]
        detail["environment_name"] = admin.environment_name
        detail["aliases"] = aliases.of(db, admin.id)
        return detail
