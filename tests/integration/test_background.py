"""Background transfers: `redeem --background` queues, `worker` processes move, on PostgreSQL.

Workers run as real processes of the installed program, against the real queue
(procrastinate's tables in the test database): two workers share a batch, a worker killed
with SIGKILL in the middle of a copy leaves its item to another, and every document
arrives once with its bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    SUE,
    TINA,
    Cli,
    make_offer,
    run_process,
    sample_world,
    snapshot_database,
    snapshot_files,
    without_clock_warning,
    write_world,
)
from tests.integration.test_transfer import (
    assert_moved_intact,
    env_process,
    item_row,
    many_documents,
    wait_until_copying,
)

pytestmark = pytest.mark.slow
ONLY_POSTGRES = pytest.mark.parametrize("backend", ["postgresql"])
QUICK = ("--heartbeat", "1", "--stalled-after", "3")
#: For workers that all stay alive: a heartbeat each second, and a job taken back only after
#: 30 s without one, so that a loaded machine (CI's two cores) never requeues the job of a
#: worker that is merely slow to beat.
ALIVE = ("--heartbeat", "1", "--stalled-after", "30")


def _jobs(url: str) -> list[tuple[str, str]]:
    from sqlalchemy import create_engine

    engine = create_engine(url)
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT status::text, args::text FROM procrastinate_jobs ORDER BY id").all()
    engine.dispose()
    return [tuple(r) for r in rows]


def _redeem_background(cli: Cli, code: str, *extra: str) -> dict[str, Any]:
    return cli.ok("--as", TINA, "redeem", code, "--accept-terms", "--background", *extra, "--json").json()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_background_is_refused_on_sqlite_and_nothing_changes(
        cli: Cli, loaded: Any, backend: str, db_url: str, storage: Path) -> None:
    offer = make_offer(cli, "1001")
    before, files = snapshot_database(db_url), snapshot_files(storage)
    result = cli("--as", TINA, "redeem", offer["transfercode"], "--accept-terms", "--background")
    assert result.exit_code == 2
    assert result.error == (
        "Error: background transfers need a shared PostgreSQL database (BASECONE_MIGRATE_DB="
        "postgresql://...): workers on other machines cannot reach a SQLite file; leave out "
        "--background to transfer here and now")
    assert snapshot_database(db_url) == before and snapshot_files(storage) == files
    resumed = cli("--as", SUE, "resume", str(offer["migration_id"]), "--background")
    assert resumed.exit_code == 2 and "need a shared PostgreSQL database" in resumed.error
    worker = cli("worker", "--once")
    assert (worker.exit_code, worker.error) == (2, (
        "Error: workers need a shared PostgreSQL database: set BASECONE_MIGRATE_DB (or --db) to the "
        "postgresql://... database the transfers are queued in; on SQLite there is no queue, "
        "because redeem and resume move the archives themselves"))


@ONLY_POSTGRES
def test_redeem_background_queues_one_job_per_item_and_a_worker_moves_them(
        cli: Cli, loaded: Any, backend: str, db_url: str, env_vars: dict[str, str], storage: Path) -> None:
    offer = make_offer(cli, "1001", "1002", extra=("--confirm-checklist",))
    before = cli.ok("archive", "list", "1001", "--json").json()
    result = _redeem_background(cli, offer["transfercode"])
    assert result["status"] == "in_progress"
    assert [i["status"] for i in result["items"]] == ["in_progress", "in_progress"]
    assert [s for s, _ in _jobs(db_url)] == ["todo", "todo"]
    assert (storage / "ACME" / "1").is_dir()  # nothing moved yet
    status = cli.ok("status", str(offer["migration_id"]), "--json").json()
    assert status["status"] == "in_progress" and not status["transfer_running"]

    done = run_process(["worker", "--once"], env_vars, timeout=120)
    assert done.returncode == 0, done.stderr
    status = cli.ok("status", str(offer["migration_id"]), "--json").json()
    assert [i["status"] for i in status["items"]] == ["completed", "completed"]
    assert all(i["worker"] and i["worker"].endswith(tuple("0123456789")) for i in status["items"])
    after = cli.ok("--as", TINA, "archive", "list", "1001", "--json").json()
    assert [(d["sha256"], d["size"]) for d in after] == [(d["sha256"], d["size"]) for d in before]
    assert not (storage / "ACME" / "1").exists()
    for document in after:
        assert hashlib.sha256((storage / "BOOK" / document["storage_key"]).read_bytes()).hexdigest() == \
            document["sha256"]
    assert _jobs(db_url) == []  # finished jobs are not kept
    completed = [m for m in cli.ok("mail", "list", "--json").json() if m["event"] == "completed"]
    assert len(completed) == 1


def _wait_for(predicate: Any, timeout: float = 120, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(step)


def _audit(cli: Cli, action: str) -> list[dict[str, Any]]:
    return [e for e in cli.ok("audit", "--limit", "10000", "--json").json() if e["action"] == action]


def batch_world(world_dir: Path, administrations: int, documents: int) -> dict[str, Any]:
    """The sample world with ``administrations`` more in ACME, each with ``documents``
    documents and a place waiting for it in BOOK's Twinfield catalogue."""
    world = sample_world(world_dir)
    acme, book = world["environments"][0], world["environments"][1]
    for a in range(administrations):
        code, name = f"{2001 + a}", f"Batch {a + 1} BV"
        folder = world_dir / code
        folder.mkdir()
        for n in range(documents):
            (folder / f"{n}.pdf").write_bytes(f"{code}/{n} ".encode() * (200 + n))
        acme["accounting_systems"][0]["catalogue"].append({"code": code, "name": name})
        book["accounting_systems"][0]["catalogue"].append({"code": code, "name": name})
        acme["administrations"].append({"code": code, "name": name, "accounting_system": "acme-tw",
                                        "documents": [f"{code}/{n}.pdf" for n in range(documents)]})
    return world


@ONLY_POSTGRES
def test_two_workers_share_a_batch_and_move_each_administration_once(
        backend: str, env_vars: dict[str, str], world_dir: Path, storage: Path, shm: Path,
        db_url: str) -> None:
    cli = Cli(env_vars)
    world = batch_world(world_dir, administrations=8, documents=150)
    world["environments"][1]["storage"] = str(shm)
    cli.ok("load", write_world(world_dir, world))
    codes = [f"{2001 + a}" for a in range(8)]
    before = {code: cli.ok("--as", SUE, "archive", "list", code, "--json").json() for code in codes}
    workers = [env_process(env_vars, "worker", "--concurrency", "2", "--name", name, *ALIVE)
               for name in ("alpha", "beta")]
    try:
        offer = make_offer(cli, *codes)
        # Running workers may finish all eight before the redeem reads its answer: that they,
        # not the redeem, moved each is shown by the workers' names below.
        assert _redeem_background(cli, offer["transfercode"])["status"] in ("in_progress", "completed")
        watched = run_process(["status", str(offer["migration_id"]), "--watch", "--interval", "0.2",
                               "--json"], env_vars, timeout=180)
        assert watched.returncode == 0, watched.stderr
        final = json.loads(watched.stdout)
    finally:
        for process in workers:
            process.send_signal(signal.SIGTERM)
        outcomes = [process.communicate(timeout=60) for process in workers]
    assert [p.returncode for p in workers] == [0, 0], outcomes
    assert [i["status"] for i in final["items"]] == ["completed"] * 8
    assert {i["worker"].split(":")[0] for i in final["items"]} == {"alpha", "beta"}
    for code in codes:
        after = cli.ok("--as", TINA, "archive", "list", code, "--json").json()
        assert [(d["sha256"], d["size"]) for d in after] == [(d["sha256"], d["size"]) for d in before[code]]
        admin_id = after[0]["storage_key"].split("/")[0]
        assert sorted(os.listdir(shm / admin_id)) == sorted(d["sha256"] for d in after)
        assert not (storage / "ACME" / admin_id).exists()
    assert len(_audit(cli, "transfer_complete")) == 8
    assert len(_audit(cli, "transfer_start")) == 8  # no item started twice
    mails = cli.ok("mail", "list", "--json").json()
    assert len([m for m in mails if m["event"] == "completed"]) == 1  # the last item, once
    assert _jobs(db_url) == []


def _offered_archive(cli: Cli, world_dir: Path, shm: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """ACME's 1001 with 6,000 documents offered to BOOK, whose storage is in memory: the
    archive as listed before the move, and the offer."""
    world = many_documents(world_dir, 6000)
    world["environments"][1]["storage"] = str(shm)
    cli.ok("load", write_world(world_dir, world))
    before = cli.ok("archive", "list", "1", "--json").json()
    return before, make_offer(cli, "1001")


@ONLY_POSTGRES
def test_a_worker_killed_mid_copy_leaves_its_item_to_another_worker(
        backend: str, env_vars: dict[str, str], world_dir: Path, storage: Path, shm: Path,
        db_url: str) -> None:
    cli = Cli(env_vars)
    before, offer = _offered_archive(cli, world_dir, shm)
    _redeem_background(cli, offer["transfercode"])

    first = env_process(env_vars, "worker", "--name", "first", *QUICK)
    wait_until_copying(first, db_url, freeze=True)  # a fast disk copies a batch in milliseconds
    first.send_signal(signal.SIGKILL)
    first.wait()
    item, done = item_row(db_url)
    assert item.status == "in_progress" and 0 < len(done) < len(before), "killed mid-way"
    assert [s for s, _ in _jobs(db_url)] == ["doing"]  # nobody takes it back by itself
    view = cli.ok("status", str(offer["migration_id"]), "--json").json()["items"][0]
    assert (view["running"], view["running_on"]) == ("queued", None)  # for the next worker's sweep
    kept = {d["sha256"]: os.stat(shm / "1" / d["sha256"]) for d in before if d["id"] in done}

    second = run_process(["worker", "--once", "--name", "second", *QUICK], env_vars, timeout=180)
    assert second.returncode == 0, second.stderr
    assert_moved_intact(cli, before, shm, storage / "ACME")
    for sha, stat in kept.items():  # what the killed worker had verified was not copied again
        now = os.stat(shm / "1" / sha)
        assert (now.st_ino, now.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
    status = cli.ok("status", str(offer["migration_id"]), "--json").json()
    assert status["items"][0]["status"] == "completed"
    assert status["items"][0]["worker"].startswith("second:")
    assert [e["details"]["worker"].split(":")[0] for e in _audit(cli, "transfer_start")] == ["first", "second"]
    assert len(_audit(cli, "transfer_complete")) == 1
    assert _jobs(db_url) == []


@ONLY_POSTGRES
def test_status_says_queued_until_a_worker_takes_it_and_the_worker_logs_what_it_does(
        backend: str, env_vars: dict[str, str], world_dir: Path, storage: Path, shm: Path,
        db_url: str) -> None:
    cli = Cli(env_vars)
    world = many_documents(world_dir, 6000)
    world["environments"][1]["storage"] = str(shm)
    world["environments"][1]["accounting_systems"][0]["catalogue"].append(
        {"code": "1004", "name": "Slagerij Peters"})
    cli.ok("load", write_world(world_dir, world))
    offer = make_offer(cli, "1001")
    _redeem_background(cli, offer["transfercode"], "--link", "1001=book-tw:1004", "--take-catalogue-name")

    view = cli.ok("status", "1", "--json").json()["items"][0]
    assert (view["status"], view["running"], view["running_on"]) == ("in_progress", "queued", None)
    table = cli.ok("status", "1")
    assert "queued for a worker" in table.stdout and table.stderr == ""
    shown = cli.ok("admin", "show", "1", "--json").json()
    assert (shown["environment"], shown["name"]) == ("ACME", "Bakkerij Jansen")  # renamed at the switch

    worker = env_process(env_vars, "worker", "--once", "--name", "solo", *QUICK)
    seen: list[dict[str, Any]] = []

    def taken() -> bool:
        seen.append(cli.ok("status", "1", "--json").json()["items"][0])
        return seen[-1]["running"] != "queued"

    _wait_for(taken, step=0.01)
    _, err = worker.communicate(timeout=180)
    err = without_clock_warning(err)
    assert worker.returncode == 0, err
    assert (seen[-1]["running"], seen[-1]["running_on"]) == ("running", f"solo:{worker.pid}")

    me = f"solo:{worker.pid}"
    job = f"{me}: migration 1, administration 1"
    lines = err.splitlines()
    assert lines[0] == f"{me}: waiting for transfers (concurrency 1, until the queue is empty)"
    assert re.fullmatch(rf"{job}: took 1001 Bakkerij Jansen: 6000 documents, [0-9.]+ MB", lines[1]), lines
    progress = [line for line in lines[2:-2] if re.fullmatch(
        rf"{job}: 1001 Bakkerij Jansen: \d+/6000 documents, [0-9.]+ MB/[0-9.]+ MB \(\d+%\)", line)]
    assert progress == lines[2:-2] and 1 <= len(progress) <= 10 + 4, lines
    assert re.fullmatch(rf"{job}: finished 1001 Bakkerij Jansen: completed \(6000 documents, "
                        rf"[0-9.]+ MB\) in [0-9.]+ s", lines[-2]), lines
    assert lines[-1] == f"{me}: worker stopped"

    final = cli.ok("status", "1", "--json").json()["items"][0]
    assert (final["status"], final["running"], final["to"]["name"]) == ("completed", None, "Slagerij Peters")
    shown = cli.ok("admin", "show", "1", "--json").json()
    assert (shown["environment"], shown["code"], shown["name"]) == ("BOOK", "1004", "Slagerij Peters")


@ONLY_POSTGRES
def test_a_worker_stopped_with_sigterm_mid_transfer_finishes_it_first(
        backend: str, env_vars: dict[str, str], world_dir: Path, storage: Path, shm: Path,
        db_url: str) -> None:
    cli = Cli(env_vars)
    before, offer = _offered_archive(cli, world_dir, shm)
    _redeem_background(cli, offer["transfercode"])

    worker = env_process(env_vars, "worker", "--name", "only", *ALIVE)
    wait_until_copying(worker, db_url, freeze=True)
    item, done = item_row(db_url)
    assert item.status == "in_progress" and 0 < len(done) < len(before), "stopped mid-way"
    worker.send_signal(signal.SIGTERM)  # waits while the worker is frozen
    worker.send_signal(signal.SIGCONT)
    _, err = worker.communicate(timeout=180)
    assert worker.returncode == 0, err
    assert err.splitlines()[-1] == f"only:{worker.pid}: worker stopped", err

    assert_moved_intact(cli, before, shm, storage / "ACME")
    status = cli.ok("status", str(offer["migration_id"]), "--json").json()
    assert status["items"][0]["status"] == "completed"
    assert len(_audit(cli, "transfer_start")) == 1 and len(_audit(cli, "transfer_complete")) == 1
    assert _jobs(db_url) == []


@ONLY_POSTGRES
def test_resume_background_after_a_crashed_inline_redeem_queues_the_rest_for_a_worker(
        backend: str, env_vars: dict[str, str], world_dir: Path, storage: Path, shm: Path,
        db_url: str) -> None:
    cli = Cli(env_vars)
    before, offer = _offered_archive(cli, world_dir, shm)
    migration = str(offer["migration_id"])

    inline = env_process(env_vars, "--as", TINA, "redeem", offer["transfercode"], "--accept-terms")
    wait_until_copying(inline, db_url, freeze=True)
    inline.send_signal(signal.SIGKILL)
    inline.communicate(timeout=60)
    item, done = item_row(db_url)
    assert item.status == "in_progress" and 0 < len(done) < len(before), "killed mid-way"
    kept = {d["sha256"]: os.stat(shm / "1" / d["sha256"]) for d in before if d["id"] in done}
    assert _jobs(db_url) == []

    resumed = cli.ok("--as", TINA, "resume", migration, "--background", "--json").json()
    assert [i["status"] for i in resumed["items"]] == ["in_progress"]
    assert [s for s, _ in _jobs(db_url)] == ["todo"]
    again = cli("--as", TINA, "resume", migration, "--background")  # queued once, not twice
    assert (again.exit_code, again.stderr) == (
        0, "Warning: 1 of 1 administrations were already waiting in the queue\n")
    assert [s for s, _ in _jobs(db_url)] == ["todo"]

    worker = run_process(["worker", "--once", "--name", "after", *ALIVE], env_vars, timeout=180)
    assert worker.returncode == 0, worker.stderr
    assert_moved_intact(cli, before, shm, storage / "ACME")
    for sha, stat in kept.items():  # what the killed redeem had verified was not copied again
        now = os.stat(shm / "1" / sha)
        assert (now.st_ino, now.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
    status = cli.ok("status", migration, "--json").json()
    assert status["items"][0]["status"] == "completed"
    assert status["items"][0]["worker"].startswith("after:")
    assert len(_audit(cli, "transfer_complete")) == 1
    assert _jobs(db_url) == []
