"""What one run of the tool works with: settings, the database, archives and the clock.

Built lazily, so a command that fails on its arguments never opens a database,
and `--help` imports none of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Protocol

from basecone_migrate.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine
    from sqlalchemy.orm import Session, sessionmaker

    from basecone_migrate.db.engine import UnitOfWork
    from basecone_migrate.storage import Archive


class HasStorage(Protocol):
    """An environment, as a model or a row: its office code and its own storage, if any."""

    @property
    def code(self) -> str: ...

    @property
    def storage(self) -> str | None: ...


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._archives: dict[str, Archive] = {}

    @cached_property
    def engine(self) -> Engine:
        from basecone_migrate.db.engine import ensure_schema

        engine = open_engine(self.settings)
        try:
            ensure_schema(engine)
        except BaseException:
            engine.dispose()
            raise
        return engine

    @cached_property
    def _sessions(self) -> sessionmaker[Session]:
        from basecone_migrate.db.engine import session_factory

        return session_factory(self.engine)

    @cached_property
    def _read_sessions(self) -> sessionmaker[Session]:
        from basecone_migrate.db.engine import session_factory

        return session_factory(self.engine, read_only=True)

    def uow(self, read_only: bool = False) -> UnitOfWork:
        """A transaction with an ORM session; ``read_only`` ones never take SQLite's write
        lock."""
        from basecone_migrate.db.engine import UnitOfWork

        return UnitOfWork(self._read_sessions if read_only else self._sessions, read_only)

    @cached_property
    def _reading_engine(self) -> Engine:
        from basecone_migrate.db.engine import reading

        return reading(self.engine)

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """A writing transaction in Core, committed when the block ends without an error
        (``BEGIN IMMEDIATE`` on SQLite, as every writer)."""
        with self.engine.begin() as connection:
            yield connection

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A read-only transaction on one snapshot, in Core: what read commands use, so that
        they never load the ORM. Leaving the block rolls it back."""
        with self._reading_engine.connect() as connection:
            yield connection

    def now(self) -> datetime:
        return self.settings.now()

    def archive_url(self, environment: HasStorage) -> str:
        from basecone_migrate.storage import environment_root

        return environment_root(self.settings.storage, environment.code, environment.storage)

    def archive(self, environment: HasStorage) -> Archive:
        """An environment's archive; for s3:// with the endpoint and credentials of the
        settings (a missing driver is a usage error)."""
        from basecone_migrate.storage import Archive, ArchiveUnavailable

        url = self.archive_url(environment)
        if url not in self._archives:
            from basecone_migrate.errors import UsageProblem
            from basecone_migrate.settings import mask_url_password

            try:
                self._archives[url] = Archive(url, self.settings.storage_options(url))
            except ArchiveUnavailable as exc:  # it names the URL: not its credentials
                raise UsageProblem(str(exc).replace(url, mask_url_password(url))) from None
        return self._archives[url]

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()


def open_engine(settings: Settings) -> Engine:
    """The engine for the configured database; a URL that is not one is a usage error."""
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    from basecone_migrate.db.engine import make_engine
    from basecone_migrate.errors import UsageProblem
    from basecone_migrate.settings import mask_url_password

    try:
        return make_engine(settings.db_url)
    except (ArgumentError, NoSuchModuleError) as exc:
        raise UsageProblem(
            f"database URL {mask_url_password(settings.db_url)!r} (from {settings.raw('db').source}) "
            f"is not valid: {exc}") from None
