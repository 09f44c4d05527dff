"""Engines, the schema check, Alembic upgrades and the unit of work.

SQLite is set up for several processes sharing one file: WAL, a busy timeout,
foreign keys on, and every writing transaction opened with ``BEGIN IMMEDIATE`` so that
two writers queue instead of failing on a lock upgrade. A read-only unit of work opens a
plain ``BEGIN``: in WAL mode it never blocks, nor is it blocked by, a writer.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Engine, make_url

from basecone_migrate.db import SCHEMA_HEAD
from basecone_migrate.errors import Refused

if TYPE_CHECKING:  # the ORM loads only in commands that write (see db/tables.py)
    from alembic.config import Config
    from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 60_000
READ_ONLY = "basecone_read_only"
#: Key of the PostgreSQL advisory lock taken while the schema is upgraded.
UPGRADE_LOCK_KEY = 0x6263_6D00


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url)

    database = parsed.database
    if database and database != ":memory:":
        import os
        from pathlib import Path

        path = Path(database).expanduser()
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.exists():  # queued mails hold transfercodes: the file is the owner's only
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        if database and database != ":memory:":
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def current_revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at, or None when it has no schema yet.

    One query, on every start: Alembic itself is loaded only to upgrade.
    """
    from sqlalchemy.exc import OperationalError, ProgrammingError

    with engine.connect() as connection:
        connection = connection.execution_options(**{READ_ONLY: True})
        try:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except (OperationalError, ProgrammingError) as exc:
            # No such table (SQLite: OperationalError, PostgreSQL: UndefinedTable); anything
            # else (a locked file, a lost server) is not "no schema".
            undefined = getattr(exc.orig, "sqlstate", None) == "42P01"
            if undefined or "no such table: alembic_version" in str(exc.orig):
                return None
            raise


def _has_tables(engine: Engine) -> bool:
    with engine.connect() as connection:
        connection = connection.execution_options(**{READ_ONLY: True})
        return bool(inspect(connection).get_table_names())


def ensure_schema(engine: Engine) -> None:
    """Upgrade the database on first use, or explain why that is not done here.

    An empty database (any backend) and any SQLite file the tool owns are brought to
    the current schema automatically; a PostgreSQL database at an older revision is
    upgraded only on purpose, with ``db upgrade``.
    """
    revision = current_revision(engine)
    if revision == SCHEMA_HEAD:
        return
    is_sqlite = engine.dialect.name == "sqlite"
    if revision is None and not is_sqlite and _has_tables(engine):
        from basecone_migrate.settings import mask_url_password

        raise Refused(
            f"the database {mask_url_password(engine.url.render_as_string(hide_password=True))} "
            "holds tables but "
            "no basecone-migrate schema: point BASECONE_MIGRATE_DB at an empty database"
        )
    if revision is None or is_sqlite:
        upgrade(engine)
        return
    raise Refused(
        f"the database schema is at revision {revision}, this tool needs {SCHEMA_HEAD}: "
        "run `basecone-migrate db upgrade` (or upgrade basecone-migrate if it is newer)"
    )


def alembic_config() -> Config:
    from alembic.config import Config

    # The stream given, not Config's default: that is the sys.stdout of the moment alembic was
    # first imported, which in a process that swaps its streams (a test's in-process CLI
    # run) may be closed by now.
    config = Config(stdout=sys.stdout)
    config.set_main_option("script_location", "basecone_migrate.db:migrations")
    return config


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Run the migrations in one transaction; returns (revision before, revision after)."""
    from alembic import command

    before = current_revision(engine)
    config = alembic_config()
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Two first uses at once: the second waits, then finds nothing to do.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": UPGRADE_LOCK_KEY})
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    return before, current_revision(engine)


class UnitOfWork:
    """One transaction. Leaving the block without ``commit()`` rolls everything back."""

    def __init__(self, session_factory: Callable[[], Session], read_only: bool = False) -> None:
        self._session_factory = session_factory
        self.read_only = read_only

    def __enter__(self) -> UnitOfWork:
        self.session = self._session_factory()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.session.rollback()
        self.session.close()

    def commit(self) -> None:
        if self.read_only:
            raise RuntimeError("a read-only unit of work cannot commit")
        self.session.commit()


def reading(engine: Engine) -> Engine:
    """The engine for read-only transactions that each read one consistent snapshot.

    A read-only transaction on PostgreSQL is REPEATABLE READ: every statement sees the
    database as of the first one, as a SQLite read transaction in WAL mode does. Under
    READ COMMITTED a check that reads a code, then its offer, then its items could see a
    redeem commit half-way and report the offer as something it never was.
    """
    options: dict[str, Any] = {READ_ONLY: True}
    if engine.dialect.name == "postgresql":
        options.update(isolation_level="REPEATABLE READ", postgresql_readonly=True)
    return engine.execution_options(**options)


def session_factory(engine: Engine, read_only: bool = False) -> sessionmaker[Session]:
    """ORM sessions for writing, or for reading one consistent snapshot (`reading`)."""
    from sqlalchemy.orm import sessionmaker

    return sessionmaker(reading(engine) if read_only else engine, expire_on_commit=False)
