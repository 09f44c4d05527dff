"""One transfer per migration at a time, and one process per migration item, across
processes and machines.

The lock belongs to the operating system or the database server, not to a row: it is
released when its process dies, so ``resume`` right after a crash proceeds, while a
second ``resume`` of a transfer that is still running is refused.

On PostgreSQL an inline transfer (`redeem`, `resume`) holds its migration's lock and the
lock of every item of it; a background worker holds only the lock of the item it moves
(`ItemLock`), so workers on several machines move the items of one migration side by side,
and an inline `resume` is refused while any of them runs.

- PostgreSQL: a session-level advisory lock on a connection held for the transfer. TCP
  keepalives make the server notice a lost machine within about half a minute (not the
  two hours of the operating system's defaults), and the session is exempt from an idle
  timeout, which would otherwise drop the lock in the middle of a transfer.
- SQLite: an ``flock`` on a file beside the database. The file is kept: a lock file that
  is deleted on release lets two processes lock two different files of the same name.

``is_running`` looks at the lock without taking it (``pg_locks``, ``/proc/locks``), so
asking for the status never makes a concurrent ``resume`` fail; ``holders`` says which
process holds it (``host:pid``): on PostgreSQL each lock's connection carries it as its
``application_name``, on SQLite ``/proc/locks`` names the pid of the ``flock``.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from basecone_migrate.errors import Refused
from basecone_migrate.runtime import Runtime

#: First key of the two-key advisory locks: "bcm" + 1 for a migration, + 2 for an item
#: (schema upgrades use another).
LOCK_NAMESPACE = 0x62636D01
ITEM_NAMESPACE = 0x62636D02
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
               "keepalives_count": 3, "tcp_user_timeout": 30_000}
#: pg_locks lists the advisory locks of every database on the server; ours are in this one.
_THIS_DATABASE = "database = (SELECT oid FROM pg_database WHERE datname = current_database())"
#: A lock's connection is named ``basecone-migrate HOST:PID`` (its ``application_name``).
HOLDER_PREFIX = "basecone-migrate "


def worker_label(name: str | None = None) -> str:
    """How `status` names the process that runs a transfer: host (or worker name) and pid."""
    return f"{name or socket.gethostname()}:{os.getpid()}"


class _Advisory:
    """Session advisory locks of PostgreSQL on a connection of their own, outside the pool,
    with keepalives: held until released or until the connection (the process) dies. The
    connection is named after ``holder`` (default: this process), for `status` to read."""

    def __init__(self, rt: Runtime, holder: str | None = None) -> None:
        self.rt = rt
        self.holder = holder or worker_label()
        self.connection: Any = None
        self._engine: Any = None

    def try_all(self, keys: list[tuple[int, int]]) -> bool:
        """Take every key, or none (False when any is held elsewhere)."""
        self._engine = create_engine(self.rt.engine.url, poolclass=NullPool, connect_args={
            **_KEEPALIVES, "application_name": (HOLDER_PREFIX + self.holder)[:63]})
        connection = self._engine.connect()
        if connection.dialect.server_version_info >= (14,):
            connection.execute(text("SET idle_session_timeout = 0"))
        taken: list[tuple[int, int]] = []
        for a, b in keys:
            if connection.execute(text("SELECT pg_try_advisory_lock(:a, :b)"), {"a": a, "b": b}).scalar():
                taken.append((a, b))
            else:
                break
        connection.commit()
        self.connection = connection
        if len(taken) < len(keys):
            self.release()
            return False
        return True

    def release(self) -> None:
        connection, self.connection = self.connection, None
        if connection is None:
            return
        try:
            connection.execute(text("SELECT pg_advisory_unlock_all()"))
            connection.commit()
        finally:
            connection.close()
            self._engine.dispose()


class TransferLock:
    """The migration's lock; with ``items`` (an inline transfer) also its items' locks."""

    def __init__(self, rt: Runtime, migration_id: int, items: bool = True) -> None:
        self.rt = rt
        self.migration_id = migration_id
        self.items = items
        self._held: Any = None

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

    def _item_ids(self) -> list[int]:
        from sqlalchemy import select

        from basecone_migrate.db.tables import migration_items

        with self.rt.reading() as db:
            return list(db.scalars(select(migration_items.c.id).where(
                migration_items.c.migration_id == self.migration_id).order_by(migration_items.c.id)))

    def try_acquire(self) -> bool:
        if self._postgres:
            held = _Advisory(self.rt)
            keys = [(LOCK_NAMESPACE, self.migration_id)]
            if self.items:
                keys += [(ITEM_NAMESPACE, i) for i in self._item_ids()]
            if not held.try_all(keys):
                return False
            self._held = held
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
        if held is not None:
            held.release()

    def __enter__(self) -> TransferLock:
        if not self.try_acquire():
            raise Refused(
                f"migration {self.migration_id} is being transferred by another process right now: "
                f"wait for it, or follow it with `basecone-migrate status {self.migration_id} --watch`")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def is_running(self) -> bool:
        """True when a process holds the migration's lock, or (PostgreSQL) a worker the
        lock of one of its items, found without taking any."""
        if self._held is not None:
            return True
        if self._postgres:
            items = self._item_ids()
            with self.rt.engine.connect() as connection:
                return bool(connection.execute(text(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    f"AND {_THIS_DATABASE} AND objsubid = 2 AND ((classid = :a AND objid = :b) "
                    "OR (classid = :i AND objid = ANY(CAST(:items AS oid[])))))"),
                    {"a": LOCK_NAMESPACE, "b": self.migration_id, "i": ITEM_NAMESPACE,
                     "items": items}).scalar())
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

    def holders(self, item_ids: list[int]) -> dict[int, str | None]:
        """The items of ``item_ids`` that a live process holds, each with that process
        (``host:pid``, or None where the lock does not say), found without taking any lock.
        On SQLite an inline transfer holds the migration, so every item of it."""
        if not item_ids:
            return {}
        if self._postgres:
            with self.rt.engine.connect() as connection:
                rows = connection.execute(text(
                    "SELECT CAST(l.objid AS bigint), a.application_name FROM pg_locks l "
                    "LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
                    f"WHERE l.locktype = 'advisory' AND l.granted AND l.{_THIS_DATABASE} AND l.objsubid = 2 "
                    "AND l.classid = :i AND l.objid = ANY(CAST(:items AS oid[]))"),
                    {"i": ITEM_NAMESPACE, "items": item_ids}).all()
            return {int(item): (name[len(HOLDER_PREFIX):] if name and name.startswith(HOLDER_PREFIX)
                                else None) for item, name in rows}
        path = self._path()
        pids = _flock_pids(path) if path.exists() else []
        if pids is None:  # no /proc/locks: whether, but not who
            return dict.fromkeys(item_ids) if self.is_running() else {}
        if not pids:
            return {}
        return dict.fromkeys(item_ids, f"{socket.gethostname()}:{pids[0]}")


class ItemLock:
    """What a background worker holds while it moves one item (PostgreSQL only), named
    after ``holder`` (the worker's ``name:pid``)."""

    def __init__(self, rt: Runtime, item_id: int, holder: str | None = None) -> None:
        self._held = _Advisory(rt, holder)
        self.item_id = item_id

    def try_acquire(self) -> bool:
        return self._held.try_all([(ITEM_NAMESPACE, self.item_id)])

    def release(self) -> None:
        self._held.release()


def _flock_held(path: Path) -> bool | None:
    """Whether any process holds an flock on ``path`` (Linux: /proc/locks), else None."""
    pids = _flock_pids(path)
    return None if pids is None else bool(pids)


def _flock_pids(path: Path) -> list[int] | None:
    """The processes that hold an flock on ``path`` (Linux: /proc/locks; a line reads
    ``1: FLOCK  ADVISORY  WRITE 14205 08:01:1234 0 EOF``), else None."""
    try:
        with open("/proc/locks") as locks:
            lines = locks.read().splitlines()
    except OSError:
        return None
    stat = os.stat(path)
    wanted = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    pids = []
    for line in lines:
        fields = line.split()
        if "FLOCK" in fields and "->" not in fields and wanted in fields:
            at = fields.index(wanted) - 1
            pids.append(int(fields[at]) if fields[at].isdigit() else 0)
    return pids
