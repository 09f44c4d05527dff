"""Where each redeemed administration goes: the connection and code in the receiving
environment, from --link, the catalogue, or a question at a terminal."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from basecone_migrate.batches import summary
from basecone_migrate.db.models import (
    AccountingSystem,
    CatalogueEntry,
    Environment,
    MigrationItem,
)
from basecone_migrate.domain.rules import (
    package_label,
    same_name,
)
from basecone_migrate.errors import (
    BaseconeError,
    Refused,
    UsageProblem,
)
from basecone_migrate.services import lookup
from basecone_migrate.services.links import check_link
from basecone_migrate.services.lookup import admin_label
from basecone_migrate.services.migrations.common import (
    Questions,
    item_in,
)

# -- where each administration goes ------------------------------------------------------------


@dataclass
class Link:
    item: MigrationItem
    connection: AccountingSystem
    code: str
    name: str  # the administration's name once linked (the catalogue's, with --take-catalogue-name)


def link_options(s: Session, environment: Environment, package: str) -> list[AccountingSystem]:
    return list(s.scalars(select(AccountingSystem).where(
        AccountingSystem.environment_id == environment.id, AccountingSystem.package == package)
        .order_by(AccountingSystem.id)))


def item_view(item: MigrationItem) -> dict[str, Any]:
    return {"administration_id": item.administration_id, "code": item.source_code, "name": item.name,
            "package": item.package, "email": item.source_email}


def option_view(s: Session, connection: AccountingSystem) -> dict[str, Any]:
    entries = s.execute(select(CatalogueEntry.code, CatalogueEntry.name).where(
        CatalogueEntry.accounting_system_id == connection.id).order_by(CatalogueEntry.code)).all()
    return {"id": connection.id, "name": connection.name,
            "catalogue": [{"code": c, "name": n} for c, n in entries]}


def plan_links(s: Session, chosen: list[MigrationItem], items: list[MigrationItem],
                links: Sequence[tuple[str, str, str | None]], target: Environment,
                ask: Questions | None, lines: Sequence[int] | None = None,
                take_name: bool = False) -> list[Link]:
    """Where each taken administration goes. ``lines`` (a batch from `--links FILE`, one per
    link) collects every refused link, named by its line, instead of stopping at the first.
    ``take_name``: an administration linked to an entry of another name takes that name."""
    problems: list[tuple[str, str]] = []

    def attempt(where: str, check: Any) -> Any:
        if lines is None:
            return check()
        try:
            return check()
        except BaseconeError as exc:
            problems.append((where, exc.message))
            return None

    explicit: dict[int, tuple[str, str | None]] = {}
    line_of: dict[int, str] = {}
    for position, (reference, connection_id, code) in enumerate(links):
        where = f"line {lines[position]}" if lines is not None else ""

        def claim(reference: str = reference) -> MigrationItem:
            item = item_in(items, reference)
            if item not in chosen:
                raise UsageProblem(f"--link names {admin_label(item)}, which is not taken (see --select)")
            if item.id in explicit:
                raise UsageProblem(f"--link names {admin_label(item)} twice")
            return item

        item = attempt(where, claim)
        if item is not None:
            explicit[item.id] = (connection_id, code)
            line_of[item.id] = where
    plans: list[Link] = []
    for item in chosen:
        plan = attempt(line_of.get(item.id) or admin_label(item),
                       lambda item=item: _plan_one(s, item, explicit, target, ask, plans, take_name))
        if plan is not None:
            plans.append(plan)
    if problems:
        named = summary([f"{where}: {message}" for where, message in problems])
        raise Refused(f"{len(problems)} of {len(links)} links refused, so nothing changed: {named}")
    return plans


def _plan_one(s: Session, item: MigrationItem, explicit: dict[int, tuple[str, str | None]],
              target: Environment, ask: Questions | None, plans: list[Link],
              take_name: bool = False) -> Link:
    admin = item.administration
    package = admin.accounting_system.package
    if item.id in explicit:
        connection_id, code = explicit[item.id]
        connection = lookup.accounting_system(s, connection_id)
        code = code or admin.code
    else:
        options = link_options(s, target, package)
        if not options:
            raise Refused(f"environment {target.code} has no {package_label(package)} connection "
                          f"for {admin_label(item)}: add one first (the package never changes)")
        matching = [c for c in options if any(same_name(name, admin.name) for name in s.scalars(
            select(CatalogueEntry.name).where(CatalogueEntry.accounting_system_id == c.id,
                                              CatalogueEntry.code == admin.code)))]
        if len(matching) == 1:
            connection, code = matching[0], admin.code
        elif ask is not None:
            connection_id, code = ask.link(item_view(item), [option_view(s, c) for c in options])
            connection = lookup.accounting_system(s, connection_id)
        else:
            why = (f"{len(matching)} connections have {admin.code} {admin.name} in their catalogue"
                   if matching else f"no connection has {admin.code} {admin.name} in its catalogue")
            names = ", ".join(c.id for c in (matching or options))
            raise UsageProblem(f"say where {admin_label(item)} goes with --link "
                               f"{item.source_code}=CONNECTION[:CODE] ({why}; "
                               f"{package_label(package)} connections: {names})")
    name = check_link(s, admin, connection, code, target, take_name=take_name)
    for other in plans:
        if (other.connection.id, other.code) == (connection.id, code):
            raise Refused(f"{admin_label(other.item)} and {admin_label(item)} are both linked to "
                          f"code {code} of connection {connection.id}")
        if (other.code, other.name) == (code, name):
            raise Refused(f"{admin_label(other.item)} and {admin_label(item)} would both be "
                          f"{code} {name} in {target.code}")
    return Link(item, connection, code, name)
