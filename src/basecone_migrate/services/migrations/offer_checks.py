"""The checks of an offer, in the contract's order: who offers what to whom (rules 1, 2,
4, 5, 6 and one open migration an administration), for one offer or a batch file."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from basecone_migrate.batches import Row, summary
from basecone_migrate.db.models import (
    Administration,
    Environment,
    User,
    Workflow,
    WorkflowAuthoriser,
)
from basecone_migrate.domain.rules import (
    MIGRATABLE_PACKAGES,
    OFFER_WARNING_SIZE,
    can_receive,
    is_migratable,
    is_superuser,
    offer_is_large,
    package_label,
)
from basecone_migrate.errors import Refused, UsageProblem
from basecone_migrate.runtime import Runtime
from basecone_migrate.services import lookup
from basecone_migrate.services.lookup import admin_label
from basecone_migrate.services.migrations.common import (
    open_item,
)


@dataclass
class CheckedOffer:
    user: User
    admins: list[Administration]
    source: Environment
    target: Environment
    findings: list[str]
    warnings: list[str]


def check_offer(rt: Runtime, s: Session, references: Sequence[str], addresses: list[str],
                 accept_terms: bool | None, confirm_checklist: bool | None,
                 allow_unknown: bool = False, to_env: str | None = None) -> CheckedOffer:
    """Every check of an offer, in the contract's order. ``None`` for the terms or the
    checklist means "not asked yet" (the read-only pass before questions)."""
    now = rt.now()
    user = lookup.acting_user(rt, s)
    admins: list[Administration] = []
    for reference in references:
        admin = lookup.administration(s, reference, user.environment)
        if admin not in admins:
            admins.append(admin)
    offices = sorted({a.environment.code for a in admins})
    if len(offices) > 1:
        raise Refused("one offer moves administrations of one environment; these are in "
                      f"{', '.join(offices)}: make one offer per environment")
    source = admins[0].environment
    lookup.require_superuser(user, source, "offer its administrations")
    if accept_terms is False:
        raise Refused("accept the terms of the migration with --accept-terms (read them first: "
                      "`basecone-migrate terms`)")
    for admin in admins:
        check_migratable(admin)
    for admin in admins:
        check_free(s, admin, now)
    findings = authoriser_findings(s, admins)
    if findings and confirm_checklist is False:
        raise Refused(
            "authorisers are not transferred and must not be part of an authorisation "
            f"workflow of a moved administration, but: {'; '.join(findings)}. Remove them "
            "from the workflows, or confirm the checklist with --confirm-checklist")
    target, warnings = check_recipients(s, addresses, source, allow_unknown, to_env)
    if offer_is_large(len(admins)):
        warnings.append(f"{len(admins)} administrations in one offer: the help centre advises at "
                        f"most {OFFER_WARNING_SIZE} per offer")
    return CheckedOffer(user, admins, source, target, findings, warnings)


def check_migratable(admin: Administration) -> None:
    package = admin.accounting_system.package
    if not is_migratable(package):
        raise Refused(
            f"administration {admin_label(admin)} is linked to {package_label(package)}, "
            "which cannot move between environments (only "
            f"{', '.join(MIGRATABLE_PACKAGES.values())})")


def check_free(s: Session, admin: Administration, now: datetime) -> None:
    busy = open_item(s, admin.id, now)
    if busy is not None:
        raise Refused(f"administration {admin_label(admin)} is already in migration "
                      f"{busy.migration_id} ({busy.status}): revoke that offer first")


def check_offer_rows(rt: Runtime, rows: Sequence[Row]) -> list[str]:
    """`offer --from FILE`: each row (an administration) checked on its own, every refused
    row named; the references to offer when none is refused."""
    from basecone_migrate.errors import BaseconeError

    now = rt.now()
    report: list[dict[str, Any]] = []
    with rt.uow(read_only=True) as uow:
        s = uow.session
        user = lookup.acting_user(rt, s)
        for row in rows:
            entry: dict[str, Any] = {"line": row.line, "admin": row["admin"]}
            try:
                admin = lookup.administration(s, row["admin"] or "", user.environment)
                entry.update(administration_id=admin.id, code=admin.code, name=admin.name)
                check_migratable(admin)
                check_free(s, admin, now)
                entry.update(status="ok", error=None)
            except BaseconeError as exc:
                entry.update(status="refused", error=exc.message)
            report.append(entry)
    refused = [e for e in report if e["status"] == "refused"]
    if refused:
        named = summary([f"line {e['line']}: {e['error']}" for e in refused])
        raise Refused(f"{len(refused)} of {len(report)} rows refused, so nothing changed: {named}",
                      payload={"rows": report, "refused": len(refused)})
    return [row["admin"] or "" for row in rows]


def authoriser_findings(s: Session, admins: Sequence[Administration]) -> list[str]:
    findings = []
    for admin in admins:
        rows = s.execute(
            select(Workflow.name, User.email)
            .join(WorkflowAuthoriser, WorkflowAuthoriser.workflow_id == Workflow.id)
            .join(User, User.id == WorkflowAuthoriser.user_id)
            .where(Workflow.administration_id == admin.id).order_by(Workflow.name, User.email)).all()
        flows: dict[str, list[str]] = defaultdict(list)
        for name, email in rows:
            flows[name].append(email)
        for name, emails in flows.items():
            findings.append(f"{admin.code} {admin.name} has workflow {name!r} with authorisers "
                            f"{', '.join(emails)}")
    return findings


def check_recipients(s: Session, addresses: Sequence[str], source: Environment,
                      allow_unknown: bool = False,
                      to_env: str | None = None) -> tuple[Environment, list[str]]:
    """The environment the offer is for, and warnings. Refused (1) what can never be
    redeemed: a known user who is not a Superuser of a premium environment other than the
    source, recipients of two environments, and (without ``allow_unknown``) an address no
    user has. Unknown addresses alone need ``to_env`` to say where the offer goes."""
    known: list[tuple[str, User]] = []
    unknown: list[str] = []
    for address in addresses:
        user = lookup.find_user(s, address)
        if user is None:
            unknown.append(address)
            continue
        if user.environment_id == source.id:
            raise Refused(f"{address} is in {source.code}, the environment the administrations leave: "
                          "offer them to a Superuser of the receiving environment")
        known.append((address, user))
    offices = sorted({user.environment.code for _, user in known})
    if len(offices) > 1:
        raise Refused(f"the recipients are in different environments ({', '.join(offices)}): "
                      "one offer goes to one environment")
    for address, user in known:
        if not is_superuser(user.role):
            raise Refused(f"{address} is not a Superuser of {user.environment.code}: only a Superuser of "
                          "the receiving environment can redeem the code; offer it to one of them")
    target = known[0][1].environment if known else None
    if to_env is not None:
        named = s.get(Environment, lookup.environment_row(s, to_env).id)
        assert named is not None
        if target is not None and named.id != target.id:
            raise Refused(f"--to-env {named.code} does not match the recipients, who are Superusers of "
                          f"{target.code}: one offer goes to one environment")
        if named.id == source.id:
            raise Refused(f"--to-env {named.code} is the environment the administrations leave: name "
                          "the receiving environment")
        target = named
    if unknown and not allow_unknown:
        raise Refused(f"{unknown[0]} is not a user of any environment: only a Superuser of the "
                      "receiving environment can redeem the code. Check the address, or pass "
                      "--allow-unknown-recipient (and --to-env OFFICE) to mail it all the same")
    if target is None:
        raise UsageProblem("no recipient is a known Superuser, so say which environment the offer is "
                           "for with --to-env OFFICE (only its Superusers will be able to redeem it)")
    if not can_receive(target.plan):
        raise Refused(f"{target.code} is on a {target.plan} plan: only premium environments can receive "
                      "administrations")
    warnings = [f"{address} is not a user of any environment yet: the code works only once they "
                f"are a Superuser of {target.code}" for address in unknown]
    return target, warnings
