"""`redeem`: taking administrations (kinds 1 and 4), rejecting, and every refusal."""

from __future__ import annotations

import copy
import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    SUE,
    TIM,
    TINA,
    UMA,
    Cli,
    SmtpServer,
    State,
    make_offer,
    snapshot_database,
    snapshot_files,
    write_world,
)

ITEM_FIELDS = {"administration_id", "administration", "status", "accounting_system", "code", "email",
               "documents", "bytes"}


def documents_of(cli: Cli, admin_id: int) -> list[dict[str, Any]]:
    return cli.ok("archive", "list", str(admin_id), "--json").json()


def charges(db_url: str) -> list[tuple[str, ...]]:
    return snapshot_database(db_url)["charges"]


def test_kind_1_moves_the_administration_with_its_archive(
    mailing_cli: Cli, loaded: dict[str, Any], smtp: SmtpServer, storage: Path, db_url: str,
    world_dir: Path,
) -> None:
    cli = mailing_cli
    before = documents_of(cli, 1)
    code = make_offer(cli, "1001")["transfercode"]
    smtp.take()

    result = cli.ok("--as", TINA, "redeem", code.lower().replace("-", " "), "--accept-terms", "--json",
                    fee="EUR 49.00").json()

    assert result["status"] == "completed"
    [item] = result["items"]
    assert set(item) >= ITEM_FIELDS
    assert {k: item[k] for k in ITEM_FIELDS} == {
        "administration_id": 1, "administration": "Bakkerij Jansen", "status": "completed",
        "accounting_system": "book-tw", "code": "1001", "email": "BOOK.1001@mailtobasecone.com",
        "documents": 3, "bytes": sum(d["size"] for d in before)}

    shown = cli.ok("admin", "show", "1", "--json").json()
    assert (shown["environment"], shown["accounting_system"], shown["code"], shown["email"]) == (
        "BOOK", "book-tw", "1001", "BOOK.1001@mailtobasecone.com")
    assert shown["users"] == [] and shown["workflows"] == []
    assert "1001" not in [a["code"] for a in cli.ok("admin", "list", "--env", "ACME", "--json").json()]

    # Every byte arrived once; the source holds none.
    after = documents_of(cli, 1)
    assert [(d["id"], d["sha256"], d["size"]) for d in after] == [
        (d["id"], d["sha256"], d["size"]) for d in before]
    for n, doc in enumerate(after, 1):
        stored = storage / "BOOK" / "1" / doc["sha256"]
        assert stored.read_bytes() == (world_dir / "docs" / f"invoice-{n}.pdf").read_bytes()
    assert sorted(os.listdir(storage / "BOOK" / "1")) == sorted(d["sha256"] for d in after)
    assert not (storage / "ACME" / "1").exists()
    assert cli.ok("archive", "verify", "1", "--json").json()["ok"] == 3

    # One fee charge, to the receiving environment.
    [charge] = charges(db_url)
    assert charge[1:5] == ("2", "1", "'EUR'", "4900")  # (id, environment BOOK, item, currency, cents)

    redeemed, completed = smtp.take()
    assert (redeemed.message["To"], redeemed.subject) == (SUE, "Migration started by Bookwise (BOOK)")
    assert "Bakkerij Jansen (code 1001, Twinfield)" in redeemed.text
    assert sorted(completed.recipients) == [SUE, TINA]
    assert completed.subject == "Migration complete: 1 administration moved to Bookwise (BOOK)"
    assert "new mail address: BOOK.1001@mailtobasecone.com" in completed.text
    assert "access grant" in completed.text and "Access = Yes" in completed.text
    for mail in (redeemed, completed):
        assert code not in mail.text and "Transfercode" not in mail.text


def test_kind_4_moves_and_changes_the_code(cli: Cli, loaded: dict[str, Any], storage: Path) -> None:
    code = make_offer(cli, "1001")["transfercode"]
    result = cli.ok("--as", TINA, "redeem", code, "--accept-terms", "--link", "1001=book-tw:7001",
                    "--json").json()
    [item] = result["items"]
    assert (item["accounting_system"], item["code"], item["email"]) == (
        "book-tw", "7001", "BOOK.7001@mailtobasecone.com")
    assert cli.ok("admin", "show", "1", "--json").json()["code"] == "7001"


def test_a_move_across_filesystems_streams_and_verifies(
    cli: Cli, world_dir: Path, world: dict[str, Any], storage: Path, tmp_path: Path
) -> None:
    if not os.path.isdir("/dev/shm"):
        pytest.skip("needs /dev/shm")
    shm = Path("/dev/shm") / f"bcm-test-{os.getpid()}-{tmp_path.name}"
    world["environments"][1]["storage"] = str(shm)
    try:
        cli.ok("load", write_world(world_dir, world))
        before = documents_of(cli, 1)
        code = make_offer(cli, "1001")["transfercode"]
        cli.ok("--as", TINA, "redeem", code, "--accept-terms")
        for doc in before:
            data = (shm / "1" / doc["sha256"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == doc["sha256"] and len(data) == doc["size"]
        assert sorted(os.listdir(shm / "1")) == sorted(d["sha256"] for d in before)
        assert not (storage / "ACME" / "1").exists()
    finally:
        shutil.rmtree(shm, ignore_errors=True)


def test_select_takes_some_and_rejects_the_rest(
    mailing_cli: Cli, loaded: dict[str, Any], smtp: SmtpServer
) -> None:
    cli = mailing_cli
    code = make_offer(cli, "1001", "1002", extra=("--confirm-checklist",))["transfercode"]
    smtp.take()

    result = cli.ok("--as", TINA, "redeem", code, "--accept-terms", "--select", "1001",
                    "--reason", "Garage Smit stays with Acme", "--json").json()

    assert [(i["administration"], i["status"]) for i in result["items"]] == [
        ("Bakkerij Jansen", "completed"), ("Garage Smit", "rejected")]
    garage = cli.ok("admin", "show", "2", "--json").json()
    assert garage["environment"] == "ACME" and garage["workflows"]  # untouched
    mails = {m.message["Subject"]: m for m in smtp.take()}
    rejected = mails["Migration rejected by Bookwise (BOOK)"]
    assert rejected.message["To"] == SUE
    assert "Garage Smit (code 1002, Twinfield)" in rejected.text
    assert "Reason: Garage Smit stays with Acme" in rejected.text
    assert "Bakkerij Jansen" not in rejected.text
    listed = cli.ok("--as", SUE, "list", "--offered", "--json").json()["offered"]
    assert sorted((r["administration"], r["status"]) for r in listed) == [
        ("Bakkerij Jansen", "completed"), ("Garage Smit", "rejected")]


def test_reject_declines_the_whole_offer(
    mailing_cli: Cli, loaded: dict[str, Any], smtp: SmtpServer, storage: Path
) -> None:
    cli = mailing_cli
    code = make_offer(cli, "1001")["transfercode"]
    smtp.take()
    files = snapshot_files(storage)

    result = cli.ok("--as", TINA, "redeem", code, "--reject", "--reason", "wrong office", "--json").json()

    assert [i["status"] for i in result["items"]] == ["rejected"]
    [mail] = smtp.take()
    assert (mail.message["To"], mail.subject) == (SUE, "Migration rejected by Bookwise (BOOK)")
    assert "Reason: wrong office" in mail.text and code not in mail.text
    assert snapshot_files(storage) == files
    assert cli.ok("admin", "show", "1", "--json").json()["environment"] == "ACME"
    again = cli("--as", TINA, "redeem", code, "--accept-terms")
    assert (again.exit_code, again.error) == (
        1, "Error: this transfercode was already used: the offer was rejected on 2026-03-02")


def _variant(world: dict[str, Any]) -> dict[str, Any]:
    """Extra pieces for refusals: BOOK already holds a Bakkerij Jansen 1001, ACME an Exact admin."""
    world = copy.deepcopy(world)
    acme, book = world["environments"][0], world["environments"][1]
    acme["administrations"].append({"code": "2001", "name": "Fietsen Bakker", "accounting_system": "acme-eol"})
    acme["accounting_systems"][2]["catalogue"].append({"code": "2001", "name": "Fietsen Bakker"})
    book["accounting_systems"].append({"id": "book-tw2", "package": "twinfield", "name": "Twinfield 2",
                                       "catalogue": [{"code": "1001", "name": "Bakkerij Jansen"}]})
    return world


REFUSALS: list[tuple[str, str, list[str], int, str]] = [
    # (case, acting user, extra arguments, exit code, message); 1001 is offered to tina
    ("not a superuser", UMA, ["--accept-terms"], 4,
     "uma@book.example is not a Superuser: only a Superuser of the receiving environment may redeem "
     "an offer"),
    ("not a recipient", TIM, ["--accept-terms"], 4,
     "tim@book.example is not a recipient of this transfercode: only the addresses it was sent to "
     "can redeem it; ask sue@acme.example for a new offer to your address"),
    ("terms not accepted", TINA, [], 1,
     "accept the terms and the costs (EUR 49.00 per administration, invoiced to BOOK) with "
     "--accept-terms (read them first: `basecone-migrate terms`)"),
    ("another package", TINA, ["--accept-terms", "--link", "1001=book-xero"], 1,
     "administration 1001 Bakkerij Jansen (id 1) is a Twinfield administration and connection "
     "book-xero is Xero: the package never changes"),
    ("code not in the catalogue", TINA, ["--accept-terms", "--link", "1001=book-tw:9999"], 1,
     "code 9999 is not in the catalogue of connection book-tw: move the administration in Twinfield "
     "first, then load the catalogue"),
    ("code taken in the connection", TINA, ["--accept-terms", "--link", "1001=book-tw:5001"], 1,
     "code 5001 of connection book-tw is already linked to administration 5001 Drukkerij Visser "
     "(id 4): administrations are never merged"),
    ("another company in the catalogue", TINA, ["--accept-terms", "--link", "1001=book-tw:1002"], 1,
     ("code 1002 of connection book-tw is 'Garage Smit' in the catalogue, not 'Bakkerij Jansen': check "
      "the code, or pass --take-catalogue-name to link administration 1 to it and rename it "
      "'Garage Smit'")),
    ("connection of another environment", TINA, ["--accept-terms", "--link", "1001=acme-tw2"], 1,
     "connection acme-tw2 belongs to environment ACME, not BOOK"),
    ("unknown connection", TINA, ["--accept-terms", "--link", "1001=nope"], 3,
     "no accounting system (connection) 'nope'"),
    ("selection not offered", TINA, ["--accept-terms", "--select", "1002"], 3,
     "administration '1002' is not in this migration (it holds: 1 (1001))"),
    ("malformed link", TINA, ["--accept-terms", "--link", "1001"], 2,
     "--link '1001' is not ADMIN=CONNECTION[:CODE]"),
    ("link to what is not taken", TINA, ["--accept-terms", "--select", "1001", "--link", "9=book-tw"], 3,
     "administration '9' is not in this migration (it holds: 1 (1001))"),
    ("no acting user", "", ["--accept-terms"], 4,
     "no acting user: pass --as EMAIL (or set BASECONE_MIGRATE_USER) to say who is doing this"),
]


@pytest.mark.parametrize(("case", "user", "args", "exit_code", "message"), REFUSALS,
                         ids=[r[0] for r in REFUSALS])
@pytest.mark.parametrize("dry_run", [False, True], ids=["real", "dry-run"])
def test_refused_redeems_change_nothing(
    mailing_cli: Cli, loaded: dict[str, Any], smtp: SmtpServer, state: State,
    case: str, user: str, args: list[str], exit_code: int, message: str, dry_run: bool,
) -> None:
    code = make_offer(mailing_cli, "1001")["transfercode"]
    smtp.take()
    snapshot = state.take()

    result = mailing_cli(*(["--as", user] if user else []), "redeem", code, *args,
                         *(["--dry-run"] if dry_run else []), fee="EUR 49.00")

    assert (result.exit_code, result.error) == (exit_code, f"Error: {message}")
    assert state.take() == snapshot  # not even a failed-code record: the code was good
    assert smtp.take() == []


def test_the_target_must_not_hold_the_same_code_and_name(
    cli: Cli, world_dir: Path, world: dict[str, Any], state: State
) -> None:
    world = _variant(world)
    world["environments"][1]["administrations"].append(
        {"code": "1001", "name": "Bakkerij Jansen", "accounting_system": "book-tw2"})
    cli.ok("load", write_world(world_dir, world))
    code = make_offer(cli, "1001")["transfercode"]
    snapshot = state.take()

    result = cli("--as", TINA, "redeem", code, "--accept-terms", "--link", "1001=book-tw")

    assert result.exit_code == 1
    assert result.error.startswith("Error: environment BOOK already holds administration 1001 Bakkerij "
                                   "Jansen (id ")
    assert result.error.endswith("): an environment holds each code and name once")
    assert state.take() == snapshot


def test_the_target_needs_a_connection_of_the_package(
    cli: Cli, world_dir: Path, world: dict[str, Any], state: State
) -> None:
    cli.ok("load", write_world(world_dir, _variant(world)))
    code = make_offer(cli, "2001")["transfercode"]
    snapshot = state.take()
    result = cli("--as", TINA, "redeem", code, "--accept-terms")
    assert (result.exit_code, result.error) == (
        1, "Error: environment BOOK has no Exact Online (NL) connection for 2001 Fietsen Bakker (id 4): "
           "add one first (the package never changes)")
    assert state.take() == snapshot


def test_an_ambiguous_link_must_be_named(
    cli: Cli, world_dir: Path, world: dict[str, Any], state: State
) -> None:
    cli.ok("load", write_world(world_dir, _variant(world)))
    code = make_offer(cli, "1001")["transfercode"]
    snapshot = state.take()
    result = cli("--as", TINA, "redeem", code, "--accept-terms")
    assert (result.exit_code, result.error) == (
        2, "Error: say where 1001 Bakkerij Jansen (id 1) goes with --link 1001=CONNECTION[:CODE] (2 "
           "connections have 1001 Bakkerij Jansen in their catalogue; Twinfield connections: book-tw, "
           "book-tw2)")
    assert state.take() == snapshot
    cli.ok("--as", TINA, "redeem", code, "--accept-terms", "--link", "1001=book-tw2")


def test_a_trial_environment_cannot_receive(
    cli: Cli, world_dir: Path, world: dict[str, Any], state: State
) -> None:
    cli.ok("load", write_world(world_dir, world))
    code = make_offer(cli, "1001")["transfercode"]  # offer refuses a trial office: BOOK is premium
    world["environments"][1]["plan"] = "trial"  # ... until its plan ends
    cli.ok("load", write_world(world_dir, world))
    snapshot = state.take()
    result = cli("--as", TINA, "redeem", code, "--accept-terms")
    assert (result.exit_code, result.error) == (
        1, "Error: environment BOOK is on a trial plan: only premium environments can receive "
           "administrations")
    assert state.take() == snapshot


def test_the_source_environment_cannot_receive(
    cli: Cli, world_dir: Path, world: dict[str, Any], state: State
) -> None:
    cli.ok("load", write_world(world_dir, world))
    snapshot = state.take()
    to_self = cli("--as", SUE, "offer", "1001", "--to", SUE, "--accept-terms")
    assert (to_self.exit_code, to_self.error) == (
        1, "Error: sue@acme.example is in ACME, the environment the administrations leave: offer "
           "them to a Superuser of the receiving environment")
    assert state.take() == snapshot

    # A recipient who joins the source office after the offer still cannot take it there.
    code = make_offer(cli, "1001", to=("newboss@acme.example",),
                      extra=("--allow-unknown-recipient", "--to-env", "BOOK"))["transfercode"]
    world["environments"][0]["users"].append(
        {"email": "newboss@acme.example", "name": "New", "role": "superuser"})
    cli.ok("load", write_world(world_dir, world))
    snapshot = state.take()
    result = cli("--as", "newboss@acme.example", "redeem", code, "--accept-terms")
    assert (result.exit_code, result.error) == (
        1, "Error: these administrations are already in your environment ACME: a transfercode moves "
           "them to another environment")
    assert state.take() == snapshot


CODE_FAILURES = [
    ("unknown", lambda cli, code: "AAAA-BBBB-CCCC-DDDD-EEEE", {},
     "unknown transfercode: check it against the mail (case, spaces and dashes do not matter)"),
    ("not even a code", lambda cli, code: "hello", {},
     "unknown transfercode: check it against the mail (case, spaces and dashes do not matter)"),
    ("expired by the clock before cron ran", lambda cli, code: code, {"now": "2026-03-17T09:00:00Z"},
     "this transfercode expired on 2026-03-17 09:00 UTC: ask sue@acme.example to resend the offer"),
    ("revoked", lambda cli, code: (cli.ok("--as", SUE, "revoke", "1"), code)[1], {},
     "this offer was revoked by its sender"),
    ("spent", lambda cli, code: (cli.ok("--as", TINA, "redeem", code, "--accept-terms"), code)[1], {},
     "this transfercode was already used: the offer was redeemed on 2026-03-02"),
    ("replaced by resend", lambda cli, code: (cli.ok("--as", SUE, "resend", "1"), code)[1], {},
     "this transfercode was replaced by a new one on 2026-03-02: use the code from the latest mail"),
]


@pytest.mark.parametrize(("case", "prepare", "settings", "message"), CODE_FAILURES,
                         ids=[c[0] for c in CODE_FAILURES])
def test_codes_that_open_no_offer(
    cli: Cli, loaded: dict[str, Any], state: State, db_url: str,
    case: str, prepare: Any, settings: dict[str, str], message: str,
) -> None:
    code = prepare(cli, make_offer(cli, "1001")["transfercode"])
    snapshot = snapshot_database(db_url)

    result = cli("--as", TINA, "redeem", code, "--accept-terms", **settings)

    assert (result.exit_code, result.error) == (1, f"Error: {message}")
    after = snapshot_database(db_url)
    assert len(after["failed_redeems"]) == 1  # the one thing a bad code leaves: a counted attempt
    assert {k: v for k, v in after.items() if k != "failed_redeems"} == {
        k: v for k, v in snapshot.items() if k != "failed_redeems"}


def test_five_bad_codes_lock_redeem_for_fifteen_minutes(cli: Cli, loaded: dict[str, Any]) -> None:
    good = make_offer(cli, "1001")["transfercode"]
    bad = "AAAA-BBBB-CCCC-DDDD-EEEE"
    minute = "2026-03-02T09:{:02d}:00Z"
    for m in range(5):
        assert cli("--as", TINA, "redeem", bad, "--accept-terms", now=minute.format(m)).exit_code == 1
    # Refusals for other reasons never counted (terms), and the good code is refused now too.
    locked = cli("--as", TINA, "redeem", good, "--accept-terms", now=minute.format(10))
    assert (locked.exit_code, locked.error) == (
        4, "Error: too many transfercodes that opened no offer: redeeming is locked for "
           "tina@book.example until 2026-03-02 09:19 UTC")
    assert cli("--as", TINA, "redeem", good, "--accept-terms", now=minute.format(18)).exit_code == 4
    # Another user is not affected.
    assert cli("--as", TIM, "redeem", bad, "--accept-terms", now=minute.format(10)).exit_code == 1
    # Fifteen minutes after the last failed code, it works again.
    assert cli("--as", TINA, "redeem", good, "--accept-terms", now=minute.format(19)).exit_code == 0


def test_other_refusals_do_not_count_towards_the_lock(cli: Cli, loaded: dict[str, Any]) -> None:
    code = make_offer(cli, "1001")["transfercode"]
    for _ in range(6):
        assert cli("--as", TINA, "redeem", code).exit_code == 1  # terms not accepted
        assert cli("--as", TINA, "redeem", code, "--accept-terms", "--link", "1001=book-xero").exit_code == 1
    assert cli("--as", TINA, "redeem", code, "--accept-terms").exit_code == 0


def test_four_bad_codes_spread_out_do_not_lock(cli: Cli, loaded: dict[str, Any]) -> None:
    good = make_offer(cli, "1001")["transfercode"]
    for minute in ("09:00", "09:10", "09:20", "09:30", "09:40", "09:50"):
        cli("--as", TINA, "redeem", "AAAA-BBBB-CCCC-DDDD-EEEE", now=f"2026-03-02T{minute}:00Z")
    assert cli("--as", TINA, "redeem", good, "--accept-terms", now="2026-03-02T09:51:00Z").exit_code == 0


def test_dry_run_redeem_changes_nothing(
    mailing_cli: Cli, loaded: dict[str, Any], smtp: SmtpServer, state: State
) -> None:
    code = make_offer(mailing_cli, "1001", "1002", extra=("--confirm-checklist",))["transfercode"]
    smtp.take()
    snapshot = state.take()

    result = mailing_cli.ok("--as", TINA, "redeem", code, "--accept-terms", "--select", "1001",
                            "--link", "1001=book-tw:7001", "--dry-run", "--json").json()

    assert result["dry_run"] is True
    assert [(i["administration"], i["action"], i["accounting_system"], i["code"], i["email"])
            for i in result["items"]] == [
        ("Bakkerij Jansen", "take", "book-tw", "7001", "BOOK.7001@mailtobasecone.com"),
        ("Garage Smit", "reject", "acme-tw", "1002", "ACME.1002@mailtobasecone.com")]
    assert state.take() == snapshot
    assert smtp.take() == []
    mailing_cli.ok("--as", TINA, "redeem", code, "--accept-terms", "--select", "1001")


def test_a_link_to_another_name_renames_at_the_switch_only_when_asked(
    mailing_cli: Cli, world_dir: Path, world: dict[str, Any], smtp: SmtpServer, state: State
) -> None:
    world["environments"][1]["accounting_systems"][0]["catalogue"].append(
        {"code": "1004", "name": "Slagerij Peters"})
    cli = mailing_cli
    cli.ok("load", write_world(world_dir, world))
    code = make_offer(cli, "1001")["transfercode"]
    smtp.take()
    snapshot = state.take()
    refused = cli("--as", TINA, "redeem", code, "--accept-terms", "--link", "1001=book-tw:1004", "--dry-run")
    assert (refused.exit_code, refused.error) == (
        1, ("Error: code 1004 of connection book-tw is 'Slagerij Peters' in the catalogue, not "
            "'Bakkerij Jansen': check the code, or pass --take-catalogue-name to link administration 1 "
            "to it and rename it 'Slagerij Peters'"))
    dry = cli.ok("--as", TINA, "redeem", code, "--accept-terms", "--link", "1001=book-tw:1004",
                 "--take-catalogue-name", "--dry-run", "--json").json()
    assert [(i["administration"], i["renamed_from"], i["code"]) for i in dry["items"]] == [
        ("Slagerij Peters", "Bakkerij Jansen", "1004")]
    dry_table = cli.ok("--as", TINA, "redeem", code, "--accept-terms", "--link", "1001=book-tw:1004",
                       "--take-catalogue-name", "--dry-run")
    assert "Slagerij Peters (was Bakkerij Jansen)" in dry_table.stdout
    assert state.take() == snapshot and smtp.take() == []

    result = cli.ok("--as", TINA, "redeem", code, "--accept-terms", "--link", "1001=book-tw:1004",
                    "--take-catalogue-name", "--json").json()

    [item] = result["items"]
    assert (item["administration"], item["renamed_from"], item["code"], item["status"]) == (
        "Slagerij Peters", "Bakkerij Jansen", "1004", "completed")
    shown = cli.ok("admin", "show", "1", "--json").json()
    assert (shown["environment"], shown["code"], shown["name"]) == ("BOOK", "1004", "Slagerij Peters")
    status = cli.ok("status", "1", "--json").json()["items"][0]
    assert (status["from"]["name"], status["to"]["name"]) == ("Bakkerij Jansen", "Slagerij Peters")
    completed = [m for m in smtp.take() if m.subject.startswith("Migration complete")]
    assert len(completed) == 1
    assert "Slagerij Peters (was Bakkerij Jansen) (code 1004, Twinfield)" in completed[0].text


def test_redeem_never_prompts_without_a_terminal(cli: Cli, loaded: dict[str, Any]) -> None:
    code = make_offer(cli, "1001")["transfercode"]
    result = cli("--as", TINA, "redeem", code, input="y\n")  # stdin is not a terminal
    assert result.exit_code == 1
    assert "accept the terms" in result.error


def test_items_not_taken_keep_their_archive_in_the_result(cli: Cli, loaded: dict[str, Any]) -> None:
    code = make_offer(cli, "1001", "1002", extra=("--confirm-checklist",))["transfercode"]
    result = cli.ok("--as", TINA, "redeem", code, "--accept-terms", "--select", "1001", "--json").json()
    garage = next(i for i in result["items"] if i["administration"] == "Garage Smit")
    assert (garage["status"], garage["documents"], garage["email"]) == (
        "rejected", 1, "ACME.1002@mailtobasecone.com")
    assert garage["bytes"] > 0


def test_a_long_reason_is_a_usage_error_on_both_databases(cli: Cli, loaded: dict[str, Any], state: State) -> None:
    code = make_offer(cli, "1001")["transfercode"]
    snapshot = state.take()
    result = cli("--as", TINA, "redeem", code, "--reject", "--reason", "x" * 2001)
    assert (result.exit_code, result.error) == (2, "Error: --reason is 2001 characters; keep it under 2000")
    assert state.take() == snapshot


def test_coming_back_after_an_unfinished_transfer_points_to_resume(
    cli: Cli, loaded: dict[str, Any], storage: Path, db_url: str
) -> None:
    docs = documents_of(cli, 1)
    (storage / "ACME" / "1" / docs[0]["sha256"]).unlink()
    code = make_offer(cli, "1001")["transfercode"]
    assert cli("--as", TINA, "redeem", code, "--accept-terms").exit_code == 5
    again = cli("--as", TINA, "redeem", code, "--accept-terms")
    assert (again.exit_code, again.error) == (
        1, "Error: this transfercode was redeemed on 2026-03-02 and its transfer did not finish: run "
           "`basecone-migrate resume 1`")
    assert snapshot_database(db_url)["failed_redeems"] == []  # not counted as a guess


def test_the_code_can_come_from_a_file_or_standard_input(
    cli: Cli, loaded: dict[str, Any], tmp_path: Path
) -> None:
    """--code-file keeps the code out of the process list and the shell history."""
    code = make_offer(cli, "1001")["transfercode"]
    secret = tmp_path / "code.txt"
    secret.write_text(f"\n  {code}  \n")
    dry = cli.ok("--as", TINA, "redeem", "--code-file", secret, "--accept-terms", "--dry-run", "--json")
    assert dry.json()["migration_id"] == 1
    taken = cli.ok("--as", TINA, "redeem", "--code-file", "-", "--accept-terms", "--json", input=code + "\n")
    assert taken.json()["status"] == "completed"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_code_that_cannot_be_read_is_a_usage_error(
    cli: Cli, loaded: dict[str, Any], tmp_path: Path, state: State, backend: str
) -> None:
    code = make_offer(cli, "1001")["transfercode"]
    before = state.take()
    two = tmp_path / "two.txt"
    two.write_text(f"{code}\n{code}\n")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    cases = [
        ((), "", "Error: give the transfercode: --code-file FILE (- for standard input), or CODE"),
        ((code, "--code-file", two), "",
         "Error: give the transfercode once: as CODE or with --code-file, not both"),
        (("--code-file", two), "",
         (f"Error: --code-file: {two} must hold the transfercode on one line, and nothing else "
          "(found 2 lines)")),
        (("--code-file", empty), "",
         (f"Error: --code-file: {empty} must hold the transfercode on one line, and nothing else "
          "(found 0 lines)")),
        (("--code-file", tmp_path / "missing.txt"), "",
         f"Error: --code-file {tmp_path / 'missing.txt'}: no such file"),
        (("--code-file", "-"), "x" * 5000,
         "Error: --code-file: standard input is longer than a transfercode file can be (4096 bytes)"),
        (("--code-file", "-", "--links", "-"), code,
         "Error: --code-file - and --links - both read standard input: give one a file"),
    ]
    for args, given, message in cases:
        result = cli("--as", TINA, "redeem", *args, "--accept-terms", input=given)
        assert (result.exit_code, result.error) == (2, message), args
    assert state.take() == before


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("extra", [("--accept-terms",), ("--take-catalogue-name",), ("--select", "1001"),
                                   ("--link", "1001=book-tw"), ("--links", "links.csv")])
def test_reject_takes_no_option_of_taking(
    cli: Cli, loaded: dict[str, Any], state: State, backend: str, extra: tuple[str, ...]
) -> None:
    code = make_offer(cli, "1001")["transfercode"]
    before = state.take()
    result = cli("--as", TINA, "redeem", code, "--reject", *extra)
    assert (result.exit_code, result.error) == (2, (
        "Error: --reject declines the whole offer: drop --select, --link, --links, "
        "--take-catalogue-name and --accept-terms"))
    assert state.take() == before


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_options_are_checked_before_the_code_is_asked_for(cli: Cli, loaded: dict[str, Any],
                                                               backend: str) -> None:
    """A person types the code once: a wrong option is said before the code is asked."""
    result = cli("--as", TINA, "redeem", "--accept-terms", "--link", "nonsense")
    assert (result.exit_code, result.error) == (2, "Error: --link 'nonsense' is not ADMIN=CONNECTION[:CODE]")
    both = cli("--as", TINA, "redeem", "--accept-terms", "--code-file", "-", "--links", "-")
    assert (both.exit_code, both.error) == (
        2, "Error: --code-file - and --links - both read standard input: give one a file")
