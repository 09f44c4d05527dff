"""One transfer per migration at a time, across processes.

The lock belongs to the operating system or the database server, not to a row: it is
released when its process dies, so ``resume`` right after a crash proceeds, while a
second ``resume`` of a transfer that is still running is refused.

- PostgreSQL: a session-level advisory lock on a connection held for the transfer. TCP
  keepalives make the server notice a lost machine within about half a minute (not the
  two hours of the operating system's defaults), and the session is exempt from an idle
  timeout, which would otherwise drop the lock in the middle of a transfer.
- SQLite: an ``flock`` on a file beside the database. The file is kept: a lock file that
  is deleted on release lets two processes lock two different files of the same name.

``is_running`` looks at the lock without taking it (``pg_locks``, ``/proc/locks``), so
asking for the status never makes a concurrent ``resume`` fail.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from basecone_migrate.errors import Refused
from basecone_migrate.runtime import Runtime

#: First key of the two-key advisory lock: "bcm" + 1 (schema upgrades use another).
LOCK_NAMESPACE = 0x62636D01
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
               "keepalives_count": 3, "tcp_user_timeout": 30_000}


class TransferLock:
    def __init__(self, rt: Runtime, migration_id: int) -> None:
        self.rt = rt
        self.migration_id = migration_id
        self._held: Any = None
        self._engine: Any = None

    @property
    def _postgres(self) -> bool:
        return self.rt.engine.dialect.name == "postgresql"

    def _path(self) -> Path:
        database = self.rt.engine.url.database
        if database and database != ":memory:":
            folder = Path(database).with_name(Path(database).name + ".locks")
        else:
            folder = self.rt.settings.data_dir / "locks"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"migration-{self.migration_id}.lock"

    def try_acquire(self) -> bool:
        if self._postgres:
            # A connection of its own, outside the pool, with keepalives.
            self._engine = create_engine(self.rt.engine.url, poolclass=NullPool,
                                         connect_args=_KEEPALIVES)
            connection = self._engine.connect()
            if connection.dialect.server_version_info >= (14,):
                connection.execute(text("SET idle_session_timeout = 0"))
            got = connection.execute(text("SELECT pg_try_advisory_lock(:a, :b)"),
                                     {"a": LOCK_NAMESPACE, "b": self.migration_id}).scalar()
            connection.commit()
            if not got:
                connection.close()
                self._engine.dispose()
                return False
            self._held = connection
            return True
        from filelock import FileLock, Timeout

        lock = FileLock(str(self._path()), timeout=0, thread_local=False, preserve_lock_file=True)
        try:
            lock.acquire()
        except Timeout:
            return False
        self._held = lock
        return True

    def release(self) -> None:
        held, self._held = self._held, None
        if held is None:
            return
        if self._postgres:
            try:
                held.execute(text("SELECT pg_advisory_unlock(:a, :b)"),
                             {"a": LOCK_NAMESPACE, "b": self.migration_id})
                held.commit()
            finally:
                held.close()
                self._engine.dispose()
        else:
            held.release()

    def __enter__(self) -> TransferLock:
        if not self.try_acquire():
            raise Refused(
                f"migration {self.migration_id} is being transferred by another process right now: "
                f"wait for it, or follow it with `basecone-migrate status {self.migration_id}`")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def is_running(self) -> bool:
        """True when a process holds the lock now, found without taking it."""
        if self._held is not None:
            return True
        if self._postgres:
            with self.rt.engine.connect() as connection:
                return bool(connection.execute(text(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND classid = :a AND objid = :b AND objsubid = 2)"),
                    {"a": LOCK_NAMESPACE, "b": self.migration_id}).scalar())
        path = self._path()
        if not path.exists():
            return False
        held = _flock_held(path)
        if held is not None:
            return held
        if self.try_acquire():  # no /proc/locks: a brief try is the only way to ask
            self.release()
            return False
        return True


def _flock_held(path: Path) -> bool | None:
    """Whether any process holds an flock on ``path`` (Linux: /proc/locks), else None."""
    try:
        with open("/proc/locks") as locks:
            lines = locks.read().splitlines()
    except OSError:
        return None
    stat = os.stat(path)
    wanted = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    for line in lines:
        fields = line.split()
        if "FLOCK" in fields and any(field == wanted for field in fields):
            return True
    return False
