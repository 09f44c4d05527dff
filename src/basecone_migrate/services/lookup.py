"""Finding the things a command names, and who is acting."""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from basecone_migrate.db.models import (
    AccountingSystem,
    Administration,
    Environment,
    Migration,
    MigrationItem,
    User,
)
from basecone_migrate.domain.rules import SUPERUSER
from basecone_migrate.errors import NotAllowed, NotFound, UsageProblem
from basecone_migrate.runtime import Runtime

#: Ids are 32-bit integers on PostgreSQL: a larger number names nothing.
MAX_ID = 2**31 - 1
_DECIMAL = re.compile(r"[0-9]{1,19}")


def parse_id(text: str) -> int | None:
    """The id a reference spells (ASCII digits, within range), else None: a number beyond
    any id is a name that names nothing, never an overflow in the driver."""
    if not _DECIMAL.fullmatch(text):
        return None
    number = int(text)
    return number if 0 < number <= MAX_ID else None

NO_ACTING_USER = (
    "no acting user: pass --as EMAIL (or set BASECONE_MIGRATE_USER) to say who is doing this"
)


def admin_label(admin: Administration | MigrationItem) -> str:
    """How messages name an administration: code, name and id."""
    if isinstance(admin, MigrationItem):
        return f"{admin.source_code} {admin.name} (id {admin.administration_id})"
    return f"{admin.code} {admin.name} (id {admin.id})"


def find_user(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == email.strip().lower()))


def acting_user(rt: Runtime, session: Session) -> User:
    """The user the command acts as; exit 4 when there is none or it is unknown."""
    email = rt.settings.user
    if not email:
        raise NotAllowed(NO_ACTING_USER)
    user = find_user(session, email)
    if user is None:
        raise NotAllowed(f"unknown acting user {email}: --as must name a user of an environment")
    return user


def optional_acting_user(rt: Runtime, session: Session) -> User | None:
    return acting_user(rt, session) if rt.settings.user else None


def require_superuser(user: User, environment: Environment, to_do: str) -> None:
    if user.role != SUPERUSER or user.environment_id != environment.id:
        raise NotAllowed(
            f"{user.email} is not a Superuser of environment {environment.code}: "
            f"only its Superusers may {to_do}"
        )


def environment_by_code(session: Session, code: str) -> Environment:
    environment = session.scalar(
        select(Environment).where(func.upper(Environment.code) == code.strip().upper())
    )
    if environment is None:
        raise NotFound(f"no environment with office code {code!r} (see `basecone-migrate env list`)")
    return environment


def migration(session: Session, migration_id: int, *, lock: bool = False) -> Migration:
    """A migration by id; ``lock`` takes its row for the transaction (PostgreSQL), so the
    sender's and the receiver's commands on one offer happen one after the other."""
    query = select(Migration).where(Migration.id == migration_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    found = session.scalar(query) if 0 < migration_id <= MAX_ID else None
    if found is None:
        raise NotFound(f"no migration {migration_id} (see `basecone-migrate list`)")
    return found


def accounting_system(session: Session, connection_id: str) -> AccountingSystem:
    found = session.get(AccountingSystem, connection_id.strip())
    if found is None:
        raise NotFound(f"no accounting system (connection) {connection_id!r}")
    return found


def administration(session: Session, reference: str, within: Environment | None) -> Administration:
    """An administration by numeric id, by code (within the acting environment) or by
    mail address (its live one, or an alias).

    ``id:N`` always means the id. A bare number that is both one administration's id
    and another's code is refused as ambiguous rather than guessed.
    """
    reference = reference.strip()
    if "@" in reference:  # a mail address, live or an alias of an earlier one
        from basecone_migrate.services import aliases

        routed = aliases.route(session, reference)
        if routed is None:
            raise NotFound(f"no administration receives mail at {reference}")
        return routed
    if reference.lower().startswith("id:"):
        number = reference[3:].strip()
        found_id = parse_id(number)
        found = session.get(Administration, found_id) if found_id is not None else None
        if found is None:
            raise NotFound(f"no administration with id {number}")
        return found

    candidates: dict[int, Administration] = {}
    reference_id = parse_id(reference)
    if reference_id is not None:
        by_id = session.get(Administration, reference_id)
        if by_id is not None:
            candidates[by_id.id] = by_id
    query = select(Administration).where(Administration.code == reference)
    if within is not None:
        query = query.where(Administration.environment_id == within.id)
    for found in session.scalars(query):
        candidates[found.id] = found

    if len(candidates) == 1:
        return next(iter(candidates.values()))
    where = f" in environment {within.code}" if within is not None else ""
    if not candidates:
        raise NotFound(
            f"no administration {reference!r}{where}: give its id or its code "
            "(see `basecone-migrate admin list`)"
        )
    named = "; ".join(
        f"id {a.id} = {a.environment.code}/{a.code} {a.name}"
        for a in sorted(candidates.values(), key=lambda a: a.id)
    )
    raise UsageProblem(
        f"{reference!r} is ambiguous ({named}): use id:N for an id"
        + ("" if within is not None else ", or --as to pick your environment")
    )


def administration_for(rt: Runtime, session: Session, reference: str) -> Administration:
    """Resolve ADMIN as the contract says: id, or code within the acting user's environment."""
    user = optional_acting_user(rt, session)
    return administration(session, reference, user.environment if user else None)
