"""Values for shell completion, from the database the command would use: one small query
each, only when that database already exists at the current schema (completing never
creates or upgrades one). Each takes the connection, the acting user (or None) and what
has been typed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: Values offered at most, per completion.
LIMIT = 50


@contextmanager
def reading(settings: Any) -> Iterator[Any]:
    """A read-only connection to the settings' database, or None."""
    from pathlib import Path

    from basecone_migrate.runtime import Runtime, open_engine

    url = settings.db_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        yield None  # completing never creates the embedded database
        return
    engine = open_engine(settings)
    try:
        from basecone_migrate.db import SCHEMA_HEAD
        from basecone_migrate.db.engine import current_revision

        if current_revision(engine) != SCHEMA_HEAD:
            yield None
            return
        runtime = Runtime(settings)
        runtime.__dict__["engine"] = engine  # checked above: no upgrade from a completion
        with runtime.reading() as db:
            yield db
    finally:
        engine.dispose()


def administrations(db: Any, user: str | None, incomplete: str) -> list[tuple[str, str]]:
    """Codes of the acting user's environment (with --as), else ids, with their names."""
    from sqlalchemy import String, cast, select

    from basecone_migrate.db.tables import administrations as admins
    from basecone_migrate.db.tables import users

    query = select(admins.c.id, admins.c.code, admins.c.name).order_by(admins.c.code).limit(LIMIT)
    if user:
        environment = db.scalar(select(users.c.environment_id).where(users.c.email == user.lower()))
        rows = db.execute(query.where(admins.c.environment_id == environment,
                                      admins.c.code.startswith(incomplete, autoescape=True)))
        return [(row.code, row.name) for row in rows]
    rows = db.execute(query.order_by(None).order_by(admins.c.id)
                      .where(cast(admins.c.id, String).startswith(incomplete, autoescape=True)))
    return [(str(row.id), f"{row.code} {row.name}") for row in rows]


def migrations(db: Any, user: str | None, incomplete: str) -> list[tuple[str, str]]:
    """The most recent migrations' ids, with their source office and day of creation."""
    from sqlalchemy import select

    from basecone_migrate.db.tables import environments, migrations

    rows = db.execute(select(migrations.c.id, environments.c.code, migrations.c.created_at)
                      .join(environments, environments.c.id == migrations.c.source_environment_id)
                      .order_by(migrations.c.created_at.desc()).limit(200))
    return [(str(row.id), f"from {row.code}, {row.created_at:%Y-%m-%d}") for row in rows
            if str(row.id).startswith(incomplete)]


def connections(db: Any, user: str | None, incomplete: str) -> list[tuple[str, str]]:
    from sqlalchemy import select

    from basecone_migrate.db.tables import accounting_systems as systems

    rows = db.execute(select(systems.c.id, systems.c.name).where(
        systems.c.id.startswith(incomplete, autoescape=True)).order_by(systems.c.id).limit(LIMIT))
    return [(row.id, row.name) for row in rows]


def offices(db: Any, user: str | None, incomplete: str) -> list[tuple[str, str]]:
    from sqlalchemy import func, select

    from basecone_migrate.db.tables import environments

    rows = db.execute(select(environments.c.code, environments.c.name).where(
        func.upper(environments.c.code).startswith(incomplete.upper(), autoescape=True))
        .order_by(environments.c.code).limit(LIMIT))
    return [(row.code, row.name) for row in rows]
