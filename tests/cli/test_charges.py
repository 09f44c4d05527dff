"""`charges`: the fees charged to receiving environments (and, with cancel and undo, their
credits), as a list that adds up."""

from __future__ import annotations

from typing import Any

from tests.conftest import TINA, Cli, State, make_offer


def test_a_redeem_charges_the_fee_per_administration_to_the_receiver(
        cli: Cli, loaded: dict[str, Any], state: State) -> None:
    code = make_offer(cli, "1001", "1002", extra=("--confirm-checklist",))["transfercode"]
    cli.ok("--as", TINA, "redeem", code, "--accept-terms", "--link", "1002=book-tw:1002",
           fee="EUR 49.50")

    listed = cli.ok("charges", "--json")
    rows = listed.json()
    assert '"amount": 49.5,' in listed.stdout  # a number, exact
    assert [(r["environment"], r["administration_id"], r["migration_id"], r["kind"], r["amount"],
             r["amount_cents"], r["currency"], r["at"]) for r in rows] == [
        ("BOOK", 1, 1, "fee", 49.5, 4950, "EUR", "2026-03-02T09:00:00+00:00"),
        ("BOOK", 2, 1, "fee", 49.5, 4950, "EUR", "2026-03-02T09:00:00+00:00")]
    assert cli.ok("charges", "--env", "book", "--json").json() == rows  # office codes in any case
    assert cli.ok("charges", "--env", "ACME", "--json").json() == []
    assert cli.ok("charges", "--limit", "1", "--json").json() == rows[:1]
    assert cli.ok("charges", "--after", str(rows[0]["id"]), "--json").json() == rows[1:]

    shown = cli.ok("charges")
    title, *lines = shown.stdout.splitlines()
    assert title == "Charges"
    assert lines[0].split() == ["time", "(UTC)", "environment", "admin", "migration", "kind", "amount",
                                "currency"]
    assert [line.split()[2:] for line in lines[1:]] == [
        ["BOOK", "1", "1", "fee", "49.50", "EUR"], ["BOOK", "2", "1", "fee", "49.50", "EUR"]]
    assert shown.stderr == "BOOK: EUR 99.00 in total\n"

    before = state.take()
    refused = cli("charges", "--env", "NOPE")
    assert (refused.exit_code, refused.error) == (
        3, "Error: no environment with office code 'NOPE' (see `basecone-migrate env list`)")
    assert state.take() == before


def test_no_charges_is_said_so(cli: Cli, loaded: dict[str, Any]) -> None:
    assert cli.ok("charges", "--json").json() == []
    empty = cli.ok("charges")
    assert (empty.stdout, empty.stderr) == ("", "(no charges)\n")
