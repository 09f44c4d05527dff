"""Transfers in the background: one job per migration item on procrastinate, a task queue
that keeps its jobs in the same PostgreSQL database (its schema comes with revision 0007).

- `enqueue` defers the jobs inside the caller's transaction (`redeem --background`,
  `resume --background`): when that transaction rolls back, no job exists. A job per item
  carries a queueing lock, so an item never waits twice in the queue, and a lock, so the
  queue never starts two jobs of one item at once.
- `run_worker` (`basecone-migrate worker`) runs them, any number of workers on any number of
  machines. The job body (`transfer_item`) takes the item's advisory lock
  (`locks.ItemLock`) and runs the resumable engine of `services/transfer.py`, so a job that
  runs twice (delivery is at least once) finds the work done or continues it.
- A worker killed with SIGKILL leaves its job ``doing``: nothing in procrastinate 3.10 takes
  it back. Every worker sweeps, every few seconds, the jobs whose worker stopped sending
  heartbeats and queues them again; the next worker resumes the item where it stopped,
  without losing or doubling a document. The advisory lock covers a worker that is only
  cut off: while its connection lives, nobody else moves its item.

procrastinate is imported only here, by the commands that need it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from basecone_migrate.errors import UsageProblem
from basecone_migrate.runtime import Runtime

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from basecone_migrate.services.transfer import Progress

QUEUE = "basecone-migrate-transfers"
TASK = "basecone_migrate.transfer_item"
#: The way back of an undone item (`undo --background`).
RETURN_TASK = "basecone_migrate.return_item"
#: A job whose item another process holds comes back after this many seconds.
BUSY_RETRY_SECONDS = 5
#: An unexpected failure (a lost database connection) is tried this many times more.
ERROR_RETRIES = 5

log = logging.getLogger(__name__)


class ItemBusy(Exception):
    """Another process moves this item right now: try again later."""


def require_postgres(rt: Runtime, worker: bool = False) -> None:
    """Background transfers need a database that workers on other machines share."""
    if rt.engine.dialect.name == "postgresql":
        return
    if worker:
        raise UsageProblem(
            "workers need a shared PostgreSQL database: set BASECONE_MIGRATE_DB (or --db) to the "
            "postgresql://... database the transfers are queued in; on SQLite there is no queue, "
            "because redeem and resume move the archives themselves")
    raise UsageProblem(
        "background transfers need a shared PostgreSQL database (BASECONE_MIGRATE_DB="
        "postgresql://...): workers on other machines cannot reach a SQLite file; leave out "
        "--background to transfer here and now")


def conninfo(rt: Runtime) -> str:
    """The database URL as libpq takes it (without SQLAlchemy's driver suffix)."""
    return str(rt.engine.url.set(drivername="postgresql").render_as_string(hide_password=False))


# -- the queue ---------------------------------------------------------------------------


def _retry_strategy() -> Any:
    """A busy item comes back in a few seconds, for as long as it takes; an unexpected error
    (the database went away) a few times, later each time. A document that does not arrive
    is not an error here: the engine fails the item with its reason, and `resume` is for a
    person to run once the cause is fixed."""
    from procrastinate import BaseRetryStrategy, RetryDecision

    class Strategy(BaseRetryStrategy):  # type: ignore[misc]
        def get_retry_decision(self, *, exception: BaseException, job: Any) -> Any:
            if isinstance(exception, ItemBusy):
                return RetryDecision(retry_in={"seconds": BUSY_RETRY_SECONDS})
            if job.attempts < ERROR_RETRIES:
                return RetryDecision(retry_in={"seconds": 5 * 2 ** job.attempts})
            return None

    return Strategy()


def make_app(rt: Runtime) -> Any:
    """A procrastinate App on the configured database, with the transfer task."""
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo(rt)))

    @app.task(name=TASK, queue=QUEUE, pass_context=True, retry=_retry_strategy())
    def transfer_job(context: Any, item_id: int, actor: str) -> str:
        from basecone_migrate.services.locks import worker_label

        runtime = context.additional_context["runtime"]
        return transfer_item(runtime, item_id, actor, worker_label(context.worker_name),
                             context.additional_context.get("progress"))

    @app.task(name=RETURN_TASK, queue=QUEUE, pass_context=True, retry=_retry_strategy())
    def return_job(context: Any, item_id: int, actor: str, event: str, reason: str | None) -> str:
        from basecone_migrate.services.locks import worker_label

        runtime = context.additional_context["runtime"]
        return return_item(runtime, item_id, actor, event, reason, worker_label(context.worker_name),
                           context.additional_context.get("progress"))

    del transfer_job, return_job  # registered with the app by name

    return app


def _job_locks(item_id: int) -> dict[str, str]:
    name = f"basecone-migrate-item-{item_id}"
    return {"lock": name, "queueing_lock": name}


def queued_items(db: Any, item_ids: Sequence[int]) -> set[int]:
    """The items whose job waits in the queue (``todo``, also a retry not yet due) or has
    been taken (``doing``); plain SQL on procrastinate's table, without importing it. A job
    ``doing`` whose item nobody holds lost its worker: a live worker takes it again."""
    from sqlalchemy import text

    if not item_ids or db.dialect.name != "postgresql":
        return set()
    names = {_job_locks(i)["lock"]: i for i in item_ids}
    rows = db.execute(text(
        "SELECT lock FROM procrastinate_jobs WHERE queue_name = :queue AND ("
        "(status = 'todo' AND queueing_lock = ANY(:names)) OR (status = 'doing' AND lock = ANY(:names)))"),
        {"queue": QUEUE, "names": list(names)}).scalars()
    return {names[name] for name in rows if name in names}


def drop_waiting(session: Session, item_ids: Sequence[int]) -> int:
    """Delete the jobs of these items that wait in the queue and have not started (a
    scheduled start that was paused or cancelled): a later `resume --background` queues
    afresh, to start at once. Through procrastinate's own function, in the session's
    transaction; none on SQLite. Returns how many."""
    from sqlalchemy import text

    if not item_ids or session.get_bind().dialect.name != "postgresql":
        return 0
    names = [_job_locks(i)["queueing_lock"] for i in item_ids]
    ids = session.execute(text(
        "SELECT id FROM procrastinate_jobs WHERE queue_name = :queue AND status = 'todo' "
        "AND queueing_lock = ANY(:names)"), {"queue": QUEUE, "names": names}).scalars().all()
    for job_id in ids:
        session.execute(text("SELECT procrastinate_cancel_job_v1(:id, false, true)"), {"id": job_id})
    return len(ids)


def enqueue_returns(session: Session, item_ids: Sequence[int], actor: str, rt: Runtime, event: str,
                    reason: str | None) -> None:
    """Queue the return of each undone item for the workers, in the session's transaction."""
    from procrastinate import SyncPsycopgConnector
    from procrastinate.jobs import JobDeferrer
    from procrastinate.manager import JobManager

    task = make_app(rt).tasks[RETURN_TASK]
    manager = JobManager(SyncPsycopgConnector())
    raw = session.connection().connection.driver_connection
    for item_id in item_ids:
        job = task.configure(lock=_job_locks(item_id)["lock"]).job
        JobDeferrer(job_manager=manager, job=job, connection=raw).defer(
            item_id=item_id, actor=actor, event=event, reason=reason)


def _reporter(progress: Callable[[str], Progress] | None, worker: str, item: Any) -> Progress | None:
    """The reporter of one job, its lines named after the worker and the item (a row with
    ``migration_id`` and ``administration_id``)."""
    if progress is None:
        return None
    return progress(f"{worker}: migration {item.migration_id}, administration {item.administration_id}")


def return_item(rt: Runtime, item_id: int, actor: str, event: str, reason: str | None,
                worker: str, progress: Callable[[str], Progress] | None = None) -> str:
    """The body of a return job: bring one undone item back, holding its lock (ItemBusy while
    another process holds it), reported as `transfer_item` reports; its mails once the
    migration's last item is back."""
    from sqlalchemy import select

    from basecone_migrate.db.tables import migration_items
    from basecone_migrate.mail import Postman
    from basecone_migrate.services.locks import ItemLock
    from basecone_migrate.services.migrations.returning import return_items

    lock = ItemLock(rt, item_id, worker)
    if not lock.try_acquire():
        raise ItemBusy(f"item {item_id} is being moved by another process")
    try:
        with rt.reading() as db:
            item = db.execute(select(migration_items.c.migration_id, migration_items.c.administration_id)
                              .where(migration_items.c.id == item_id)).one()
        Postman(rt).deliver(return_items(rt, item.migration_id, [item_id], event=event, actor=actor,
                                         reason=reason, progress=_reporter(progress, worker, item)))
        return "returned"
    finally:
        lock.release()


def enqueue(session: Session, item_ids: Sequence[int], actor: str, rt: Runtime,
            schedule_at: datetime | None = None) -> int:
    """Queue a transfer job for each item, in the session's transaction (it must be on
    PostgreSQL), due at once or at ``schedule_at`` (no worker takes it earlier). An item
    that already waits in the queue is not queued twice. Returns how many jobs were queued."""
    from procrastinate import SyncPsycopgConnector
    from procrastinate.exceptions import AlreadyEnqueued
    from procrastinate.jobs import JobDeferrer
    from procrastinate.manager import JobManager

    app = make_app(rt)
    task = app.tasks[TASK]
    # A job manager that is never opened: it only uses the connection it is handed, which
    # works whether or not this process runs a worker (an opened App would be async).
    manager = JobManager(SyncPsycopgConnector())
    raw = session.connection().connection.driver_connection
    queued = 0
    for item_id in item_ids:
        job = task.configure(**_job_locks(item_id), schedule_at=schedule_at).job
        try:
            with raw.transaction():  # a savepoint: a refused defer leaves the rest intact
                JobDeferrer(job_manager=manager, job=job, connection=raw).defer(
                    item_id=item_id, actor=actor)
            queued += 1
        except AlreadyEnqueued:
            pass  # its job is already waiting
    return queued


# -- the job --------------------------------------------------------------------------------


def transfer_item(rt: Runtime, item_id: int, actor: str, worker: str,
                  progress: Callable[[str], Progress] | None = None) -> str:
    """The body of a job: move one item with the resumable engine, holding its lock.
    Returns the item's status; raises ItemBusy when another process holds the item.
    ``progress`` makes the reporter of one item from its name (``worker``'s log lines)."""
    from sqlalchemy import select

    from basecone_migrate.db.tables import migration_items
    from basecone_migrate.domain.lifecycle import ItemStatus
    from basecone_migrate.mail import Postman
    from basecone_migrate.services.locks import ItemLock
    from basecone_migrate.services.transfer import RESUMABLE, NoProgress, run_item

    lock = ItemLock(rt, item_id, worker)
    if not lock.try_acquire():
        raise ItemBusy(f"item {item_id} is being moved by another process")
    try:
        with rt.reading() as db:
            item = db.execute(select(migration_items.c.status, migration_items.c.migration_id,
                                     migration_items.c.administration_id)
                              .where(migration_items.c.id == item_id)).one()
        if item.status == ItemStatus.SCHEDULED and not _start(rt, item_id):
            return "not started: it left scheduled meanwhile"  # paused or cancelled
        elif item.status not in (*RESUMABLE, ItemStatus.SCHEDULED):
            return str(item.status)  # done by an earlier run, by `resume`; paused, cancelled
        status, mail_ids = run_item(rt, item_id, actor, _reporter(progress, worker, item) or NoProgress(),
                                    worker=worker)
        Postman(rt).deliver(mail_ids)
        return status
    finally:
        lock.release()


def _start(rt: Runtime, item_id: int) -> bool:
    """A scheduled item's time has come: in progress (False when it left ``scheduled``)."""
    from basecone_migrate.db.lifecycle import guarded
    from basecone_migrate.db.tables import migration_items
    from basecone_migrate.domain.lifecycle import Actor, Event

    with rt.uow() as uow:
        started = uow.session.execute(  # guarded() drops scheduled_for with the status
            guarded(Event.START, Actor.WORKER, migration_items.c.id == item_id)).rowcount
        uow.commit()
    return started == 1


# -- workers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerOptions:
    concurrency: int = 1
    once: bool = False
    name: str | None = None
    heartbeat: float = 5.0
    stalled_after: float = 30.0
    #: Makes each job's reporter from a name (``name:pid: migration M, administration A``).
    progress: Callable[[str], Progress] | None = None


def run_worker(rt: Runtime, options: WorkerOptions) -> int:
    """Run queued transfers until stopped (SIGINT or SIGTERM: running transfers finish
    first), or with ``once`` until no job of ours is running, due or waiting for a retry;
    then return how many starts scheduled for later (`--start-after`) it left queued."""
    require_postgres(rt, worker=True)
    rt.engine  # noqa: B018 - connected and schema-checked before any thread uses it
    logging.getLogger("procrastinate").setLevel(logging.WARNING)
    app = make_app(rt)
    return asyncio.run(_run(app, rt, options))


async def _run(app: Any, rt: Runtime, options: WorkerOptions) -> int:
    settings = {
        "queues": [QUEUE], "concurrency": options.concurrency,
        "name": options.name or socket.gethostname(),
        "update_heartbeat_interval": options.heartbeat,
        "fetch_job_polling_interval": 1.0,
        "additional_context": {"runtime": rt, "progress": options.progress},
        "delete_jobs": "successful",
    }
    async with app.open_async():
        if not options.once:
            sweeper = asyncio.create_task(_sweep_forever(app, options))
            try:
                await app.run_worker_async(wait=True, **settings)
            finally:
                sweeper.cancel()
            return 0
        while True:
            await requeue_stalled(app, options.stalled_after)
            await app.run_worker_async(wait=False, **settings)
            due, later = await waiting(app)
            if not due:
                return later
            await asyncio.sleep(1.0)


async def _sweep_forever(app: Any, options: WorkerOptions) -> None:
    while True:
        try:
            await requeue_stalled(app, options.stalled_after)
        except Exception:  # noqa: BLE001 - a failed sweep is tried again next time
            log.exception("could not requeue stalled transfer jobs")
        await asyncio.sleep(max(1.0, options.heartbeat))


async def requeue_stalled(app: Any, stalled_after: float) -> int:
    """Queue again the jobs whose worker stopped sending heartbeats (killed, machine lost)."""
    from procrastinate.exceptions import ConnectorException

    count = 0
    for job in await app.job_manager.get_stalled_jobs(queue=QUEUE, seconds_since_heartbeat=stalled_after):
        try:
            await app.job_manager.retry_job(job)
            count += 1
        except ConnectorException:
            pass  # another worker's sweep took it back first
    return count


#: Jobs of ours running, due, or waiting to be retried; and (``later``) starts scheduled for a
#: later instant (`redeem --start-after`), which `worker --once` leaves to a later run.
_WAITING = """
SELECT count(*) FILTER (WHERE status = 'doing' OR scheduled_at IS NULL OR scheduled_at <= now()
                               OR attempts > 0) AS now,
       count(*) FILTER (WHERE status = 'todo' AND scheduled_at > now() AND attempts = 0) AS later
  FROM procrastinate_jobs
 WHERE queue_name = %(queue)s AND status IN ('todo', 'doing')
"""


async def waiting(app: Any) -> tuple[int, int]:
    """(jobs of ours to run now, running, or waiting for a retry; starts scheduled later)."""
    row = await app.connector.execute_query_one_async(_WAITING, queue=QUEUE)
    return int(row["now"]), int(row["later"])
