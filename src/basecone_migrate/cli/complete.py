"""Shell completion of values (`--install-completion` installs it for the shell).

Commands, options and fixed values (statuses) complete as Typer does. Administrations,
migrations, connections and offices complete from the database, with one small query,
when it is cheap and harmless: the database the command would use, as the global options
and settings name it, already exists. Anything that goes wrong completes nothing: a shell
must never see a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer

from basecone_migrate.domain.lifecycle import ItemStatus

#: A migration item's statuses, from its lifecycle.
STATUSES = tuple(status.value for status in ItemStatus)
#: Values offered at most, per completion.
LIMIT = 50


def statuses(incomplete: str) -> list[str]:
    return [s for s in STATUSES if s.startswith(incomplete)]


@contextmanager
def _database(ctx: typer.Context) -> Iterator[Any]:
    """A read-only connection to the database the command would use, or None."""
    from pathlib import Path

    from basecone_migrate.runtime import Runtime, open_engine
    from basecone_migrate.settings import Settings

    root = ctx.find_root().params
    settings = Settings.load({"user": root.get("as_"), "db": root.get("db"), "storage": root.get("storage")},
                             config_path=root.get("config"))
    url = settings.db_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        yield None, settings  # completing never creates the embedded database
        return
    engine = open_engine(settings)
    try:
        from basecone_migrate.db import SCHEMA_HEAD
        from basecone_migrate.db.engine import current_revision

        if current_revision(engine) != SCHEMA_HEAD:
            yield None, settings
            return
        runtime = Runtime(settings)
        runtime.__dict__["engine"] = engine  # checked above: no upgrade from a completion
        with runtime.reading() as db:
            yield db, settings
    finally:
        engine.dispose()


def _quietly(query: Callable[[Any, Any, str], list[tuple[str, str]]]) -> Callable[..., list[tuple[str, str]]]:
    def complete(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
        try:
            with _database(ctx) as (db, settings):
                return [] if db is None else query(db, settings, incomplete)[:LIMIT]
        except Exception:  # noqa: BLE001 - a shell must never see a traceback
            return []

    return complete


@_quietly
def administrations(db: Any, settings: Any, incomplete: str) -> list[tuple[str, str]]:
    """Codes of the acting user's environment (with --as), else ids, with their names."""
    from sqlalchemy import String, cast, select

    from basecone_migrate.db.tables import administrations as admins
    from basecone_migrate.db.tables import users

    query = select(admins.c.id, admins.c.code, admins.c.name).order_by(admins.c.code).limit(LIMIT)
    if settings.user:
        environment = db.scalar(select(users.c.environment_id).where(users.c.email == settings.user.lower()))
        rows = db.execute(query.where(admins.c.environment_id == environment,
                                      admins.c.code.startswith(incomplete, autoescape=True)))
        return [(row.code, row.name) for row in rows]
    rows = db.execute(query.order_by(None).order_by(admins.c.id)
                      .where(cast(admins.c.id, String).startswith(incomplete, autoescape=True)))
    return [(str(row.id), f"{row.code} {row.name}") for row in rows]


@_quietly
def migrations(db: Any, settings: Any, incomplete: str) -> list[tuple[str, str]]:
    """The most recent migrations' ids, with their source office and status of creation."""
    from sqlalchemy import select

    from basecone_migrate.db.tables import environments, migrations

    rows = db.execute(select(migrations.c.id, environments.c.code, migrations.c.created_at)
                      .join(environments, environments.c.id == migrations.c.source_environment_id)
                      .order_by(migrations.c.created_at.desc()).limit(200))
    return [(str(row.id), f"from {row.code}, {row.created_at:%Y-%m-%d}") for row in rows
            if str(row.id).startswith(incomplete)]


@_quietly
def connections(db: Any, settings: Any, incomplete: str) -> list[tuple[str, str]]:
    from sqlalchemy import select

    from basecone_migrate.db.tables import accounting_systems as systems

    rows = db.execute(select(systems.c.id, systems.c.name).where(
        systems.c.id.startswith(incomplete, autoescape=True)).order_by(systems.c.id).limit(LIMIT))
    return [(row.id, row.name) for row in rows]


@_quietly
def offices(db: Any, settings: Any, incomplete: str) -> list[tuple[str, str]]:
    from sqlalchemy import func, select

    from basecone_migrate.db.tables import environments

    rows = db.execute(select(environments.c.code, environments.c.name).where(
        func.upper(environments.c.code).startswith(incomplete.upper(), autoescape=True))
        .order_by(environments.c.code).limit(LIMIT))
    return [(row.code, row.name) for row in rows]
