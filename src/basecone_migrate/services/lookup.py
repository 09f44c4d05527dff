"""Finding the things a command names, and who is acting.

The lookups are SQLAlchemy Core and return rows; each takes a Core connection (read
commands, which never load the ORM) or an ORM session. Writing services that change what
they found use the thin wrappers at the end, which return the mapped objects.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, func, select

from basecone_migrate.db.tables import administrations, environments, migrations, users
from basecone_migrate.domain.rules import is_superuser_of
from basecone_migrate.errors import NotAllowed, NotFound, UsageProblem
from basecone_migrate.runtime import Runtime

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from basecone_migrate.db.models import (
        AccountingSystem,
        Administration,
        Environment,
        Migration,
        User,
    )

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

#: A user row: the user's columns and their environment's code and name.
USER_COLUMNS = (*users.c, environments.c.code.label("environment_code"),
                environments.c.name.label("environment_name"))
#: An administration row: its columns and its environment's code, name and storage.
ADMIN_COLUMNS = (*administrations.c, environments.c.code.label("environment_code"),
                 environments.c.name.label("environment_name"),
                 environments.c.storage.label("environment_storage"))


class Place:
    """An environment as lookups and archives need it (id, code, storage), from a row."""

    def __init__(self, id: int, code: str, storage: str | None = None) -> None:  # noqa: A002
        self.id = id
        self.code = code
        self.storage = storage

    @classmethod
    def of_user(cls, user: Any) -> Place:
        return cls(user.environment_id, user.environment_code)

    @classmethod
    def of_administration(cls, admin: Any) -> Place:
        return cls(admin.environment_id, admin.environment_code, admin.environment_storage)


def admin_label(admin: Any) -> str:
    """How messages name an administration (a row, a model or a migration item): code,
    name and id."""
    if hasattr(admin, "source_code"):
        return f"{admin.source_code} {admin.name} (id {admin.administration_id})"
    return f"{admin.code} {admin.name} (id {admin.id})"


def user_row(db: Any, email: str) -> Row[Any] | None:
    return db.execute(select(*USER_COLUMNS).join(environments, environments.c.id == users.c.environment_id)
                      .where(users.c.email == email.strip().lower())).first()


def acting_user_row(rt: Runtime, db: Any) -> Row[Any]:
    """The user the command acts as; exit 4 when there is none or it is unknown."""
    email = rt.settings.user
    if not email:
        raise NotAllowed(NO_ACTING_USER)
    user = user_row(db, email)
    if user is None:
        raise NotAllowed(f"unknown acting user {email}: --as must name a user of an environment")
    return user


def optional_acting_user_row(rt: Runtime, db: Any) -> Row[Any] | None:
    return acting_user_row(rt, db) if rt.settings.user else None


def require_superuser(user: Any, environment: Any, to_do: str) -> None:
    if not is_superuser_of(user.role, user.environment_id, environment.id):
        raise NotAllowed(
            f"{user.email} is not a Superuser of environment {environment.code}: "
            f"only its Superusers may {to_do}"
        )


def environment_row(db: Any, code: str) -> Row[Any]:
    environment = db.execute(select(environments).where(
        func.upper(environments.c.code) == code.strip().upper())).first()
    if environment is None:
        raise NotFound(f"no environment with office code {code!r} (see `basecone-migrate env list`)")
    return environment


def migration_id(db: Any, number: int) -> int:
    """``number`` when a migration has it, else exit 3."""
    found = (db.scalar(select(migrations.c.id).where(migrations.c.id == number))
             if 0 < number <= MAX_ID else None)
    if found is None:
        raise NotFound(f"no migration {number} (see `basecone-migrate list`)")
    return int(found)


def _admins(db: Any, *where: Any) -> list[Row[Any]]:
    return list(db.execute(select(*ADMIN_COLUMNS)
                           .join(environments, environments.c.id == administrations.c.environment_id)
                           .where(*where).order_by(administrations.c.id)))


def administration_row(db: Any, reference: str, within: Place | None) -> Row[Any]:
    """An administration by numeric id, by code (within the acting environment) or by
    mail address (its live one, or an alias).

    ``id:N`` always means the id. A bare number that is both one administration's id
    and another's code is refused as ambiguous rather than guessed.
    """
    reference = reference.strip()
    if "@" in reference:  # a mail address, live or an alias of an earlier one
        from basecone_migrate.services import aliases

        routed = aliases.route(db, reference)
        if routed is None:
            raise NotFound(f"no administration receives mail at {reference}")
        return _admins(db, administrations.c.id == routed)[0]
    if reference.lower().startswith("id:"):
        number = reference[3:].strip()
        found_id = parse_id(number)
        found = _admins(db, administrations.c.id == found_id) if found_id is not None else []
        if not found:
            raise NotFound(f"no administration with id {number}")
        return found[0]

    by_code = administrations.c.code == reference
    if within is not None:
        by_code = by_code & (administrations.c.environment_id == within.id)
    reference_id = parse_id(reference)
    candidates = _admins(db, by_code if reference_id is None
                         else by_code | (administrations.c.id == reference_id))
    if len(candidates) == 1:
        return candidates[0]
    where = f" in environment {within.code}" if within is not None else ""
    if not candidates:
        raise NotFound(
            f"no administration {reference!r}{where}: give its id or its code "
            "(see `basecone-migrate admin list`)"
        )
    named = "; ".join(f"id {a.id} = {a.environment_code}/{a.code} {a.name}" for a in candidates)
    raise UsageProblem(
        f"{reference!r} is ambiguous ({named}): use id:N for an id"
        + ("" if within is not None else ", or --as to pick your environment")
    )


def administration_row_for(rt: Runtime, db: Any, reference: str) -> Row[Any]:
    """Resolve ADMIN as the contract says: id, or code within the acting user's environment."""
    user = optional_acting_user_row(rt, db)
    return administration_row(db, reference, Place.of_user(user) if user else None)


# -- the mapped objects, for services that change them ---------------------------------------


def find_user(session: Session, email: str) -> User | None:
    from basecone_migrate.db.models import User

    row = user_row(session, email)
    return session.get(User, row.id) if row is not None else None


def acting_user(rt: Runtime, session: Session) -> User:
    from basecone_migrate.db.models import User

    user = session.get(User, acting_user_row(rt, session).id)
    assert user is not None
    return user


def administration(session: Session, reference: str, within: Environment | None) -> Administration:
    from basecone_migrate.db.models import Administration

    row = administration_row(session, reference, Place(within.id, within.code) if within else None)
    admin = session.get(Administration, row.id)
    assert admin is not None
    return admin


def administration_for(rt: Runtime, session: Session, reference: str) -> Administration:
    from basecone_migrate.db.models import Administration

    admin = session.get(Administration, administration_row_for(rt, session, reference).id)
    assert admin is not None
    return admin


def migration(session: Session, number: int, *, lock: bool = False) -> Migration:
    """A migration by id; ``lock`` takes its row for the transaction (PostgreSQL), so the
    sender's and the receiver's commands on one offer happen one after the other."""
    from basecone_migrate.db.models import Migration

    query = select(Migration).where(Migration.id == migration_id(session, number))
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    found = session.scalar(query)
    if found is None:  # deleted in between: never, but say so rather than fail
        raise NotFound(f"no migration {number} (see `basecone-migrate list`)")
    return found


def accounting_system(session: Session, connection_id: str) -> AccountingSystem:
    from basecone_migrate.db.models import AccountingSystem

    found = session.get(AccountingSystem, connection_id.strip())
    if found is None:
        raise NotFound(f"no accounting system (connection) {connection_id!r}")
    return found
