"""What one run of the tool works with: settings, the database, archives and the clock.

Built lazily, so a command that fails on its arguments never opens a database,
and `--help` imports none of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import cached_property
from pathlib import Path
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
        self._claimed: set[str] = set()  # places marked as this database's in this run
        self._checked: set[str] = set()  # places found not to be another's (nothing written)
        self._warned_unencrypted = False

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

        if not read_only:
            self.identity  # noqa: B018 - made, if need be, before SQLite's write lock is held
        return UnitOfWork(self._read_sessions if read_only else self._sessions, read_only)

    @cached_property
    def _reading_engine(self) -> Engine:
        from basecone_migrate.db.engine import reading

        return reading(self.engine)

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """A writing transaction in Core, committed when the block ends without an error
        (``BEGIN IMMEDIATE`` on SQLite, as every writer)."""
        self.identity  # noqa: B018 - made, if need be, before SQLite's write lock is held
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

    # -- what belongs to this database ------------------------------------------------

    @cached_property
    def identity(self) -> str:
        """This database's identity (made on first use), which its folders are marked with."""
        from basecone_migrate.db.identity import identity_of

        return identity_of(self.engine)

    @property
    def storage_root(self) -> str:
        """The storage root: as set, the default database's ``archive/``, or this database's
        own folder in the data folder."""
        return self.settings.storage or str(self.settings.database_folder(self.identity) / "archive")

    @property
    def outbox_dir(self) -> Path:
        return self.settings.outbox_dir or self.settings.database_folder(self.identity) / "outbox"

    def claim_outbox(self, check_only: bool = False) -> Path:
        """The outbox, checked to be this database's (marked so on its first mail, or with
        ``check_only`` only checked): else Refused."""
        folder = self.outbox_dir
        if str(folder) not in self._claimed:
            self._claim(str(folder), "the outbox folder", None, check_only)
            if not check_only:
                self._claimed.add(str(folder))
        return folder

    def _claim(self, place: str, what: str, archive: Archive | None, check_only: bool = False) -> None:
        """Mark ``place`` (a local folder, or ``archive``'s root) as this database's, or with
        ``check_only`` only check that it is not another's; Refused (exit 1) otherwise."""
        from basecone_migrate import ownership
        from basecone_migrate.errors import Refused
        from basecone_migrate.settings import mask_url_password

        url = mask_url_password(self.settings.db_url)
        now = self.now().isoformat()
        local = archive is None or archive.is_local
        folder = archive.root if archive is not None else place
        try:
            if check_only:
                owner = (ownership.check_folder(folder, self.identity) if local
                         else ownership.check_object_root(archive.fs, folder, self.identity))  # type: ignore[union-attr]
            elif local:
                owner = ownership.claim_folder(folder, self.identity, url, now)
            else:
                owner = ownership.claim_object_root(archive.fs, folder, self.identity, url, now,  # type: ignore[union-attr]
                                                    exclusive=archive.object_store)  # type: ignore[union-attr]
        except ownership.ForeignRoot as foreign:
            if foreign.owner is None:
                raise Refused(f"{what} {mask_url_password(place)} cannot be used: {foreign.problem}") from None
            where = f"{what} {mask_url_password(place)}"
            if foreign.place != folder:
                where += f" is inside {mask_url_password(foreign.place)}, which"
            fix = ("set BASECONE_MIGRATE_SMTP_HOST, or give it a data folder of its own"
                   if archive is None else "give it a folder of its own (BASECONE_MIGRATE_STORAGE, "
                                           "or the environment's storage in the world file)")
            raise Refused(f"{where} belongs to another database ({foreign.owner.describe()}); this "
                          f"database ({url}) never reads, writes or removes what is there: {fix}") from None
        if archive is not None and owner is not None:
            archive.token = owner.root

    def _check_default_root(self) -> None:
        """This database's own default root does not exist yet while it holds documents under
        it: they are elsewhere (before revision 0008 every database used the data folder's
        ``archive/``). Refused, saying where to point it, rather than reported missing."""
        root = Path(self.storage_root)
        if self.settings.storage is not None or "default root" in self._checked or root.exists():
            return
        from sqlalchemy import func, select

        from basecone_migrate.db.tables import administrations, documents, environments
        from basecone_migrate.errors import Refused

        with self.reading() as db:
            held = db.scalar(select(func.count(documents.c.id))
                             .join(administrations, administrations.c.id == documents.c.administration_id)
                             .join(environments, environments.c.id == administrations.c.environment_id)
                             .where(environments.c.storage.is_(None)))
        self._checked.add("default root")
        if held:
            legacy = self.settings.data_dir / "archive"
            raise Refused(
                f"this database holds {held} documents under its storage root, but its own folder "
                f"{root} does not exist: if they are in {legacy} (where every database kept them "
                f"before this version), set BASECONE_MIGRATE_STORAGE={legacy}")

    # -- archives -------------------------------------------------------------------------

    def archive_url(self, environment: HasStorage) -> str:
        from basecone_migrate.storage import environment_root

        return environment_root(self.storage_root, environment.code, environment.storage)

    def archive(self, environment: HasStorage, claim: bool = True) -> Archive:
        """An environment's archive, claimed for this database (with ``claim`` False only
        checked not to be another's: nothing is written), else Refused; for s3:// with the
        endpoint and credentials of the settings (a missing driver is a usage error)."""
        url = self.archive_url(environment)
        archive = self._archives.get(url)
        if archive is None:
            archive = self._archives[url] = self.open_archive(url)
        if url in self._claimed or (not claim and url in self._checked):
            return archive
        if claim and url in self._checked and archive.token is not None and environment.storage:
            self._claimed.add(url)  # found marked as this database's a moment ago: it is claimed
            return archive
        if not environment.storage:  # under the storage root: the root must be this database's too
            root = self.storage_root
            self._check_default_root()
            if claim and root not in self._claimed:
                self._claim(root, "the storage root", self.open_archive(root))
                self._claimed.add(root)
            elif not claim and root not in self._checked | self._claimed:
                self._claim(root, "the storage root", self.open_archive(root), check_only=True)
                self._checked.add(root)
        self._claim(url, "the archive folder", archive, check_only=not claim)
        (self._claimed if claim else self._checked).add(url)
        return archive

    def open_archive(self, url: str) -> Archive:
        """The archive at ``url`` as configured (a missing driver is a usage error), unclaimed."""
        from basecone_migrate.errors import UsageProblem
        from basecone_migrate.settings import mask_url_password
        from basecone_migrate.storage import Archive, ArchiveUnavailable

        options = self.settings.storage_options(url)
        try:
            archive = Archive(url, options, **({"transfers": self.settings.s3_transfers} if options else {}))
        except ArchiveUnavailable as exc:  # it names the URL: not its credentials
            raise UsageProblem(str(exc).replace(url, mask_url_password(url))) from None
        if archive.object_store:
            self._warn_if_unencrypted()
        return archive

    def _warn_if_unencrypted(self) -> None:
        """Once a run: documents would cross a network in the clear to a plain-HTTP endpoint
        on another machine (on this one, loopback, they never leave it)."""
        endpoint = self.settings.s3_endpoint_url
        if self._warned_unencrypted or not endpoint or not endpoint.startswith("http://"):
            return
        from basecone_migrate.settings import is_loopback_url, mask_url_password

        self._warned_unencrypted = True
        if not is_loopback_url(endpoint):
            import sys

            from basecone_migrate.domain.text import one_line

            sys.stderr.write("Warning: " + one_line(
                f"the S3 endpoint {mask_url_password(endpoint)} is plain HTTP on another machine: "
                "documents and credentials travel unencrypted (use an https:// endpoint)") + "\n")

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
