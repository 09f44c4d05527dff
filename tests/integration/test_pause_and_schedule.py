"""pause, resume and redeem --start-after with real workers on PostgreSQL: a paused transfer
stops at its next document and waits for `resume`; a scheduled one waits for its instant."""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import NOW, TINA, Cli, make_offer
from tests.integration.test_background import (
    ALIVE,
    ONLY_POSTGRES,
    _audit,
    _jobs,
    _offered_archive,
    _wait_for,
)
from tests.integration.test_transfer import (
    assert_moved_intact,
    env_process,
    item_row,
    wait_until_copying,
)

pytestmark = pytest.mark.slow


def _moving_on_a_worker(cli: Cli, env_vars: dict[str, str], world_dir: Path, shm: Path,
                        db_url: str) -> tuple[list[dict[str, Any]], Any]:
    """ACME/1001's 6,000 documents redeemed in the background and a worker copying them:
    the archive as listed before, and the worker's process."""
    before, offer = _offered_archive(cli, world_dir, shm)
    cli.ok("--as", TINA, "redeem", offer["transfercode"], "--accept-terms", "--background")
    worker = env_process(env_vars, "worker", "--name", "w", *ALIVE)
    try:
        wait_until_copying(worker, db_url)
    except BaseException:
        worker.kill()
        worker.communicate()
        raise
    return before, worker


@ONLY_POSTGRES
def test_a_paused_transfer_stops_at_its_next_document_and_resume_finishes_it(
        backend: str, env_vars: dict[str, str], world_dir: Path, storage: Path, shm: Path,
        db_url: str) -> None:
    cli = Cli(env_vars)
    before, worker = _moving_on_a_worker(cli, env_vars, world_dir, shm, db_url)
    try:
        refused = cli("--as", "sue@acme.example", "pause", "1")
        assert (refused.exit_code, refused.error) == (
            4, "Error: sue@acme.example is not a Superuser of BOOK: only they may pause migration 1")

        paused = cli.ok("--as", TINA, "pause", "1", "--json")  # returns once the worker let go
        assert paused.json() == {"migration_id": 1, "items": [{"administration_id": 1, "status": "paused"}]}
        item, done = item_row(db_url)
        assert item.status == "paused" and 0 < len(done) < len(before), "paused mid-way"
        time.sleep(1.5)  # the worker, still running, leaves it alone
        assert (item_row(db_url)[0].status, len(item_row(db_url)[1])) == ("paused", len(done))
        view = cli.ok("status", "1", "--json").json()
        assert (view["status"], view["items"][0]["status"], view["items"][0]["running"]) == (
            "paused", "paused", None)
        table = cli.ok("status", "1")
        assert "paused: resume 1" in table.stdout and table.stderr == ""  # no "nothing runs it"
        again = cli("--as", TINA, "pause", "1")
        assert (again.exit_code, again.error) == (
            1, "Error: nothing to pause in migration 1: its administrations are paused (only scheduled "
               "and in-progress transfers pause)")

        cli.ok("--as", TINA, "resume", "1", "--background")
        _wait_for(lambda: item_row(db_url)[0].status == "completed", timeout=180)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=120)
    assert_moved_intact(cli, before, shm, storage / "ACME")
    assert [e["action"] for e in _audit(cli, "pause")] == ["pause"]
    assert _jobs(db_url) == []


DELAY = 6


@ONLY_POSTGRES
def test_a_scheduled_redeem_waits_for_its_instant(
        backend: str, loaded: Any, env_vars: dict[str, str], db_url: str, storage: Path) -> None:
    """The instant is on the tool's clock (here set by BASECONE_MIGRATE_NOW, months in the
    past): due DELAY seconds from now in real time (long enough for the first worker to
    start and find nothing due, on a loaded machine). `worker --once` runs what is due and leaves a later
    start queued, saying so; once due, the next `worker --once` starts it."""
    cli = Cli(env_vars)
    offer = make_offer(cli, "1001")
    start = datetime.fromisoformat(NOW) + timedelta(seconds=DELAY)
    scheduled = ("--as", TINA, "redeem", offer["transfercode"], "--accept-terms", "--background",
                 "--start-after", start.isoformat(), "--dry-run")
    [would] = cli.ok(*scheduled, "--json").json()["items"]
    assert (would["status"], would["action"], would["scheduled_for"]) == ("offered", "take", start.isoformat())
    assert f"take, starts {start:%Y-%m-%d %H:%M} UTC" in cli.ok(*scheduled).stdout
    redeemed_at = datetime.now(UTC)  # the job is due DELAY s after a moment between these two
    redeemed = cli.ok("--as", TINA, "redeem", offer["transfercode"], "--accept-terms", "--background",
                      "--start-after", start.isoformat(), "--json").json()
    returned_at = datetime.now(UTC)
    assert [i["status"] for i in redeemed["items"]] == ["scheduled"]
    [item] = cli.ok("status", "1", "--json").json()["items"]
    assert (item["status"], item["scheduled_for"]) == ("scheduled", start.isoformat())
    assert f"scheduled for {start:%Y-%m-%d %H:%M} UTC" in cli.ok("status", "1").stdout

    early = env_process(env_vars, "worker", "--once", *ALIVE)  # nothing due: gone at once
    _, err = early.communicate(timeout=60)
    assert early.returncode == 0, err
    assert ("1 transfer(s) scheduled to start later stay queued: a worker starts them when they "
            "are due") in err
    assert cli.ok("status", "1", "--json").json()["items"][0]["status"] == "scheduled"
    assert (storage / "ACME" / "1").is_dir()  # nothing moved yet
    assert [s for s, _ in _jobs(db_url)] == ["todo"]

    time.sleep(max(0.0, (returned_at + timedelta(seconds=DELAY) - datetime.now(UTC)).total_seconds()))
    due = env_process(env_vars, "worker", "--once", *ALIVE)
    _, err = due.communicate(timeout=120)
    assert due.returncode == 0, err
    assert "scheduled to start later" not in err
    [item] = cli.ok("status", "1", "--json").json()["items"]
    assert (item["status"], item["scheduled_for"]) == ("completed", None)
    [started] = _audit(cli, "transfer_start")
    assert datetime.fromisoformat(started["recorded_at"]) >= redeemed_at + timedelta(seconds=DELAY)


def test_start_after_is_checked_before_anything_changes(cli: Cli, loaded: Any) -> None:
    code = make_offer(cli, "1001")["transfercode"]
    inline = cli("--as", TINA, "redeem", code, "--accept-terms", "--start-after", "2026-12-24T22:00:00Z")
    assert (inline.exit_code, inline.error) == (
        2, "Error: --start-after is for background transfers: add --background (workers start the "
           "transfer at that instant)")
    bad = cli("--as", TINA, "redeem", code, "--accept-terms", "--background", "--start-after", "tonight")
    assert (bad.exit_code, bad.error) == (
        2, "Error: --start-after 'tonight' is not an ISO-8601 instant (such as 2026-12-24T22:00:00Z)")
    assert cli.ok("status", "1", "--json").json()["items"][0]["status"] == "offered"


@ONLY_POSTGRES
def test_cancel_stops_a_worker_mid_transfer_and_the_worker_goes_on_with_other_work(
        backend: str, env_vars: dict[str, str], world_dir: Path, storage: Path, shm: Path,
        db_url: str) -> None:
    cli = Cli(env_vars)
    before, worker = _moving_on_a_worker(cli, env_vars, world_dir, shm, db_url)
    try:
        cancelled = cli.ok("--as", "sue@acme.example", "cancel", "1", "--json")
        assert cancelled.json()["items"] == [{"administration_id": 1, "status": "cancelled"}]
        assert worker.poll() is None  # the worker stopped that transfer, not itself
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=120)
    assert worker.returncode == 0, err
    assert_moved_intact(cli, before, storage / "ACME", shm)  # everything back at ACME
    assert cli.ok("status", "1", "--json").json()["items"][0]["status"] == "cancelled"
    assert _jobs(db_url) == []


@ONLY_POSTGRES
def test_a_cancelled_scheduled_move_never_starts(
        backend: str, loaded: Any, env_vars: dict[str, str], db_url: str, storage: Path) -> None:
    cli = Cli(env_vars)
    offer = make_offer(cli, "1001")
    before = cli.ok("archive", "list", "1", "--json").json()
    start = datetime.fromisoformat(NOW)  # due at once: the tool's clock reads it now
    cli.ok("--as", TINA, "redeem", offer["transfercode"], "--accept-terms", "--background",
           "--start-after", start.isoformat())
    cancelled = cli.ok("--as", "sue@acme.example", "cancel", "1", "--json").json()
    assert cancelled["items"] == [{"administration_id": 1, "status": "cancelled"}]
    worker = env_process(env_vars, "worker", "--once", *ALIVE)
    _, err = worker.communicate(timeout=120)
    assert worker.returncode == 0, err
    assert _audit(cli, "transfer_start") == []  # the job found it cancelled
    assert cli.ok("archive", "list", "1", "--json").json() == before
    assert cli.ok("--as", "sue@acme.example", "archive", "verify", "1", "--json").json()["ok"] == len(before)
    assert cli.ok("admin", "show", "1", "--json").json()["environment"] == "ACME"
    assert _jobs(db_url) == []


@ONLY_POSTGRES
def test_a_paused_scheduled_move_resumed_starts_at_once(
        backend: str, loaded: Any, env_vars: dict[str, str], db_url: str) -> None:
    cli = Cli(env_vars)
    offer = make_offer(cli, "1001")
    start = datetime.fromisoformat(NOW) + timedelta(hours=6)
    cli.ok("--as", TINA, "redeem", offer["transfercode"], "--accept-terms", "--background",
           "--start-after", start.isoformat())
    assert [s for s, _ in _jobs(db_url)] == ["todo"]
    cli.ok("--as", TINA, "pause", "1")
    assert _jobs(db_url) == []  # the waiting job is gone with the schedule
    resumed = cli.ok("--as", TINA, "resume", "1", "--background", "--json")
    assert "already waiting" not in resumed.stderr
    # Shown as queued (not as they were before), and the old instant gone with the schedule.
    assert [i["status"] for i in resumed.json()["items"]] == ["in_progress"]
    [item] = cli.ok("status", "1", "--json").json()["items"]
    assert (item["status"], item["scheduled_for"]) == ("in_progress", None)
    worker = env_process(env_vars, "worker", "--once", *ALIVE)
    _, err = worker.communicate(timeout=120)  # not six hours
    assert worker.returncode == 0, err
    assert cli.ok("status", "1", "--json").json()["items"][0]["status"] == "completed"

