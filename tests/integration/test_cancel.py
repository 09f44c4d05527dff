"""cancel with real processes: while a transfer runs in another process, and killed with
SIGKILL in the middle of the return, then run again: every document back in the sending
environment's storage once, none left at the receiver's, the administration as it was."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SUE, TINA, Cli, make_offer, write_world
from tests.integration.test_transfer import (
    assert_moved_intact,
    env_process,
    item_row,
    many_documents,
    wait_until_copying,
)

pytestmark = pytest.mark.slow


def _start(cli: Cli, env_vars: dict[str, str], world_dir: Path, shm: Path) -> tuple[list[dict[str, Any]], Any]:
    """ACME/1001 with 6,000 documents offered to BOOK (archive on a second filesystem, so
    documents are streamed), and a redeem running in its own process, fee EUR 49.00."""
    world = many_documents(world_dir, 6000)
    world["environments"][1]["storage"] = str(shm)
    cli.ok("load", write_world(world_dir, world))
    before = cli.ok("archive", "list", "1", "--json").json()
    code = make_offer(cli, "1001")["transfercode"]
    redeem = env_process({**env_vars, "BASECONE_MIGRATE_FEE": "EUR 49.00"}, "--as", TINA, "redeem", code,
                         "--accept-terms")
    return before, redeem


def _as_it_was(cli: Cli, before: list[dict[str, Any]], storage: Path, shm: Path) -> None:
    assert_moved_intact(cli, before, storage / "ACME", shm)  # back at ACME, nothing left at BOOK
    admin = cli.ok("admin", "show", "1", "--json").json()
    assert (admin["environment"], admin["accounting_system"], admin["code"], admin["email"]) == (
        "ACME", "acme-tw", "1001", "ACME.1001@mailtobasecone.com")
    assert [i["status"] for i in cli.ok("status", "1", "--json").json()["items"]] == ["cancelled"]
    assert [(c["kind"], c["amount"]) for c in cli.ok("charges", "--json").json()] == [
        ("fee", 49.0), ("credit", -49.0)]


def test_cancel_stops_a_transfer_running_in_another_process_and_brings_everything_back(
        env_vars: dict[str, str], world_dir: Path, storage: Path, shm: Path, db_url: str) -> None:
    cli = Cli(env_vars)
    before, redeem = _start(cli, env_vars, world_dir, shm)
    wait_until_copying(redeem, db_url)  # running, some documents at BOOK already

    cancelled = cli.ok("--as", SUE, "cancel", "1", "--reason", "sent to the wrong office")

    assert cancelled.stdout == "Migration 1: cancelled\nid  status\n 1  cancelled\n"
    # Off a terminal, the return says what it brings back, and how far it got (each 10%).
    first, *steps, last, mail = cancelled.stderr.splitlines()
    assert first == "Moving 1001 Bakkerij Jansen back to ACME: 6000 documents, 120.0 MB", first
    assert all(re.fullmatch(r"  1001 Bakkerij Jansen back to ACME: \d+/6000 documents, "
                            r"[0-9.]+ MB/120.0 MB \(\d+%\)", step) for step in steps), steps
    assert last == "  1001 Bakkerij Jansen back to ACME: cancelled (every document back)"
    assert mail.startswith("Mail written to ")
    _, err = redeem.communicate(timeout=120)
    assert redeem.returncode == 5, err
    assert err.splitlines()[-1] == ("Error: transfer of migration 1 stopped: 1 administration(s) cancelled "
                                    "meanwhile (see `basecone-migrate status 1`)")
    _as_it_was(cli, before, storage, shm)
    audit = [(r["actor"], r["action"]) for r in cli.ok("audit", "--migration", "1", "--json").json()]
    assert (SUE, "cancel") in audit and ("transfer_complete" not in [a for _, a in audit])
    again = cli("--as", TINA, "cancel", "1")
    assert (again.exit_code, again.error) == (
        1, "Error: nothing to cancel in migration 1: 1001 Bakkerij Jansen (id 1) is cancelled")


def test_a_cancel_killed_mid_return_finishes_when_run_again(
        env_vars: dict[str, str], world_dir: Path, storage: Path, shm: Path, db_url: str) -> None:
    cli = Cli(env_vars)
    before, redeem = _start(cli, env_vars, world_dir, shm)
    wait_until_copying(redeem, db_url)
    at_acme = storage / "ACME" / "1"
    while len(os.listdir(at_acme)) == len(before):  # until sources copied begin to go
        assert redeem.poll() is None, redeem.communicate()
        time.sleep(0.001)
    redeem.send_signal(signal.SIGKILL)
    redeem.wait()
    item, done = item_row(db_url)
    assert item.status == "in_progress" and 0 < len(done) < len(before), "killed mid-way"
    at_book = shm / "1"
    moved = len(os.listdir(at_book))
    # the streamed copy removed the sources it copied: verify says where they are
    verified = cli("--as", SUE, "archive", "verify", "1", "--json")
    missing = verified.json()["missing"]
    assert missing and (verified.exit_code, verified.error) == (1, (
        f"Error: archive of ACME/1001: {len(missing)} of the {len(missing)} missing documents are in BOOK's "
        "storage, the other side of migration 1, which did not finish: finish it with "
        "`basecone-migrate resume 1` or take it back with `basecone-migrate cancel 1`"))
    assert len(missing) == len(before) - len(os.listdir(at_acme)) and {d["at"] for d in missing} == {"BOOK"}

    cancel = env_process(env_vars, "--as", TINA, "cancel", "1")
    deadline = time.monotonic() + 60
    while len(os.listdir(at_book)) >= moved:  # the return has begun: documents leave BOOK
        assert cancel.poll() is None and time.monotonic() < deadline, cancel.communicate()
        time.sleep(0.002)
    cancel.send_signal(signal.SIGKILL)
    cancel.wait()
    if at_book.exists():
        assert 0 < len(os.listdir(at_book)) < moved or item_row(db_url)[0].returned_at is not None

    assert item_row(db_url)[0].status == "cancelled"
    finished = cli.ok("--as", TINA, "cancel", "1", "--json")
    assert finished.json()["items"] == [{"administration_id": 1, "status": "cancelled"}]
    _as_it_was(cli, before, storage, shm)
    assert item_row(db_url)[0].returned_at is not None


def test_an_undo_killed_mid_return_finishes_when_run_again(
        env_vars: dict[str, str], world_dir: Path, storage: Path, shm: Path, db_url: str) -> None:
    cli = Cli(env_vars)
    before, redeem = _start(cli, env_vars, world_dir, shm)
    _, err = redeem.communicate(timeout=180)
    assert redeem.returncode == 0, err
    assert_moved_intact(cli, before, shm, storage / "ACME")

    at_book = shm / "1"
    undo = env_process(env_vars, "--as", TINA, "undo", "1")
    deadline = time.monotonic() + 60
    while len(os.listdir(at_book)) >= len(before):  # the return has begun
        assert undo.poll() is None and time.monotonic() < deadline, undo.communicate()
        time.sleep(0.002)
    undo.send_signal(signal.SIGKILL)
    undo.wait()
    assert item_row(db_url)[0].status == "undone"

    finished = cli.ok("--as", TINA, "undo", "1", "--json")
    assert finished.json()["items"] == [{"administration_id": 1, "status": "undone"}]
    assert_moved_intact(cli, before, storage / "ACME", shm)
    assert item_row(db_url)[0].returned_at is not None
    assert [(c["kind"], c["amount"]) for c in cli.ok("charges", "--json").json()] == [
        ("fee", 49.0), ("credit", -49.0)]
