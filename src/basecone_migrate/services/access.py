"""Who can see an administration: granted and revoked by the Superusers of its environment.

After a move the receiving office must grant access again (rule 13); the office it left
has no say over it any more, because only the current environment's Superusers may.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select

from basecone_migrate.db.tables import administration_access, users
from basecone_migrate.domain.lifecycle import ItemStatus
from basecone_migrate.errors import NotFound, Refused, UsageProblem
from basecone_migrate.runtime import Runtime
from basecone_migrate.services import audit, lookup

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from basecone_migrate.db.models import Administration, User


def _members(s: Session, admin: Administration, emails: Sequence[str]) -> list[User]:
    users: list[User] = []
    for email in emails:
        user = lookup.find_user(s, email)
        if user is None:
            raise NotFound(f"no user {email.strip()!r}")
        if user.environment_id != admin.environment_id:
            raise Refused(f"{user.email} is a user of {user.environment.code}, not of "
                          f"{admin.environment.code}: only users of the administration's environment "
                          "can have access to it")
        if user not in users:
            users.append(user)
    if not users:
        raise UsageProblem("name at least one --user EMAIL")
    return users


def users_with_access(db: Any, administration_id: int) -> list[dict[str, str]]:
    return [{"email": u.email, "name": u.name, "role": u.role} for u in db.execute(
        select(users.c.email, users.c.name, users.c.role)
        .join(administration_access, administration_access.c.user_id == users.c.id)
        .where(administration_access.c.administration_id == administration_id)
        .order_by(users.c.email))]


def change(rt: Runtime, reference: str, emails: Sequence[str], *, grant: bool) -> dict[str, Any]:
    with rt.uow() as uow:
        s = uow.session
        user = lookup.acting_user(rt, s)
        admin = lookup.administration(s, reference, user.environment)
        result = _change(rt, s, user, admin, emails, grant=grant)
        uow.commit()
    return result


def grant_migration(rt: Runtime, number: int, emails: Sequence[str]) -> dict[str, Any]:
    """Access to every administration a migration completed, at once (rule 13: after a move
    the receiver grants access again): each checked as `access grant ADMIN` checks it, all
    granted in one transaction or none."""
    from basecone_migrate.db.models import Administration, MigrationItem

    with rt.uow() as uow:
        s = uow.session
        user = lookup.acting_user(rt, s)
        migration = lookup.migration(s, number)
        items = list(s.scalars(select(MigrationItem).where(MigrationItem.migration_id == migration.id)
                               .order_by(MigrationItem.id)))
        completed = [i for i in items if i.status == ItemStatus.COMPLETED]
        if not completed:
            states = ", ".join(sorted({i.status for i in items})) or "nothing"
            raise Refused(f"migration {migration.id} completed no administration ({states}): "
                          "access is granted once an administration has arrived")
        results = []
        for item in completed:
            admin = s.get(Administration, item.administration_id)
            assert admin is not None
            results.append(_change(rt, s, user, admin, emails, grant=True, migration_id=migration.id))
        uow.commit()
    return {"migration_id": migration.id, "administrations": results}


def _change(rt: Runtime, s: Session, user: User, admin: Administration, emails: Sequence[str], *,
            grant: bool, migration_id: int | None = None) -> dict[str, Any]:
    from basecone_migrate.db.models import Access
    from basecone_migrate.services.migrations.common import refuse_while_moving

    lookup.require_superuser(user, admin.environment, "change who has access to its administrations")
    refuse_while_moving(s, admin, "change access")
    members = _members(s, admin, emails)
    having = set(s.scalars(select(Access.user_id).where(Access.administration_id == admin.id)))
    changed = [m for m in members if (m.id not in having) == grant]
    if grant:
        s.add_all(Access(administration_id=admin.id, user_id=m.id) for m in changed)
    elif changed:
        s.execute(delete(Access).where(Access.administration_id == admin.id,
                                       Access.user_id.in_([m.id for m in changed])))
    action = "access_grant" if grant else "access_revoke"
    if changed:
        audit.record(s, at=rt.now(), actor=user.email, action=action, administration_id=admin.id,
                     migration_id=migration_id, users=[m.email for m in changed])
    s.flush()
    return {
        "administration_id": admin.id,
        "granted" if grant else "revoked": [m.email for m in changed],
        "unchanged": [m.email for m in members if m not in changed],
        "users": [u["email"] for u in users_with_access(s, admin.id)],
    }


def listing(rt: Runtime, reference: str) -> dict[str, Any]:
    with rt.reading() as db:
        admin = lookup.administration_row_for(rt, db, reference)
        return {"administration_id": admin.id, "environment": admin.environment_code,
                "users": users_with_access(db, admin.id)}
