"""undo: a completed move taken back within the grace window, by a Superuser of the
environment that holds it: everything as it was, the fee credited, both sides mailed."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SUE, TIM, TINA, UMA, Cli, SmtpServer, State, make_offer, snapshot_files
from tests.terminal import Terminal


def _moved(cli: Cli) -> dict[str, Any]:
    """1001 (3 documents, access for Sue and Carl) and 1002 (a workflow, linked under a new
    code) moved from ACME to BOOK, a fee of EUR 49.00 each."""
    code = make_offer(cli, "1001", "1002", extra=("--confirm-checklist",))["transfercode"]
    cli.ok("--as", TINA, "redeem", code, "--accept-terms", "--link", "1002=book-tw:1002",
           fee="EUR 49.00")
    return cli.ok("status", "1", "--json").json()


def test_undo_brings_a_two_administration_move_back_with_what_was_added_since(
        mailing_cli: Cli, loaded: dict[str, Any], smtp: SmtpServer, storage: Path, tmp_path: Path,
        db_url: str) -> None:
    cli = mailing_cli
    before = {a: cli.ok("admin", "show", a, "--json").json() for a in ("1", "2")}
    files_before = snapshot_files(storage / "ACME")
    _moved(cli)
    cli.ok("--as", TINA, "link", "1001", "--code", "7001")  # a code change after the move
    later = tmp_path / "later.pdf"
    later.write_bytes(b"%PDF-1.4 added at the receiver after the move\n")
    cli.ok("--as", TINA, "archive", "add", "7001", str(later))
    cli.ok("--as", TINA, "access", "grant", "7001", "--user", UMA)
    smtp.take()

    dry = cli.ok("--as", TINA, "undo", "1", "--dry-run", "--json").json()
    assert dry == {"migration_id": 1, "dry_run": True, "items": [
        {"administration_id": 1, "status": "would be undone"},
        {"administration_id": 2, "status": "would be undone"}]}
    assert cli.ok("status", "1", "--json").json()["items"][0]["status"] == "completed"

    undone = cli.ok("--as", TINA, "undo", "1", "--reason", "wrong office", "--json")
    assert undone.stderr == ""  # with --json no progress lines
    assert undone.json() == {"migration_id": 1, "items": [
        {"administration_id": 1, "status": "undone"}, {"administration_id": 2, "status": "undone"}]}

    after = {a: cli.ok("admin", "show", a, "--json").json() for a in ("1", "2")}
    for admin in ("1", "2"):
        for key in ("environment", "accounting_system", "code", "name", "email", "users", "workflows"):
            assert after[admin][key] == before[admin][key], (admin, key)
    # every document back in ACME's storage, the one added since too; none left at BOOK
    shas = sorted([*files_before.values(), hashlib.sha256(later.read_bytes()).hexdigest()])
    assert sorted(snapshot_files(storage / "ACME").values()) == shas
    assert list(snapshot_files(storage / "BOOK")) == [".basecone-migrate-database"]  # its mark only
    assert cli.ok("--as", SUE, "archive", "verify", "1", "--json").json()["documents"] == 4

    charges = cli.ok("charges", "--json").json()
    assert [(c["environment"], c["administration_id"], c["kind"], c["amount"]) for c in charges] == [
        ("BOOK", 1, "fee", 49.0), ("BOOK", 2, "fee", 49.0),
        ("BOOK", 1, "credit", -49.0), ("BOOK", 2, "credit", -49.0)]
    [mail] = smtp.take()
    assert sorted(mail.recipients) == sorted([SUE, TINA]) and mail.subject.startswith("Migration undone")
    assert "wrong office" in mail.text and "Bakkerij Jansen" in mail.text and "Garage Smit" in mail.text
    actions = [(r["action"], r["administration_id"]) for r in cli.ok("audit", "--migration", "1", "--json").json()]
    assert ("undo", 1) in actions and ("undo_switch_back", 2) in actions
    assert [i["status"] for i in cli.ok("status", "1", "--json").json()["items"]] == ["undone", "undone"]


def test_undo_is_refused_and_changes_nothing(cli: Cli, loaded: dict[str, Any], state: State) -> None:
    _moved(cli)
    snapshot = state.take()
    refused = cli("--as", SUE, "undo", "1")
    assert (refused.exit_code, refused.error) == (
        4, "Error: sue@acme.example is not a Superuser of BOOK: only they may undo migration 1")
    late = cli("--as", TINA, "undo", "1", now="2026-03-17T09:00:01Z")
    assert (late.exit_code, late.error) == (
        1, "Error: migration 1 cannot be undone: 1001 Bakkerij Jansen (id 1) completed on 2026-03-02, "
           "more than 14 days ago (BASECONE_MIGRATE_UNDO_DAYS); 1002 Garage Smit (id 2) completed on "
           "2026-03-02, more than 14 days ago (BASECONE_MIGRATE_UNDO_DAYS)")
    off = cli("--as", TINA, "undo", "1", undo_days="0")
    assert (off.exit_code, off.error) == (1, "Error: undo is turned off here (BASECONE_MIGRATE_UNDO_DAYS=0)")
    bad = cli("--as", TINA, "undo", "1", undo_days="two weeks")
    assert (bad.exit_code, bad.error) == (
        2, "Error: days a completed move can be undone (0: never) 'two weeks' (from env "
           "BASECONE_MIGRATE_UNDO_DAYS) is not valid: expected a whole number of days from 0 to 3650")
    assert state.take() == snapshot
    cli.ok("--as", TIM, "undo", "1", "--admin", "1002")  # another Superuser of BOOK, one of two
    assert [i["status"] for i in cli.ok("status", "1", "--json").json()["items"]] == ["completed", "undone"]
    again = cli("--as", TINA, "undo", "1", "--admin", "1002")
    assert again.exit_code == 1 and "1002 Garage Smit (id 2) is undone, not completed" in again.error


def test_undo_in_the_background_is_done_by_a_worker(
        mailing_cli: Cli, loaded: dict[str, Any], smtp: SmtpServer, storage: Path, backend: str,
        env_vars: dict[str, str]) -> None:
    from tests.conftest import run_process

    cli = mailing_cli
    files_before = snapshot_files(storage / "ACME")
    _moved(cli)
    smtp.take()
    if backend == "sqlite":
        refused = cli("--as", TINA, "undo", "1", "--background")
        assert refused.exit_code == 2 and "need a shared PostgreSQL database" in refused.error
        return
    queued = cli.ok("--as", TINA, "undo", "1", "--background", "--json").json()
    assert [i["status"] for i in queued["items"]] == ["undone", "undone"]
    assert [i["returned_at"] for i in cli.ok("status", "1", "--json").json()["items"]] == [None, None]
    assert snapshot_files(storage / "ACME") != files_before  # nothing back yet

    done = run_process(["worker", "--once"], {**env_vars, **smtp.env}, timeout=120)
    assert done.returncode == 0, done.stderr
    # The worker's log names each return as it names a transfer.
    logged = [re.sub(r"^[^:]+:\d+: ", "", line) for line in done.stderr.splitlines()]
    assert [re.sub(r"in [0-9.]+ s", "in N s", line) for line in logged[1:-1]] == [
        "migration 1, administration 1: took 1001 Bakkerij Jansen back to ACME: 3 documents, 5.7 kB",
        "migration 1, administration 1: finished 1001 Bakkerij Jansen back to ACME: undone in N s: "
        "every document back",
        "migration 1, administration 2: took 1002 Garage Smit back to ACME: 1 document, 640 bytes",
        "migration 1, administration 2: finished 1002 Garage Smit back to ACME: undone in N s: "
        "every document back"]
    assert snapshot_files(storage / "ACME") == files_before
    assert all(i["returned_at"] for i in cli.ok("status", "1", "--json").json()["items"])
    assert [m.subject for m in smtp.take()] == ["Migration undone: 2 administrations back in Acme Accountants (ACME)"]


def test_without_a_terminal_undo_says_what_it_brings_back_a_line_an_administration(
        cli: Cli, loaded: dict[str, Any]) -> None:
    _moved(cli)
    undone = cli.ok("--as", TINA, "undo", "1")
    assert undone.stdout == "Migration 1: undone\nid  status\n 1  undone\n 2  undone\n"
    *lines, mail = undone.stderr.splitlines()
    assert lines == ["Moving 1001 Bakkerij Jansen back to ACME: 3 documents, 5.7 kB",
                     "  1001 Bakkerij Jansen back to ACME: undone (every document back)",
                     "Moving 1002 Garage Smit back to ACME: 1 document, 640 bytes",
                     "  1002 Garage Smit back to ACME: undone (every document back)"]
    assert mail.startswith("Mail written to ") and mail.endswith("-undo.eml (no SMTP host set)")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_at_a_terminal_undo_shows_its_bars_and_leaves_them_and_the_table_on_the_screen(
        env_vars: dict[str, str], loaded: dict[str, Any], backend: str) -> None:
    cli = Cli(env_vars)
    _moved(cli)
    terminal = Terminal(["--as", TINA, "undo", "1"], env_vars, columns=120, lines=40)
    assert terminal.finish() == 0, terminal.seen
    screen = terminal.screen.splitlines()
    bars = [line for line in screen if "back to ACME" in line or "all administrations" in line]
    # Each administration's end above the bars, the bars full and left on the screen, then
    # the table: the live display erased none of it.
    assert [line.split("━")[0].strip() for line in bars] == [
        "1001 Bakkerij Jansen back to ACME: undone: every document back",
        "1002 Garage Smit back to ACME: undone: every document back",
        "all administrations", "1001 Bakkerij Jansen back to ACME", "1002 Garage Smit back to ACME"]
    assert ["4/4 docs 6.3/6.3 kB" in bars[2], "3/3 docs 5.7/5.7 kB" in bars[3],
            "1/1 docs 640/640 bytes" in bars[4]] == [True] * 3
    assert screen[screen.index("Migration 1: undone"):][:5] == [
        "Migration 1: undone", "id  status", "──────────", " 1  undone", " 2  undone"]


def test_whoever_holds_the_administration_is_told_why_it_cannot_be_undone(
        cli: Cli, loaded: dict[str, Any], state: State) -> None:
    """The Superuser of where an administration is now, and the receiver the offer names
    before any redeem, are told what stands in the way (1), not that they may not ask (4)."""
    make_offer(cli, "1001")
    snapshot = state.take()
    results = {(user, command): cli("--as", user, command, "1")
               for user in (SUE, TINA) for command in ("undo", "pause", "cancel")}
    offered = "1001 Bakkerij Jansen (id 1) is offered"
    assert {key: (r.exit_code, r.error) for key, r in results.items()} == {
        (SUE, "undo"): (1, f"Error: migration 1 cannot be undone: {offered}, not completed"),
        (TINA, "undo"): (1, f"Error: migration 1 cannot be undone: {offered}, not completed"),
        (SUE, "pause"): (4, "Error: sue@acme.example is not a Superuser of BOOK: only they may pause "
                            "migration 1"),
        (TINA, "pause"): (1, "Error: nothing to pause in migration 1: its administrations are offered "
                             "(only scheduled and in-progress transfers pause)"),
        **{(user, "cancel"): (1, f"Error: nothing to cancel in migration 1: {offered}, not redeemed: "
                                 "the sender revokes it (`basecone-migrate revoke 1`)")
           for user in (SUE, TINA)}}
    assert state.take() == snapshot

    # Moved to BOOK, then back to ACME by a second migration: the first cannot be undone, as
    # its receiver and the Superuser of where it is now are both told.
    cli.ok("--as", TINA, "redeem", cli.ok("--as", SUE, "resend", "1", "--json").json()["transfercode"],
           "--accept-terms")
    back = make_offer(cli, "1001", to=(SUE,), sender=TINA)
    cli.ok("--as", SUE, "redeem", back["transfercode"], "--accept-terms", "--link", "1001=acme-tw:1001")
    snapshot = state.take()
    for user in (TINA, SUE):
        moved_on = cli("--as", user, "undo", "1")
        assert (moved_on.exit_code, moved_on.error) == (
            1, "Error: migration 1 cannot be undone: 1001 Bakkerij Jansen (id 1) is no longer held by BOOK")
    assert state.take() == snapshot
    assert cli("--as", TINA, "undo", "2").exit_code == 4  # BOOK sent it: ACME's to undo
