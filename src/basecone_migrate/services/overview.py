"""Read-only views: environments and administrations, as plain dicts for tables and JSON."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from basecone_migrate.db.models import (
    Access,
    AccountingSystem,
    Administration,
    Document,
    Environment,
    User,
    Workflow,
    WorkflowAuthoriser,
)
from basecone_migrate.domain.rules import administration_email
from basecone_migrate.runtime import Runtime
from basecone_migrate.services import aliases, lookup


def environments(rt: Runtime) -> list[dict[str, Any]]:
    with rt.uow(read_only=True) as uow:
        s = uow.session
        users = dict(s.execute(select(User.environment_id, func.count()).group_by(User.environment_id)).all())
        systems = dict(s.execute(select(AccountingSystem.environment_id, func.count())
                                 .group_by(AccountingSystem.environment_id)).all())
        admins = dict(s.execute(select(Administration.environment_id, func.count())
                                .group_by(Administration.environment_id)).all())
        docs = {row[0]: (row[1], row[2]) for row in s.execute(
            select(Administration.environment_id, func.count(Document.id),
                   func.coalesce(func.sum(Document.size), 0))
            .join(Document, Document.administration_id == Administration.id)
            .group_by(Administration.environment_id))}
        return [
            {
                "code": env.code,
                "name": env.name,
                "plan": env.plan,
                "storage": rt.archive_url(env),
                "users": users.get(env.id, 0),
                "accounting_systems": systems.get(env.id, 0),
                "administrations": admins.get(env.id, 0),
                "documents": docs.get(env.id, (0, 0))[0],
                "bytes": int(docs.get(env.id, (0, 0))[1]),
            }
            for env in s.scalars(select(Environment).order_by(Environment.code))
        ]


def _administration_query():
    totals = (
        select(Document.administration_id.label("administration_id"),
               func.count(Document.id).label("documents"),
               func.coalesce(func.sum(Document.size), 0).label("bytes"))
        .group_by(Document.administration_id)
        .subquery()
    )
    return (
        select(Administration.id, Environment.code.label("environment"), Administration.code,
               Administration.name, Administration.accounting_system_id,
               AccountingSystem.name.label("accounting_system_name"), AccountingSystem.package,
               func.coalesce(totals.c.documents, 0).label("documents"),
               func.coalesce(totals.c.bytes, 0).label("bytes"))
        .join(Environment, Environment.id == Administration.environment_id)
        .join(AccountingSystem, AccountingSystem.id == Administration.accounting_system_id)
        .outerjoin(totals, totals.c.administration_id == Administration.id)
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


def administrations(rt: Runtime, environment_code: str | None = None) -> list[dict[str, Any]]:
    with rt.uow(read_only=True) as uow:
        query = _administration_query().order_by(Environment.code, Administration.code, Administration.id)
        if environment_code is not None:
            environment = lookup.environment_by_code(uow.session, environment_code)
            query = query.where(Administration.environment_id == environment.id)
        return [_row(row) for row in uow.session.execute(query)]


def administration_detail(session: Session, admin: Administration) -> dict[str, Any]:
    row = session.execute(_administration_query().where(Administration.id == admin.id)).one()
    detail = _row(row)
    detail["users"] = list(session.scalars(
        select(User.email).join(Access, Access.user_id == User.id)
        .where(Access.administration_id == admin.id).order_by(User.email)))
    workflows = []
    for flow in session.scalars(select(Workflow).where(Workflow.administration_id == admin.id)
                                .order_by(Workflow.name)):
        authorisers = list(session.scalars(
            select(User.email).join(WorkflowAuthoriser, WorkflowAuthoriser.user_id == User.id)
            .where(WorkflowAuthoriser.workflow_id == flow.id).order_by(User.email)))
        workflows.append({"name": flow.name, "authorisers": authorisers})
    detail["workflows"] = workflows
    detail["environment_name"] = admin.environment.name
    detail["aliases"] = aliases.of(session, admin.id)
    return detail


def administration(rt: Runtime, reference: str) -> dict[str, Any]:
    with rt.uow(read_only=True) as uow:
        admin = lookup.administration_for(rt, uow.session, reference)
        return administration_detail(uow.session, admin)
