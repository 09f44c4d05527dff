"""revoke, resend, list, status and expire."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    CARL,
    SUE,
    TINA,
    Cli,
    SmtpServer,
    State,
    make_offer,
    write_world,
)


def test_revoke_withdraws_the_offer_and_tells_the_recipients(
    mailing_cli: Cli, loaded: dict[str, Any], smtp: SmtpServer
) -> None:
    cli = mailing_cli
    offer = make_offer(cli, "1001", "1002", extra=("--confirm-checklist",))
    smtp.take()

    result = cli.ok("--as", SUE, "revoke", str(offer["migration_id"]), "--json").json()

    assert result == {"migration_id": 1, "status": "revoked", "revoked": [
        {"id": 1, "code": "1001", "name": "Bakkerij Jansen"}, {"id": 2, "code": "1002", "name": "Garage Smit"}]}
    [mail] = smtp.take()
    assert mail.message["To"] == TINA and mail.message["Cc"] is None
    assert mail.subject == "Migration offer withdrawn by Acme Accountants (ACME)"
    assert "Bakkerij Jansen (code 1001" in mail.text and "Garage Smit" in mail.text
    assert offer["transfercode"] not in mail.text and "Transfercode" not in mail.text
    statuses = {r["administration"]: r["status"] for r in cli.ok("--as", SUE, "list", "--json").json()["offered"]}
    assert statuses == {"Bakkerij Jansen": "revoked", "Garage Smit": "revoked"}


def test_revoke_one_administration_keeps_the_rest_on_offer(cli: Cli, loaded: dict[str, Any]) -> None:
    offer = make_offer(cli, "1001", "1002", extra=("--confirm-checklist",))
    result = cli.ok("--as", SUE, "revoke", "1", "--admin", "1002", "--json").json()
    assert [a["code"] for a in result["revoked"]] == ["1002"] and result["status"] == "offered"
    redeemed = cli.ok("--as", TINA, "redeem", offer["transfercode"], "--accept-terms", "--json").json()
    assert [(i["administration"], i["status"]) for i in redeemed["items"]] == [
        ("Bakkerij Jansen", "completed"), ("Garage Smit", "revoked")]
    # Revoked, it may be offered again.
    make_offer(cli, "1002", extra=("--confirm-checklist",))


REVOKE_REFUSALS = [
    ("not the sender's environment", ["--as", TINA, "revoke", "1"], 4,
     "tina@book.example is not a Superuser of environment ACME: only its Superusers may revoke its offers"),
    ("not a superuser", ["--as", CARL, "revoke", "1"], 4,
     "carl@acme.example is not a Superuser of environment ACME: only its Superusers may revoke its offers"),
    ("unknown migration", ["--as", SUE, "revoke", "99"], 3, "no migration 99 (see `basecone-migrate list`)"),
    ("administration not in it", ["--as", SUE, "revoke", "1", "--admin", "1002"], 3,
     "administration '1002' is not in this migration (it holds: 1 (1001))"),
    ("resend by someone else", ["--as", TINA, "resend", "1"], 4,
     "tina@book.example is not a Superuser of environment ACME: only its Superusers may resend its offers"),
    ("no acting user", ["revoke", "1"], 4,
     "no acting user: pass --as EMAIL (or set BASECONE_MIGRATE_USER) to say who is doing this"),
]


@pytest.mark.parametrize(("case", "args", "exit_code", "message"), REVOKE_REFUSALS,
                         ids=[r[0] for r in REVOKE_REFUSALS])
def test_refused_revokes_and_resends_change_nothing(
    mailing_cli: Cli, loaded: dict[str, Any], smtp: SmtpServer, state: State,
    case: str, args: list[str], exit_code: int, message: str,
) -> None:
    make_offer(mailing_cli, "1001")
    smtp.take()
    snapshot = state.take()
    result = mailing_cli(*args)
    assert (result.exit_code, result.error) == (exit_code, f"Error: {message}")
    assert state.take() == snapshot
    assert smtp.take() == []


def test_nothing_left_to_revoke_or_resend(cli: Cli, loaded: dict[str, Any], state: State) -> None:
    code = make_offer(cli, "1001")["transfercode"]
    cli.ok("--as", TINA, "redeem", code, "--accept-terms")
    snapshot = state.take()
    revoke = cli("--as", SUE, "revoke", "1")
    resend = cli("--as", SUE, "resend", "1")
    assert (revoke.exit_code, revoke.error) == (
        1, "Error: nothing to revoke in migration 1: only offered administrations can be revoked, "
           "these are completed")
    assert (resend.exit_code, resend.error) == (
        1, "Error: migration 1 has nothing on offer any more (completed): make a new offer instead")
    assert state.take() == snapshot


def test_resend_issues_a_new_code_and_the_old_one_stops_working(
    mailing_cli: Cli, loaded: dict[str, Any], smtp: SmtpServer
) -> None:
    cli = mailing_cli
    old = make_offer(cli, "1001")["transfercode"]
    smtp.take()

    result = cli.ok("--as", SUE, "resend", "1", "--json", now="2026-03-10T09:00:00Z").json()

    new = result["transfercode"]
    assert new != old and result["expires_at"] == "2026-03-25T09:00:00+00:00"
    [mail] = smtp.take()
    assert (mail.message["To"], mail.message["Cc"]) == (TINA, SUE)
    assert f"Transfercode: {new}" in mail.text and old not in mail.text
    assert "a new code: the previous one no longer works" in mail.text
    hint = cli.ok("--as", SUE, "list", "--json").json()["offered"][0]["transfercode_hint"]
    assert hint == "****-****-****-****-" + new[-4:]
    assert cli("--as", TINA, "redeem", old, "--accept-terms").exit_code == 1
    assert cli("--as", TINA, "redeem", new, "--accept-terms", now="2026-03-20T09:00:00Z").exit_code == 0


# -- list ---------------------------------------------------------------------------------------


@pytest.fixture
def history(cli: Cli, world_dir: Path, world: dict[str, Any]) -> dict[str, Any]:
    """ACME offered 1001 (taken by BOOK) and 1002 (pending); BOOK offered 5001 to ACME."""
    world = copy.deepcopy(world)
    world["environments"][0]["accounting_systems"][0]["catalogue"].append(
        {"code": "5001", "name": "Drukkerij Visser"})
    cli.ok("load", write_world(world_dir, world))
    first = make_offer(cli, "1001")
    cli.ok("--as", TINA, "redeem", first["transfercode"], "--accept-terms")
    second = make_offer(cli, "1002", extra=("--confirm-checklist",), now="2026-03-05T10:00:00Z")
    make_offer(cli, "5001", to=(SUE,), sender=TINA, now="2026-03-06T10:00:00Z")
    return {"first": first, "second": second}


OFFERED_FIELDS = {"migration_id", "administration_id", "administration", "administration_email",
                  "recipients", "created_at", "expires_at", "transfercode_hint", "status"}
RECEIVED_FIELDS = {"migration_id", "administration_id", "administration", "accounting_system",
                   "created_at", "status"}


def test_list_has_both_sections_with_the_contract_fields(cli: Cli, history: dict[str, Any]) -> None:
    acme = cli.ok("--as", SUE, "list", "--json").json()
    assert all(OFFERED_FIELDS <= set(r) for r in acme["offered"])
    assert all(RECEIVED_FIELDS <= set(r) for r in acme["received"])
    assert [(r["administration"], r["administration_email"], r["status"], r["recipients"])
            for r in acme["offered"]] == [
        ("Garage Smit", "ACME.1002@mailtobasecone.com", "offered", [TINA]),
        ("Bakkerij Jansen", "ACME.1001@mailtobasecone.com", "completed", [TINA])]
    assert [(r["administration"], r["accounting_system"], r["status"]) for r in acme["received"]] == [
        ("Drukkerij Visser", "twinfield", "offered")]
    book = cli.ok("--as", TINA, "list", "--received", "--json").json()
    assert (book["offered"], book["offered_total"]) == ([], 0)  # the contract's shape, one side left out
    assert [(r["administration"], r["accounting_system"], r["status"]) for r in book["received"]] == [
        ("Garage Smit", "twinfield", "offered"), ("Bakkerij Jansen", "book-tw", "completed")]
    dump = repr(acme) + repr(book)
    for offer in history.values():
        assert offer["transfercode"] not in dump


@pytest.mark.parametrize(("search", "expected"), [
    ("garage", ["Garage Smit"]),
    ("ACME.1001@MAILTOBASECONE", ["Bakkerij Jansen"]),
    ("COMPLETED", ["Bakkerij Jansen"]),
    ("tina@book", ["Garage Smit", "Bakkerij Jansen"]),
    ("2026-03-05", ["Garage Smit"]),
    ("2026-03-20", ["Garage Smit"]),  # its expiry date
    ("no such thing", []),
    ("100%", []),
])
def test_list_search_matches_any_column(
    cli: Cli, history: dict[str, Any], search: str, expected: list[str]
) -> None:
    rows = cli.ok("--as", SUE, "list", "--offered", "--search", search, "--json").json()["offered"]
    assert [r["administration"] for r in rows] == expected


def test_the_masked_hint_as_shown_finds_its_rows(cli: Cli, history: dict[str, Any]) -> None:
    hint = cli.ok("--as", SUE, "list", "--json").json()["offered"][0]["transfercode_hint"]
    rows = cli.ok("--as", SUE, "list", "--offered", "--search", hint, "--json").json()["offered"]
    assert [r["transfercode_hint"] for r in rows] == [hint]


def test_list_filters_on_status_and_pages(cli: Cli, history: dict[str, Any]) -> None:
    offered = cli.ok("--as", SUE, "list", "--status", "offered", "--json").json()
    assert [r["administration"] for r in offered["offered"]] == ["Garage Smit"]
    assert [r["administration"] for r in offered["received"]] == ["Drukkerij Visser"]
    page = cli.ok("--as", SUE, "list", "--offered", "--limit", "1", "--offset", "1", "--json").json()
    assert [r["administration"] for r in page["offered"]] == ["Bakkerij Jansen"]
    assert page["offered_total"] == 2
    late = cli.ok("--as", SUE, "list", "--status", "expired", "--json", now="2026-04-01T00:00:00Z").json()
    assert [r["administration"] for r in late["offered"]] == ["Garage Smit"]  # before cron ran


def test_list_refusals(cli: Cli, history: dict[str, Any]) -> None:
    both = cli("--as", SUE, "list", "--offered", "--received")
    bad = cli("--as", SUE, "list", "--status", "done")
    nobody = cli("list")
    accountant = cli("--as", CARL, "list")
    assert (both.exit_code, both.error) == (
        2, "Error: --offered and --received exclude each other; give neither for both")
    assert bad.exit_code == 2 and bad.error.startswith("Error: --status must be one of offered, ")
    assert nobody.exit_code == 4
    assert (accountant.exit_code, accountant.error) == (
        4, "Error: carl@acme.example is not a Superuser of ACME: the migration overview is for Superusers")


def test_list_for_people_is_a_table(cli: Cli, history: dict[str, Any]) -> None:
    result = cli.ok("--as", SUE, "list")
    assert "Offered" in result.stdout and "Received" in result.stdout
    tail = "…" + history["first"]["transfercode"].rsplit("-", 1)[-1]  # the hint's telling part
    assert tail in result.stdout and "****" not in result.stdout
    assert "ACME.1002@mailtobasecone.com" in result.stdout


# -- status ---------------------------------------------------------------------------------------


def test_status_reports_each_administration(cli: Cli, history: dict[str, Any]) -> None:
    one = cli.ok("status", "1", "--json").json()
    assert (one["migration_id"], one["status"], one["source_environment"], one["target_environment"],
            one["transfer_running"]) == (1, "completed", "ACME", "BOOK", False)
    [item] = one["items"]
    assert (item["status"], item["documents_done"], item["documents_total"], item["error"]) == (
        "completed", 3, 3, None)
    assert item["bytes_done"] == item["bytes_total"] > 0
    assert item["from"]["email"] == "ACME.1001@mailtobasecone.com"
    assert item["to"] == {"accounting_system": "book-tw", "code": "1001",
                          "email": "BOOK.1001@mailtobasecone.com", "name": "Bakkerij Jansen"}
    recent = cli.ok("--as", SUE, "status", "--json").json()
    assert [m["migration_id"] for m in recent] == [3, 2, 1]
    assert cli("status", "99").exit_code == 3


# -- expire ---------------------------------------------------------------------------------------


def test_expire_marks_stale_offers_once_and_mails_each_sender_once(
    mailing_cli: Cli, loaded: dict[str, Any], smtp: SmtpServer, world_dir: Path, world: dict[str, Any]
) -> None:
    cli = mailing_cli
    make_offer(cli, "1001")
    make_offer(cli, "1002", extra=("--confirm-checklist",), now="2026-03-03T09:00:00Z")
    smtp.take()

    early = cli.ok("expire", "--json", now="2026-03-17T08:59:59Z").json()
    first = cli.ok("expire", "--json", now="2026-03-18T10:00:00Z").json()
    second = cli.ok("expire", "--json", now="2026-03-18T10:00:00Z").json()

    assert (early, first, second) == ({"expired": 0}, {"expired": 2}, {"expired": 0})
    [mail] = smtp.take()
    assert mail.message["To"] == SUE
    assert mail.subject == "Migration offer expired: 2 administrations"
    assert "Bakkerij Jansen (code 1001" in mail.text and "Garage Smit (code 1002" in mail.text
    assert "Transfercode" not in mail.text
    statuses = [r["status"] for r in cli.ok("--as", SUE, "list", "--json").json()["offered"]]
    assert statuses == ["expired", "expired"]
    assert cli.ok("expire", now="2026-03-18T10:00:00Z").stdout == "Expired 0 administration(s).\n"


# -- offers past their expiry, before cron ran ------------------------------------------------------

LATE = "2026-03-20T09:00:00Z"  # the offer of 2026-03-02 expired on 2026-03-17


def test_a_stale_offer_does_not_block_a_new_one(
    mailing_cli: Cli, loaded: dict[str, Any], smtp: SmtpServer
) -> None:
    make_offer(mailing_cli, "1001")
    smtp.take()
    again = make_offer(mailing_cli, "1001", now=LATE)
    assert again["migration_id"] == 2
    subjects = sorted(m.subject for m in smtp.take())
    assert subjects == ["Migration offer expired: 1 administration",
                        "Transfercode for 1 administration from Acme Accountants (ACME)"]
    statuses = {r["migration_id"]: r["status"]
                for r in mailing_cli.ok("--as", SUE, "list", "--json", now=LATE).json()["offered"]}
    assert statuses == {1: "expired", 2: "offered"}
    assert mailing_cli.ok("expire", "--json", now=LATE).json() == {"expired": 0}  # already done


def test_a_stale_offer_does_not_block_a_link(cli: Cli, loaded: dict[str, Any]) -> None:
    make_offer(cli, "1001")
    result = cli.ok("--as", SUE, "link", "1001", "--code", "1099", "--json", now=LATE).json()
    assert result["code"] == "1099"
    assert [e["action"] for e in cli.ok("audit", "--admin", "1", "--json").json()] == [
        "offer", "expire", "link"]


def test_resend_renews_an_expired_offer(mailing_cli: Cli, loaded: dict[str, Any], smtp: SmtpServer) -> None:
    old = make_offer(mailing_cli, "1001")["transfercode"]
    expired = mailing_cli("--as", TINA, "redeem", old, "--accept-terms", now=LATE)
    assert expired.error == ("Error: this transfercode expired on 2026-03-17 09:00 UTC: ask "
                             "sue@acme.example to resend the offer")
    mailing_cli.ok("expire", now=LATE)  # even after cron marked it expired
    smtp.take()

    renewed = mailing_cli.ok("--as", SUE, "resend", "1", "--json", now=LATE).json()

    assert renewed["status"] == "offered"
    assert renewed["expires_at"] == "2026-04-04T09:00:00+00:00"
    assert f"Transfercode: {renewed['transfercode']}" in smtp.take()[0].text
    taken = mailing_cli.ok("--as", TINA, "redeem", renewed["transfercode"], "--accept-terms", "--json",
                           now=LATE).json()
    assert taken["status"] == "completed"
