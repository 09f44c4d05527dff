"""The transfer engine under crashes and races: nothing lost, nothing doubled, one winner."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from basecone_migrate.db.models import MigrationItem, TransferProgress
from basecone_migrate.db.tables import migration_items
from basecone_migrate.services import transfer as engine_module
from basecone_migrate.services.transfer import copying as copying_module
from basecone_migrate.storage import TMP_PREFIX, Archive
from tests.conftest import (
    SUE,
    TINA,
    Cli,
    SmtpServer,
    make_offer,
    sample_world,
    snapshot_database,
    without_clock_warning,
    write_world,
)

pytestmark = pytest.mark.slow


class Crash(BaseException):
    """Stands in for the process dying at a chosen point (not caught by the CLI)."""


_MADE: dict[tuple[int, int], Path] = {}  # (count, size) -> the documents, made once a process


def _made(count: int, size: int, near: Path) -> Path:
    """``count`` distinct documents of ``size`` bytes, written once a test process (6,000
    files take a second to write) in a folder beside the tests' own, never changed."""
    folder = _MADE.get((count, size))
    if folder is None:
        folder = near.parent / f"many-documents-{count}-{size}-{os.getpid()}"
        shutil.rmtree(folder, ignore_errors=True)
        building = folder.with_name(folder.name + ".partial")
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir()
        for n in range(count):
            (building / f"doc-{n:05d}.pdf").write_bytes(n.to_bytes(4, "big") * (size // 4))
        building.rename(folder)
        _MADE[(count, size)] = folder
    return folder


def many_documents(world_dir: Path, count: int, size: int = 20_000) -> dict[str, Any]:
    """The sample world with ``count`` documents of ``size`` bytes in administration 1001: files
    of its own folder, hard links to documents made once a process (a test may remove or change
    what it loaded into the archive; no test writes to a world's documents)."""
    world = sample_world(world_dir, documents=0)
    folder = world_dir / "many"
    folder.mkdir()
    made = _made(count, size, world_dir.parent)
    paths = []
    for n in range(count):
        name = f"doc-{n:05d}.pdf"
        try:
            os.link(made / name, folder / name)
        except OSError:  # another filesystem: a copy
            shutil.copyfile(made / name, folder / name)
        paths.append(f"many/{name}")
    world["environments"][0]["administrations"][0]["documents"] = paths
    return world


def env_process(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("BASECONE_MIGRATE_")}
    full.update(env)
    return subprocess.Popen([sys.executable, "-m", "basecone_migrate", *args], env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def item_row(db_url: str) -> Any:
    engine = create_engine(db_url)
    with engine.connect() as connection:
        row = connection.execute(select(MigrationItem.__table__).order_by(MigrationItem.id)).first()
        done = set(connection.scalars(select(TransferProgress.document_id)))
    engine.dispose()
    return row, done


def wait_until_copying(process: Any, db_url: str, freeze: bool = False, timeout: float = 120) -> None:
    """Return as soon as ``process`` has recorded its first documents as arrived (``freeze``:
    stopped with SIGSTOP that moment), polled on one open connection: a new one per poll took
    longer than a fast disk takes to copy the rest."""
    poll = create_engine(db_url, isolation_level="AUTOCOMMIT")
    deadline = time.monotonic() + timeout
    try:
        with poll.connect() as connection:
            query = select(TransferProgress.document_id).limit(1)
            while connection.execute(query).first() is None:
                assert time.monotonic() < deadline and process.poll() is None, "never copied"
                time.sleep(0.001)
        if freeze:
            process.send_signal(signal.SIGSTOP)
    finally:
        poll.dispose()


def assert_moved_intact(cli: Cli, before: list[dict[str, Any]], target: Path, source: Path) -> None:
    """Every document at the target once, with its bytes; nothing left at the source."""
    after = cli.ok("archive", "list", "1", "--json").json()
    assert [(d["id"], d["sha256"], d["size"]) for d in after] == [
        (d["id"], d["sha256"], d["size"]) for d in before]
    names = sorted(os.listdir(target / "1"))
    assert names == sorted(d["sha256"] for d in before)  # no extra copies, no temporary files
    for doc in before:
        data = (target / "1" / doc["sha256"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == doc["sha256"]
    assert not (source / "1").exists()
    assert cli.ok("archive", "verify", "1", "--json").json()["ok"] == len(before)


# -- crashes at chosen points (in-process, deterministic) ---------------------------------------


def _crash_after(monkeypatch: pytest.MonkeyPatch, target: Any, name: str, calls: int) -> None:
    original = getattr(target, name)
    seen = {"n": 0}

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        seen["n"] += 1
        if seen["n"] > calls:
            raise Crash(name)
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, wrapper)


CRASH_POINTS = [
    ("mid-copy, renaming", "same", os, "rename", 150),  # document by document
    ("after renaming the folder", "same", Archive, "sizes_of", 0),  # the whole folder at once
    ("mid-copy, streaming", "other", Archive, "copy_to", 150),
    ("before the switch", "other", engine_module.ItemTransfer, "switch", 0),
    ("after the switch, before clean-up", "other", engine_module.ItemTransfer, "clean_up", 0),
    ("after clean-up, before completion", "same", engine_module.ItemTransfer, "complete", 0),
]


@pytest.mark.parametrize(("case", "filesystem", "target", "name", "calls"), CRASH_POINTS,
                         ids=[c[0] for c in CRASH_POINTS])
def test_resume_finishes_a_transfer_that_died_at_any_point(
    cli: Cli, world_dir: Path, storage: Path, shm: Path, db_url: str, monkeypatch: pytest.MonkeyPatch,
    case: str, filesystem: str, target: Any, name: str, calls: int,
) -> None:
    monkeypatch.setattr(copying_module, "BATCH_DOCUMENTS", 40)
    monkeypatch.setattr(copying_module, "READ_BATCH", 64)  # documents come from the database in rounds
    monkeypatch.setattr(copying_module, "IO_THREADS", 1)  # the crash lands after exactly `calls`
    if name == "rename":  # one rename per document, as when the target holds a folder already
        monkeypatch.setattr(Archive, "move_folder", lambda *_: False)
    world = many_documents(world_dir, 400, size=4_000)
    book_root = storage / "BOOK" if filesystem == "same" else shm
    if filesystem == "other":
        world["environments"][1]["storage"] = str(shm)
    cli.ok("load", write_world(world_dir, world))
    before = cli.ok("archive", "list", "1", "--json").json()
    code = make_offer(cli, "1001")["transfercode"]

    with monkeypatch.context() as patch:
        _crash_after(patch, target, name, calls)
        with pytest.raises(Crash):
            cli("--as", TINA, "redeem", code, "--accept-terms")

    item, done = item_row(db_url)
    assert item.status == "in_progress"
    renamed = filesystem == "same"
    if calls:  # progress was kept in batches, not lost; renames keep only the counters
        assert 0 < (item.documents_done if renamed else len(done)) <= calls
        assert not (renamed and done)
    kept = {d["sha256"]: os.stat(book_root / "1" / d["sha256"]) for d in before
            if (renamed or d["id"] in done) and (book_root / "1" / d["sha256"]).exists()}
    assert not calls or kept
    stuck = cli("--as", TINA, "redeem", code, "--accept-terms")
    assert stuck.exit_code == 1  # the code is spent: resume is the way on

    result = cli.ok("--as", TINA, "resume", "1", "--json").json()

    assert result["status"] == "completed"
    assert_moved_intact(cli, before, book_root, storage / "ACME")
    for sha, stat in kept.items():  # verified before the crash: not copied again
        now = os.stat(book_root / "1" / sha)
        assert (now.st_ino, now.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
    shown = cli.ok("admin", "show", "1", "--json").json()
    assert (shown["environment"], shown["code"], shown["users"]) == ("BOOK", "1001", [])
    assert cli.ok("--as", TINA, "resume", "1").stderr.startswith("Warning: nothing to resume: migration 1 is completed")


def test_a_document_that_does_not_match_its_checksum_fails_the_item(
    cli: Cli, world_dir: Path, storage: Path, shm: Path
) -> None:
    world = sample_world(world_dir)
    world["environments"][1]["storage"] = str(shm)
    cli.ok("load", write_world(world_dir, world))
    docs = cli.ok("archive", "list", "1", "--json").json()
    damaged = storage / "ACME" / "1" / docs[1]["sha256"]
    original = damaged.read_bytes()
    damaged.write_bytes(b"bit rot")
    code = make_offer(cli, "1001")["transfercode"]

    result = cli("--as", TINA, "redeem", code, "--accept-terms", "--json")

    assert result.exit_code == 5
    assert result.error == ("Error: 1 of 1 administrations did not finish moving: fix the cause shown by "
                            "`basecone-migrate status 1`, then run `basecone-migrate resume 1`")
    assert result.json()["items"][0]["status"] == "failed"
    status = cli.ok("status", "1", "--json").json()["items"][0]
    assert status["error"] == (f"1 of 3 documents did not arrive: document {docs[1]['id']}: the source "
                               "bytes do not match the recorded SHA-256 (restore the document, then "
                               "resume)")
    assert not any(name.startswith(TMP_PREFIX) for name in os.listdir(shm / "1"))
    assert cli.ok("admin", "show", "1", "--json").json()["environment"] == "ACME"  # not switched

    damaged.write_bytes(original)  # restored from a backup
    assert cli.ok("--as", TINA, "resume", "1", "--json").json()["status"] == "completed"
    assert_moved_intact(cli, docs, shm, storage / "ACME")


# -- a real process, really killed ----------------------------------------------------------------


def test_sigkill_mid_transfer_then_resume(
    env_vars: dict[str, str], world_dir: Path, storage: Path, shm: Path, db_url: str
) -> None:
    cli = Cli(env_vars)
    world = many_documents(world_dir, 6000)
    world["environments"][1]["storage"] = str(shm)
    cli.ok("load", write_world(world_dir, world))
    before = cli.ok("archive", "list", "1", "--json").json()
    code = make_offer(cli, "1001")["transfercode"]

    redeem = env_process(env_vars, "--as", TINA, "redeem", code, "--accept-terms")
    wait_until_copying(redeem, db_url, freeze=True)
    redeem.send_signal(signal.SIGKILL)
    redeem.wait()
    assert redeem.returncode == -signal.SIGKILL

    item, done = item_row(db_url)
    assert item.status == "in_progress" and 0 < len(done) < len(before), "killed mid-way"
    kept = {d["sha256"]: os.stat(shm / "1" / d["sha256"]) for d in before if d["id"] in done}

    resumed = env_process(env_vars, "--as", TINA, "resume", "1", "--json")  # right after the crash: not blocked
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err

    assert_moved_intact(cli, before, shm, storage / "ACME")
    for sha, stat in kept.items():
        now = os.stat(shm / "1" / sha)
        assert (now.st_ino, now.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)


def test_status_says_a_killed_transfer_is_not_running_and_resume_logs_its_progress(
    env_vars: dict[str, str], world_dir: Path, storage: Path, shm: Path, db_url: str
) -> None:
    cli = Cli(env_vars)
    world = many_documents(world_dir, 6000)
    world["environments"][1]["storage"] = str(shm)
    cli.ok("load", write_world(world_dir, world))
    code = make_offer(cli, "1001")["transfercode"]
    host = socket.gethostname()

    redeem = env_process(env_vars, "--as", TINA, "redeem", code, "--accept-terms")
    wait_until_copying(redeem, db_url, freeze=True)  # still alive, holding its lock, while we look
    running = cli.ok("status", "1", "--json").json()["items"][0]
    redeem.send_signal(signal.SIGKILL)
    redeem.wait()
    assert (running["status"], running["running"], running["running_on"]) == (
        "in_progress", "running", f"{host}:{redeem.pid}")
    item, done = item_row(db_url)
    assert item.status == "in_progress" and 0 < len(done) < 6000, "killed mid-way"

    view = cli.ok("status", "1", "--json").json()["items"][0]
    assert (view["status"], view["running"], view["running_on"], view["worker"]) == (
        "in_progress", "not_running", None, f"{host}:{redeem.pid}")
    table = cli.ok("status", "1")
    assert f"not running ({host}:{redeem.pid} is gone): resume 1" in table.stdout
    assert table.stderr == ("Nothing runs 1 unfinished administration(s) of migration 1: run "
                            "`basecone-migrate resume 1`\n")
    watched = cli("status", "1", "--watch", "--interval", "0.2", "--json")  # nothing to wait for
    assert watched.exit_code == 0
    assert watched.json()["items"][0]["running"] == "not_running"
    assert watched.stderr == ("Warning: nothing runs or waits to run 1 unfinished administration(s) of "
                              "migration 1 any more, so --watch stops: run `basecone-migrate resume 1` "
                              "to finish them\n")

    resumed = env_process(env_vars, "--as", TINA, "resume", "1")  # stderr is a pipe, not a terminal
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    lines = without_clock_warning(err).splitlines()
    assert re.fullmatch(r"Moving 1001 Bakkerij Jansen: 6000 documents, [0-9.]+ MB \(\d+ already there\)",
                        lines[0]), lines
    progress = [line for line in lines if re.fullmatch(
        r"  1001 Bakkerij Jansen: \d+/6000 documents, [0-9.]+ MB/[0-9.]+ MB \(\d+%\)", line)]
    assert progress, lines  # a copy of thousands of documents is not silent in a log
    assert len(progress) <= 10 + 4  # ... nor flooded: every 10%, or 30 s
    assert "  1001 Bakkerij Jansen: completed (6000 documents)" in lines
    final = cli.ok("status", "1", "--json").json()["items"][0]
    assert (final["status"], final["running"], final["running_on"]) == ("completed", None, None)


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_transfer_in_another_database_on_the_server_is_not_ours(
    backend: str, cli: Cli, loaded: dict[str, Any], db_url: str, make_pg_database: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pg_locks lists every database's advisory locks: migration 1 and item 1 of another
    database on the same server hold the same keys, and are not ours."""
    from basecone_migrate.db.engine import make_engine, upgrade
    from basecone_migrate.runtime import Runtime
    from basecone_migrate.services.locks import ItemLock, TransferLock
    from basecone_migrate.settings import Settings

    code = make_offer(cli, "1001")["transfercode"]
    with monkeypatch.context() as patch:
        _crash_after(patch, engine_module.ItemTransfer, "switch", 0)
        with pytest.raises(Crash):
            cli("--as", TINA, "redeem", code, "--accept-terms")
    other_url = make_pg_database()
    other_engine = make_engine(other_url)
    upgrade(other_engine)
    other_engine.dispose()
    other = Runtime(Settings.load({"db": other_url}, {}))
    held, item = TransferLock(other, 1), ItemLock(other, 1, "elsewhere:1")
    assert held.try_acquire() and item.try_acquire()
    try:
        view = cli.ok("status", "1", "--json").json()
    finally:
        item.release()
        held.release()
        other.close()
    assert view["transfer_running"] is False
    assert (view["items"][0]["running"], view["items"][0]["running_on"]) == ("not_running", None)


def _stop_outside_a_write(process: subprocess.Popen[str], db_url: str) -> None:
    """SIGSTOP ``process`` at a moment it holds no SQLite write lock (PostgreSQL's readers
    never wait for a writer)."""
    import sqlite3

    for _ in range(500):
        process.send_signal(signal.SIGSTOP)
        if not db_url.startswith("sqlite:///"):
            return
        try:
            probe = sqlite3.connect(db_url.removeprefix("sqlite:///"), timeout=0.05, isolation_level=None)
            try:
                probe.execute("BEGIN IMMEDIATE")
                probe.execute("ROLLBACK")
                return
            finally:
                probe.close()
        except sqlite3.OperationalError:  # stopped inside a write: let it finish, try again
            process.send_signal(signal.SIGCONT)
            time.sleep(0.01)
    raise AssertionError("the first resume was never caught outside a write")


def test_a_second_resume_of_a_running_transfer_is_refused(
    env_vars: dict[str, str], world_dir: Path, storage: Path, shm: Path, db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cli = Cli(env_vars)
    world = many_documents(world_dir, 6000)
    world["environments"][1]["storage"] = str(shm)
    cli.ok("load", write_world(world_dir, world))
    code = make_offer(cli, "1001")["transfercode"]
    with monkeypatch.context() as patch:
        _crash_after(patch, Archive, "copy_to", 10)
        with pytest.raises(Crash):
            cli("--as", TINA, "redeem", code, "--accept-terms")

    poll = create_engine(db_url, isolation_level="AUTOCOMMIT")
    worker = select(migration_items.c.worker).where(migration_items.c.id == 1)
    try:
        with poll.connect() as connection:
            crashed = connection.execute(worker).scalar_one()
            first = env_process(env_vars, "--as", TINA, "resume", "1")
            deadline = time.monotonic() + 60
            # It has taken the transfer's lock and begun once the item names it as its worker:
            # polled on one open connection, as a fast disk copies the rest in well under a second.
            while connection.execute(worker).scalar_one() == crashed:
                assert time.monotonic() < deadline and first.poll() is None, "the first resume never ran"
                time.sleep(0.001)
    finally:
        poll.dispose()
    # Held still while the second asks, so that a fast disk cannot finish the first meanwhile
    # (and never inside a write: on SQLite the second would wait for its lock).
    _stop_outside_a_write(first, db_url)
    try:
        assert cli.ok("status", "1", "--json").json()["transfer_running"]
        second = cli("--as", SUE, "resume", "1")  # either side may
    finally:
        first.send_signal(signal.SIGCONT)
    out, err = first.communicate(timeout=120)

    assert (second.exit_code, second.error) == (
        1, "Error: migration 1 is being transferred by another process right now: wait for it, or "
           "follow it with `basecone-migrate status 1 --watch`")
    assert first.returncode == 0, err
    assert cli.ok("status", "1", "--json").json()["status"] == "completed"


# -- races -----------------------------------------------------------------------------------------


def test_many_redeem_the_same_code_at_once_and_one_wins(
    env_vars: dict[str, str], loaded: dict[str, Any], db_url: str, smtp: SmtpServer
) -> None:
    env = {**env_vars, **smtp.env}
    cli = Cli(env)
    code = make_offer(cli, "1001", to=(TINA, "tim@book.example"))["transfercode"]
    smtp.take()

    runs = [env_process(env, "--as", user, "redeem", code, "--accept-terms", "--json")
            for user in [TINA, "tim@book.example"] * 3]
    results = [(run.wait(timeout=120), out, without_clock_warning(err))
               for run in runs for out, err in [run.communicate()]]

    winners = [r for r in results if r[0] == 0]
    losers = [r for r in results if r[0] != 0]
    assert len(winners) == 1, results
    for code_, _, err in losers:
        assert code_ == 1
        assert err.strip() in (
            "Error: migration 1 is being transferred by another process right now: wait for it, or "
            "follow it with `basecone-migrate status 1 --watch`",
            "Error: this transfercode was already used: the offer was redeemed on 2026-03-02",
            "Error: this transfercode was redeemed on 2026-03-02 and its transfer is running now: "
            "follow it with `basecone-migrate status 1 --watch`",
        )
    state = snapshot_database(db_url)
    assert len(state["charges"]) == 1
    assert [row[3] for row in state["audit_log"]].count("'redeem'") == 1
    assert sorted(m.subject for m in smtp.take()) == [
        "Migration complete: 1 administration moved to Bookwise (BOOK)",
        "Migration started by Bookwise (BOOK)"]


def test_overlapping_expire_runs_expire_each_offer_once(
    env_vars: dict[str, str], loaded: dict[str, Any], smtp: SmtpServer
) -> None:
    env = {**env_vars, **smtp.env}
    cli = Cli(env)
    make_offer(cli, "1001")
    make_offer(cli, "1002", extra=("--confirm-checklist",))
    smtp.take()
    late = {**env, "BASECONE_MIGRATE_NOW": "2026-04-01T00:00:00Z"}

    runs = [env_process(late, "expire", "--json") for _ in range(4)]
    counts = []
    for run in runs:
        out, err = run.communicate(timeout=60)
        assert run.returncode == 0, err
        counts.append(__import__("json").loads(out)["expired"])

    assert sum(counts) == 2
    [mail] = smtp.take()
    assert mail.message["To"] == SUE


def test_no_documents_join_an_archive_while_it_moves(
    cli: Cli, world_dir: Path, storage: Path, monkeypatch: pytest.MonkeyPatch, state: Any
) -> None:
    world = sample_world(world_dir)
    cli.ok("load", write_world(world_dir, world))
    code = make_offer(cli, "1001")["transfercode"]
    with monkeypatch.context() as patch:
        _crash_after(patch, engine_module.ItemTransfer, "switch", 0)
        with pytest.raises(Crash):
            cli("--as", TINA, "redeem", code, "--accept-terms")
    (world_dir / "late.pdf").write_bytes(b"late invoice")
    world["environments"][0]["administrations"][0]["documents"].append("late.pdf")
    snapshot = state.take()

    added = cli("archive", "add", "1", world_dir / "late.pdf")
    loaded = cli("load", write_world(world_dir, world))

    moving = ("administration 1001 Bakkerij Jansen (id 1) is being moved (migration 1, in_progress): "
              "{} once it has completed")
    assert (added.exit_code, added.error) == (1, "Error: " + moving.format("add documents"))
    assert (loaded.exit_code, loaded.error) == (
        1, f"Error: {world_dir / 'world.json'}: environments[0].administrations[0].documents: "
           + moving.format("load its documents"))
    assert state.take() == snapshot
    cli.ok("--as", TINA, "resume", "1")
    assert cli.ok("archive", "add", "1", world_dir / "late.pdf", "--json").json()[0]["added"] is True


def test_a_move_on_an_object_store_that_died_half_way_leaves_no_duplicate(
    cli: Cli, world_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On an object store a move is a copy and a delete; die between the two, then resume."""
    import fsspec

    memory = fsspec.filesystem("memory")
    memory.store.clear()
    world = sample_world(world_dir)
    world["environments"][0]["storage"] = f"memory://{tmp_path.name}/acme"
    world["environments"][1]["storage"] = f"memory://{tmp_path.name}/book"
    cli.ok("load", write_world(world_dir, world))
    before = cli.ok("archive", "list", "1", "--json").json()
    code = make_offer(cli, "1001")["transfercode"]

    def copy_then_die(self: Archive, other: Archive, key: str, sha256: str, buffer: bytearray) -> None:
        other._folder(int(key.split("/")[0]))
        self.fs.copy(self.path(key), other.path(key))
        raise Crash("between the copy and the delete")

    with monkeypatch.context() as patch:
        patch.setattr(Archive, "move_to", copy_then_die)
        with pytest.raises(Crash):
            cli("--as", TINA, "redeem", code, "--accept-terms")
    assert cli.ok("--as", TINA, "resume", "1", "--json").json()["status"] == "completed"

    acme = memory.find(f"/{tmp_path.name}/acme/1")
    book = sorted(p.rsplit("/", 1)[1] for p in memory.find(f"/{tmp_path.name}/book/1"))
    assert acme == []
    assert book == sorted(d["sha256"] for d in before)
    assert cli.ok("archive", "verify", "1", "--json").json()["ok"] == 3
    memory.store.clear()


def test_only_a_superuser_of_either_side_resumes(
    cli: Cli, loaded: dict[str, Any], monkeypatch: pytest.MonkeyPatch, state: Any
) -> None:
    code = make_offer(cli, "1001")["transfercode"]
    with monkeypatch.context() as patch:
        _crash_after(patch, engine_module.ItemTransfer, "switch", 0)
        with pytest.raises(Crash):
            cli("--as", TINA, "redeem", code, "--accept-terms")
    snapshot = state.take()
    nobody = cli("resume", "1")
    accountant = cli("--as", "uma@book.example", "resume", "1")
    outsider = cli("--as", "tom@trial.example", "resume", "1")
    assert (nobody.exit_code, nobody.error) == (
        4, "Error: no acting user: pass --as EMAIL (or set BASECONE_MIGRATE_USER) to say who is doing this")
    assert (accountant.exit_code, accountant.error) == (
        4, "Error: uma@book.example is not a Superuser of ACME or BOOK: only they may resume migration 1")
    assert (outsider.exit_code, outsider.error) == (
        4, "Error: tom@trial.example is not a Superuser of ACME or BOOK: only they may resume migration 1")
    assert state.take() == snapshot
    assert cli.ok("--as", SUE, "resume", "1", "--json").json()["status"] == "completed"


def test_a_link_promised_to_an_unfinished_move_cannot_be_given_away(
    cli: Cli, world_dir: Path, storage: Path, db_url: str, state: Any
) -> None:
    cli.ok("load", write_world(world_dir, sample_world(world_dir)))
    docs = cli.ok("archive", "list", "1", "--json").json()
    hidden = storage / "ACME" / "1" / docs[0]["sha256"]
    hidden.rename(hidden.with_name("elsewhere"))
    first = make_offer(cli, "1001")["transfercode"]
    assert cli("--as", TINA, "redeem", first, "--accept-terms", "--link", "1001=book-tw:7001").exit_code == 5
    second = make_offer(cli, "1002", extra=("--confirm-checklist",))["transfercode"]
    snapshot = state.take()

    taken = cli("--as", TINA, "redeem", second, "--accept-terms", "--link", "1002=book-tw:7001")
    relinked = cli("--as", TINA, "link", "5001", "--code", "7001")

    promised = ("code 7001 of connection book-tw is promised to administration 1001 Bakkerij Jansen "
                "(id 1), which is moving there (migration 1, failed)")
    assert (taken.exit_code, taken.error) == (1, f"Error: {promised}")
    assert (relinked.exit_code, relinked.error) == (1, f"Error: {promised}")
    assert state.take() == snapshot
    hidden.with_name("elsewhere").rename(hidden)
    assert cli.ok("--as", TINA, "resume", "1", "--json").json()["status"] == "completed"


def test_the_database_holds_one_unfinished_move_per_target_link(
    cli: Cli, loaded: dict[str, Any], db_url: str
) -> None:
    from sqlalchemy import insert
    from sqlalchemy.exc import IntegrityError

    code = make_offer(cli, "1001")["transfercode"]
    cli.ok("--as", TINA, "redeem", code, "--accept-terms")
    engine = create_engine(db_url)
    with engine.connect() as connection:
        row = dict(connection.execute(select(MigrationItem.__table__)).mappings().one())
        for key in ("id", "administration_id"):
            row.pop(key)
        connection.execute(insert(MigrationItem.__table__).values(
            **{**row, "administration_id": 2, "status": "in_progress"}))
        with pytest.raises(IntegrityError):
            connection.execute(insert(MigrationItem.__table__).values(
                **{**row, "administration_id": 3, "status": "failed"}))
    engine.dispose()


def test_an_unexpected_failure_fails_the_item_with_its_reason(
    cli: Cli, loaded: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    code = make_offer(cli, "1001")["transfercode"]

    def disk_gone(self: Archive, administration_id: int) -> None:
        raise OSError(5, "Input/output error")

    with monkeypatch.context() as patch:
        patch.setattr(Archive, "tidy", disk_gone)
        result = cli("--as", TINA, "redeem", code, "--accept-terms", "--json")
    assert result.exit_code == 5
    assert result.json()["items"][0]["status"] == "failed"
    status = cli.ok("status", "1", "--json").json()["items"][0]
    assert status["error"] == "OSError: [Errno 5] Input/output error"
    assert cli.ok("--as", TINA, "resume", "1", "--json").json()["status"] == "completed"


def test_documents_that_join_during_the_copy_move_too(
    cli: Cli, world_dir: Path, storage: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Belt and braces behind the row lock: the switch compares the archive with the copy."""
    cli.ok("load", write_world(world_dir, sample_world(world_dir)))
    code = make_offer(cli, "1001")["transfercode"]
    (world_dir / "late.pdf").write_bytes(b"arrived during the copy")
    original = engine_module.ItemTransfer.copy
    sneaked: list[int] = []

    def copy_then_sneak_in(self: Any, plan: Any) -> list[str]:
        problems = original(self, plan)
        if not sneaked:  # what a process ignoring the lock would do
            from basecone_migrate.db.models import Document
            stored = plan.source.put_file(world_dir / "late.pdf", plan.administration_id)
            with self.rt.uow() as uow:
                uow.session.add(Document(administration_id=plan.administration_id, filename="late.pdf",
                                         size=stored.size, sha256=stored.sha256, storage_key=stored.key,
                                         added_at=self.rt.now()))
                uow.commit()
            sneaked.append(1)
        return problems

    monkeypatch.setattr(engine_module.ItemTransfer, "copy", copy_then_sneak_in)
    result = cli.ok("--as", TINA, "redeem", code, "--accept-terms", "--json").json()
    assert result["items"][0]["documents"] == 4
    names = {d["filename"] for d in cli.ok("archive", "list", "1", "--json").json()}
    assert "late.pdf" in names
    assert cli.ok("archive", "verify", "1", "--json").json()["ok"] == 4
    assert not (storage / "ACME" / "1").exists()


@pytest.mark.parametrize("target_folder", ["absent", "empty", "holding a file"])
def test_on_one_filesystem_the_whole_folder_moves_in_one_rename(
    cli: Cli, world_dir: Path, storage: Path, monkeypatch: pytest.MonkeyPatch, target_folder: str
) -> None:
    world = many_documents(world_dir, 300, size=400)
    cli.ok("load", write_world(world_dir, world))
    before = cli.ok("archive", "list", "1", "--json").json()
    if target_folder != "absent":
        (storage / "BOOK" / "1").mkdir(parents=True)
    if target_folder == "holding a file":
        (storage / "BOOK" / "1" / "left-by-someone").write_bytes(b"x")
    code = make_offer(cli, "1001")["transfercode"]
    renames = []
    rename = os.rename
    monkeypatch.setattr(os, "rename", lambda *a, **k: (renames.append(a), rename(*a, **k))[1])

    cli.ok("--as", TINA, "redeem", code, "--accept-terms")

    # One rename for the folder; when the target holds a folder with files, that attempt
    # fails and each document is renamed.
    assert len(renames) == (1 + 300 if target_folder == "holding a file" else 1)
    if target_folder == "holding a file":
        (storage / "BOOK" / "1" / "left-by-someone").unlink()
    assert_moved_intact(cli, before, storage / "BOOK", storage / "ACME")
    assert cli.ok("status", "1", "--json").json()["items"][0]["mode"] == "rename"
