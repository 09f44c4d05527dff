"""One transfer per migration at a time, across processes.

The lock belongs to the operating system or the database server, not to a row: it is
released the moment its process dies (killed, machine lost), so ``resume`` right after
a crash proceeds, while a second ``resume`` of a transfer that is still running is
refused.

- PostgreSQL: a session-level advisory lock on a connection held for the transfer.
- SQLite: an ``flock`` on a file beside the database (through ``filelock``).
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import text

from basecone_migrate.errors import Refused
from basecone_migrate.runtime import Runtime

#: First key of the two-key advisory lock: "bcm" + 1 (schema upgrades use another).
LOCK_NAMESPACE = 0x62636D01


class TransferLock:
    def __init__(self, rt: Runtime, migration_id: int) -> None:
        self.rt = rt
        self.migration_id = migration_id
        self._held: Any = None

    def _file_lock(self) -> Any:
        from filelock import FileLock

        database = self.rt.engine.url.database
        if database and database != ":memory:":
            folder = Path(database).with_name(Path(database).name + ".locks")
        else:
            folder = self.rt.settings.data_dir / "locks"
        folder.mkdir(parents=True, exist_ok=True)
        return FileLock(str(folder / f"migration-{self.migration_id}.lock"), timeout=0,
                        thread_local=False)

    def try_acquire(self) -> bool:
        if self.rt.engine.dialect.name == "postgresql":
            connection = self.rt.engine.connect()
            got = connection.execute(text("SELECT pg_try_advisory_lock(:a, :b)"),
                                     {"a": LOCK_NAMESPACE, "b": self.migration_id}).scalar()
            connection.commit()
            if not got:
                connection.close()
                return False
            self._held = connection
            return True
        from filelock import Timeout

        lock = self._file_lock()
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
        if self.rt.engine.dialect.name == "postgresql":
            try:
                held.execute(text("SELECT pg_advisory_unlock(:a, :b)"),
                             {"a": LOCK_NAMESPACE, "b": self.migration_id})
                held.commit()
            finally:
                held.close()
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
        """True when another process holds the lock now (for `status`)."""
        if self._held is not None:
            return True
        if self.try_acquire():
            self.release()
            return False
        return True
