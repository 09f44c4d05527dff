"""Same-environment migrations (kinds 2, 3 and 5): re-link an administration, re-code it, or both.

The administration keeps its id and its whole archive; only its connection and code
change, and with the code its mail address (the old one stays as an alias). The link
rules are shared with `redeem` (kind 4), which checks a link in the receiving office.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from basecone_migrate.batches import Row, summary
from basecone_migrate.db.models import (
    AccountingSystem,
    Administration,
    CatalogueEntry,
    Environment,
    Migration,
    MigrationItem,
)
from basecone_migrate.db.tables import UNFINISHED_STATUSES
from basecone_migrate.domain.rules import (
    administration_email,
    package_label,
    same_name,
    same_package,
)
from basecone_migrate.errors import Refused, UsageProblem
from basecone_migrate.runtime import Runtime
from basecone_migrate.services import aliases, audit, lookup
from basecone_migrate.services.lookup import admin_label


def check_link(s: Session, admin: Administration, connection: AccountingSystem, code: str,
               environment: Environment, *, take_name: bool = False) -> str:
    """Rules 3, 10, 11 and 18 for linking ``admin`` to (connection, code) in ``environment``,
    and the catalogue entry names the same company (`same_name`) unless ``take_name`` says
    the administration takes the entry's name. Returns the name it has once linked."""
    if connection.environment_id != environment.id:
        raise Refused(f"connection {connection.id} belongs to environment "
                      f"{connection.environment.code}, not {environment.code}")
    package = admin.accounting_system.package
    if not same_package(connection.package, package):
        raise Refused(f"administration {admin_label(admin)} is a {package_label(package)} "
                      f"administration and connection {connection.id} is "
                      f"{package_label(connection.package)}: the package never changes")
    entry = s.scalar(select(CatalogueEntry).where(CatalogueEntry.accounting_system_id == connection.id,
                                                  CatalogueEntry.code == code))
    if entry is None:
        raise Refused(f"code {code} is not in the catalogue of connection {connection.id}: move the "
                      f"administration in {package_label(package)} first, then load the catalogue")
    name = entry.name if take_name else admin.name
    holder = s.scalar(select(Administration).where(Administration.accounting_system_id == connection.id,
                                                   Administration.code == code,
                                                   Administration.id != admin.id))
    if holder is not None:
        raise Refused(f"code {code} of connection {connection.id} is already linked to administration "
                      f"{admin_label(holder)}: administrations are never merged")
    # A move that is redeemed but not finished has claimed its link already.
    promised = s.scalar(select(MigrationItem).join(Migration).where(
        MigrationItem.status.in_(UNFINISHED_STATUSES),
        MigrationItem.administration_id != admin.id,
        or_(and_(MigrationItem.target_accounting_system_id == connection.id,
                 MigrationItem.target_code == code),
            and_(Migration.target_environment_id == environment.id, MigrationItem.target_code == code,
                 func.coalesce(MigrationItem.target_name, MigrationItem.name) == name))))
    if promised is not None:
        raise Refused(f"code {code} of connection {connection.id} is promised to administration "
                      f"{admin_label(promised)}, which is moving there (migration "
                      f"{promised.migration_id}, {promised.status})")
    twin = s.scalar(select(Administration).where(Administration.environment_id == environment.id,
                                                 Administration.code == code,
                                                 Administration.name == name,
                                                 Administration.id != admin.id))
    if twin is not None:
        raise Refused(f"environment {environment.code} already holds administration {code} "
                      f"{name} (id {twin.id}): an environment holds each code and name once")
    # Last: a code that is taken is refused whatever the name; a name only asks for the option.
    if not take_name and not same_name(entry.name, admin.name):
        raise Refused(f"code {code} of connection {connection.id} is {entry.name!r} in the catalogue, "
                      f"not {admin.name!r}: check the code, or pass --take-catalogue-name to link "
                      f"administration {admin.id} to it and rename it {entry.name!r}")
    return name


def _state(admin: Administration, environment: Environment) -> dict[str, str]:
    return {"accounting_system": admin.accounting_system_id, "code": admin.code,
            "email": administration_email(environment.code, admin.code), "name": admin.name}


def _link_one(rt: Runtime, s: Session, user: Any, reference: str, system: str | None,
              code: str | None, now: Any, apply: bool,
              take_name: bool = False) -> tuple[dict[str, Any], list[int]]:
    """Check one re-link or re-code in the session's transaction, and with ``apply`` make
    it (flushed, so that the next one in a batch sees it). Returns its result and the mails
    of the old offers it expired. ``take_name``: the administration takes the catalogue
    entry's name where it differs."""
    from basecone_migrate.services.migrations.common import expire_items, open_item

    if system is None and code is None:
        raise UsageProblem("say what changes: --system CONNECTION, --code CODE, or both")
    admin = lookup.administration(s, reference, user.environment)
    environment = admin.environment
    lookup.require_superuser(user, environment, "re-link or re-code its administrations")
    connection = lookup.accounting_system(s, system) if system else admin.accounting_system
    new_code = code.strip() if code else admin.code
    if (connection.id, new_code) == (admin.accounting_system_id, admin.code):
        raise UsageProblem(f"administration {admin_label(admin)} is already linked to "
                           f"{connection.id} under code {new_code}: nothing to change")
    item = open_item(s, admin.id, now)
    if item is not None:
        raise Refused(f"administration {admin_label(admin)} is in migration {item.migration_id} "
                      f"({item.status}): revoke or finish that migration first")
    name = check_link(s, admin, connection, new_code, environment, take_name=take_name)

    kind = {(True, True): 5, (True, False): 3, (False, True): 2}[
        (connection.id != admin.accounting_system_id, new_code != admin.code)]
    before = _state(admin, environment)
    after = {"accounting_system": connection.id, "code": new_code,
             "email": administration_email(environment.code, new_code), "name": name}
    result = {"administration_id": admin.id, **after, "kind": kind, "previous": before}
    if not apply:
        return result, []
    _, mail_ids = expire_items(rt, s, now, actor=audit.SYSTEM, administration_ids=[admin.id])
    admin.accounting_system_id = connection.id
    admin.code = new_code
    admin.name = name
    aliases.record_change(s, admin.id, before["email"], after["email"], now)
    audit.record(s, at=now, actor=user.email, action="link", administration_id=admin.id,
                 kind=kind, before=before, after=after)
    s.flush()
    return result, mail_ids


def link(rt: Runtime, reference: str, *, system: str | None, code: str | None,
         dry_run: bool = False, take_name: bool = False) -> dict[str, Any]:
    from basecone_migrate.mail import Postman
    from basecone_migrate.services.migrations.common import require_mail_settings

    if system is None and code is None:
        raise UsageProblem("say what changes: --system CONNECTION, --code CODE, or both")
    require_mail_settings(rt)  # an old offer this link expires is reported by mail
    now = rt.now()
    with rt.uow(read_only=dry_run) as uow:
        s = uow.session
        user = lookup.acting_user(rt, s)
        result, mail_ids = _link_one(rt, s, user, reference, system, code, now, apply=not dry_run,
                                     take_name=take_name)
        if dry_run:
            return {**result, "dry_run": True}
        uow.commit()
    Postman(rt).deliver(mail_ids)
    return result


def link_many(rt: Runtime, rows: Sequence[Row], *, dry_run: bool = False,
              take_name: bool = False) -> dict[str, Any]:
    """`link --from FILE`: every row checked, in order, each as if the rows before it were
    made (so one row may free a code that a later one takes); all made in one transaction,
    or, when any row is refused, none (exit 1, every refused row named in the report).
    ``dry_run`` checks the same way and changes nothing; ``take_name`` holds for every row."""
    from basecone_migrate.errors import BaseconeError
    from basecone_migrate.mail import Postman
    from basecone_migrate.services.migrations.common import require_mail_settings

    require_mail_settings(rt)
    now = rt.now()
    report: list[dict[str, Any]] = []
    mail_ids: list[int] = []
    with rt.uow() as uow:  # a dry run makes the changes too, to check each row after the
        s = uow.session    # ones before it, and rolls them back
        user = lookup.acting_user(rt, s)
        seen: dict[int, int] = {}
        for row in rows:
            entry: dict[str, Any] = {"line": row.line, "admin": row["admin"], "system": row["system"],
                                     "code": row["code"]}
            try:
                with s.begin_nested():  # a refused row leaves nothing of itself behind
                    result, mails = _link_one(rt, s, user, row["admin"] or "", row["system"],
                                              row["code"], now, apply=True, take_name=take_name)
                    if result["administration_id"] in seen:
                        raise UsageProblem(f"administration {result['administration_id']} is also on "
                                           f"line {seen[result['administration_id']]}: one row each")
                seen[result["administration_id"]] = row.line
                mail_ids += mails
                entry.update(result, status="would change" if dry_run else "changed", error=None)
            except BaseconeError as exc:
                entry.update(status="refused", error=exc.message)
            report.append(entry)
        refused = [e for e in report if e["status"] == "refused"]
        payload = {"dry_run": dry_run, "rows": report, "changed": 0 if (dry_run or refused) else len(report),
                   "refused": len(refused)}
        if refused:
            named = summary([f"line {e['line']}: {e['error']}" for e in refused])
            raise Refused(f"{len(refused)} of {len(report)} rows refused, so nothing changed: {named}",
                          payload=payload)
        if not dry_run:
            uow.commit()
    if not dry_run:
        Postman(rt).deliver(mail_ids)
    return payload
