"""What one run of the tool works with: settings, the database, archives and the clock.

Built lazily, so a command that fails on its arguments never opens a database,
and `--help` imports none of it.
"""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING

from basecone_migrate.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from basecone_migrate.db.engine import UnitOfWork
    from basecone_migrate.db.models import Environment
    from basecone_migrate.storage import Archive


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._archives: dict[str, Archive] = {}

    @cached_property
    def engine(self) -> Engine:
        from basecone_migrate.db.engine import ensure_schema, make_engine

        engine = make_engine(self.settings.db_url)
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

    def uow(self) -> UnitOfWork:
        from basecone_migrate.db.engine import UnitOfWork

        return UnitOfWork(self._sessions)

    def now(self) -> datetime:
        return self.settings.now()

    def archive_url(self, environment: Environment) -> str:
        from basecone_migrate.storage import environment_root

        return environment_root(self.settings.storage, environment.code, environment.storage)

    def archive(self, environment: Environment) -> Archive:
        from basecone_migrate.storage import Archive

        url = self.archive_url(environment)
        if url not in self._archives:
            self._archives[url] = Archive(url)
        return self._archives[url]

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()
