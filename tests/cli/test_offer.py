"""`offer`: the transfercode, the mail, and every pre-flight refusal changing nothing."""

from __future__ import annotations

import copy
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    CARL,
    SUE,
    TINA,
    TOM,
    UMA,
    Cli,
    SmtpServer,
    State,
    make_offer,
    snapshot_database,
    write_world,
)

CODE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){4}$")


def test_offer_makes_a_code_and_mails_it(
    mailing_cli: Cli, loaded: dict[str, Any], smtp: SmtpServer, db_url: str
) -> None:
    result = make_offer(mailing_cli, "1001", "1002", extra=("--confirm-checklist",))

    assert set(result) >= {"migration_id", "transfercode", "expires_at", "recipients",
                           "administrations", "status"}
    assert CODE.match(result["transfercode"])
    assert result["status"] == "offered"
    assert result["recipients"] == [TINA]
    assert datetime.fromisoformat(result["expires_at"]) == datetime.fromisoformat("2026-03-17T09:00:00+00:00")
    assert [(a["code"], a["name"]) for a in result["administrations"]] == [
        ("1001", "Bakkerij Jansen"), ("1002", "Garage Smit")]

    # Only a hash is stored: the code appears nowhere in the database.
    dump = repr(snapshot_database(db_url))
    code = result["transfercode"]
    assert code not in dump and code.replace("-", "") not in dump

    [mail] = smtp.take()
    assert mail.message["To"] == TINA and mail.message["Cc"] == SUE
    assert sorted(mail.recipients) == sorted([TINA, SUE])
    assert mail.message["From"] == "migrations@basecone.example"
    assert mail.subject == "Transfercode for 2 administrations from Acme Accountants (ACME)"
    text = mail.text
    assert f"Transfercode: {code}" in text
    assert "Bakkerij Jansen (code 1001, Twinfield)" in text and "Garage Smit (code 1002" in text
    assert "Valid until:  2026-03-17 09:00 UTC" in text
    assert "basecone-migrate --as YOUR-EMAIL redeem --accept-terms\r\n" in text
    assert f"(redeem {code} --accept-terms)" in text and "--code-file FILE" in text
    assert "<br>" not in text


def test_the_code_is_printed_for_people_too(cli: Cli, loaded: dict[str, Any]) -> None:
    result = cli.ok("--as", SUE, "offer", "1001", "--to", TINA, "--accept-terms")
    lines = result.stdout.splitlines()
    assert lines[0] == f"Migration 1: offered 1001 Bakkerij Jansen to {TINA}."
    assert CODE.match(lines[1].removeprefix("Transfercode: "))
    assert "Mail written to" in result.stderr  # no SMTP host: a .eml file in the outbox


def test_many_administrations_only_warn(cli: Cli, world_dir: Path, world: dict[str, Any]) -> None:
    acme = world["environments"][0]
    for n in range(4):
        code = f"11{n:02d}"
        acme["accounting_systems"][0]["catalogue"].append({"code": code, "name": f"Klant {n}"})
        acme["administrations"].append({"code": code, "name": f"Klant {n}", "accounting_system": "acme-tw"})
    cli.ok("load", write_world(world_dir, world))

    result = cli("--as", SUE, "offer", "1001", "1002", "1100", "1101", "1102", "1103", "--to", TINA,
                 "--accept-terms", "--confirm-checklist", "--json")

    assert result.exit_code == 0
    assert len(result.json()["administrations"]) == 6
    assert result.stderr == ("Warning: 6 administrations in one offer: the help centre advises at "
                             "most 5 per offer\n")


REFUSALS = [
    ("no acting user", [], ["1", "--to", TINA, "--accept-terms"], 4,
     "no acting user: pass --as EMAIL (or set BASECONE_MIGRATE_USER) to say who is doing this"),
    ("not a superuser", ["--as", CARL], ["1001", "--to", TINA, "--accept-terms"], 4,
     "carl@acme.example is not a Superuser of environment ACME: only its Superusers may offer its "
     "administrations"),
    ("superuser of another environment", ["--as", TINA], ["id:1", "--to", TOM, "--accept-terms"], 4,
     "tina@book.example is not a Superuser of environment ACME: only its Superusers may offer its "
     "administrations"),
    ("terms not accepted", ["--as", SUE], ["1001", "--to", TINA], 1,
     ("accept the terms of the migration with --accept-terms (read them first: "
      "`basecone-migrate terms`)")),
    ("package that cannot move", ["--as", SUE], ["3001", "--to", TINA, "--accept-terms"], 1,
     "administration 3001 Kapsalon Mulder (id 3) is linked to snelstart, which cannot move between "
     "environments (only Exact Online (NL), Twinfield, Unit4 Multivers, Visma AccountView, Xero)"),
    ("two environments", ["--as", SUE], ["1001", "id:4", "--to", TINA, "--accept-terms"], 1,
     "one offer moves administrations of one environment; these are in ACME, BOOK: make one offer "
     "per environment"),
    ("authorisers in a workflow", ["--as", SUE], ["1002", "--to", TINA, "--accept-terms"], 1,
     "authorisers are not transferred and must not be part of an authorisation workflow of a moved "
     "administration, but: 1002 Garage Smit has workflow 'Over 1000' with authorisers "
     "bob@acme.example. Remove them from the workflows, or confirm the checklist with "
     "--confirm-checklist"),
    ("malformed address", ["--as", SUE], ["1001", "--to", "tina-at-book", "--accept-terms"], 2,
     "--to 'tina-at-book' is not a valid e-mail address: An email address must have an @-sign."),
    ("no recipient", ["--as", SUE], ["1001", "--accept-terms"], 2,
     "Missing option '--to'. See 'basecone-migrate offer --help'."),
    ("unknown administration", ["--as", SUE], ["4242", "--to", TINA, "--accept-terms"], 3,
     "no administration '4242' in environment ACME: give its id or its code (see `basecone-migrate "
     "admin list`)"),
    ("recipients in two environments", ["--as", SUE], ["1001", "--to", TINA, "--to", TOM,
                                                      "--accept-terms"], 1,
     "the recipients are in different environments (BOOK, TRY): one offer goes to one environment"),
    ("recipient not a superuser", ["--as", SUE], ["1001", "--to", TINA, "--to", UMA, "--accept-terms"], 1,
     ("uma@book.example is not a Superuser of BOOK: only a Superuser of the receiving environment can "
      "redeem the code; offer it to one of them")),
    ("recipient of a trial office", ["--as", SUE], ["1001", "--to", TOM, "--accept-terms"], 1,
     "TRY is on a trial plan: only premium environments can receive administrations"),
    ("unknown recipient", ["--as", SUE], ["1001", "--to", TINA, "--to", "tian@book.example",
                                         "--accept-terms"], 1,
     ("tian@book.example is not a user of any environment: only a Superuser of the receiving "
      "environment can redeem the code. Check the address, or pass --allow-unknown-recipient (and "
      "--to-env OFFICE) to mail it all the same")),
    ("the option never allows a known non-superuser", ["--as", SUE],
     ["1001", "--to", UMA, "--allow-unknown-recipient", "--to-env", "BOOK", "--accept-terms"], 1,
     ("uma@book.example is not a Superuser of BOOK: only a Superuser of the receiving environment can "
      "redeem the code; offer it to one of them")),
    ("unknown recipients alone need --to-env", ["--as", SUE],
     ["1001", "--to", "tian@book.example", "--allow-unknown-recipient", "--accept-terms"], 2,
     ("no recipient is a known Superuser, so say which environment the offer is for with --to-env "
      "OFFICE (only its Superusers will be able to redeem it)")),
    ("--to-env of a trial office", ["--as", SUE],
     ["1001", "--to", "trudy@try.example", "--allow-unknown-recipient", "--to-env", "try",
      "--accept-terms"], 1,
     "TRY is on a trial plan: only premium environments can receive administrations"),
    ("--to-env that is not the recipients'", ["--as", SUE],
     ["1001", "--to", TINA, "--to-env", "TRY", "--accept-terms"], 1,
     ("--to-env TRY does not match the recipients, who are Superusers of BOOK: one offer goes to one "
      "environment")),
    ("--to-env the source", ["--as", SUE],
     ["1001", "--to", "x@elsewhere.example", "--allow-unknown-recipient", "--to-env", "ACME",
      "--accept-terms"], 1,
     "--to-env ACME is the environment the administrations leave: name the receiving environment"),
    ("--to-env unknown", ["--as", SUE], ["1001", "--to", TINA, "--to-env", "NOPE", "--accept-terms"], 3,
     "no environment with office code 'NOPE' (see `basecone-migrate env list`)"),
]


@pytest.mark.parametrize(("case", "before", "args", "exit_code", "message"), REFUSALS,
                         ids=[r[0] for r in REFUSALS])
@pytest.mark.parametrize("dry_run", [False, True], ids=["real", "dry-run"])
def test_refused_offers_change_nothing(
    mailing_cli: Cli, loaded: dict[str, Any], smtp: SmtpServer, state: State,
    case: str, before: list[str], args: list[str], exit_code: int, message: str, dry_run: bool,
) -> None:
    snapshot = state.take()
    result = mailing_cli(*before, "offer", *args, *(["--dry-run"] if dry_run else []))
    assert (result.exit_code, result.error) == (exit_code, f"Error: {message}")
    assert result.stdout == ""
    assert state.take() == snapshot
    assert smtp.take() == []


def test_an_administration_is_in_one_open_offer_at_a_time(
    mailing_cli: Cli, loaded: dict[str, Any], smtp: SmtpServer, state: State
) -> None:
    first = make_offer(mailing_cli, "1001")
    smtp.take()
    snapshot = state.take()

    again = mailing_cli("--as", SUE, "offer", "1001", "--to", TINA, "--accept-terms")

    assert (again.exit_code, again.error) == (
        1, f"Error: administration 1001 Bakkerij Jansen (id 1) is already in migration "
           f"{first['migration_id']} (offered): revoke that offer first")
    assert state.take() == snapshot
    assert smtp.take() == []


def test_the_database_holds_one_open_offer_per_administration(
    cli: Cli, loaded: dict[str, Any], db_url: str
) -> None:
    """Not only a Python check: a partial unique index refuses a second open item."""
    from sqlalchemy import create_engine, insert, select
    from sqlalchemy.exc import IntegrityError

    from basecone_migrate.db.models import MigrationItem

    make_offer(cli, "1001")
    engine = create_engine(db_url)
    with engine.connect() as connection:
        row = dict(connection.execute(select(MigrationItem.__table__)).mappings().one())
        row.pop("id")
        with pytest.raises(IntegrityError):
            connection.execute(insert(MigrationItem.__table__).values(**row))
    engine.dispose()


def test_dry_run_says_what_it_would_do(
    mailing_cli: Cli, loaded: dict[str, Any], smtp: SmtpServer, state: State
) -> None:
    snapshot = state.take()
    result = mailing_cli.ok("--as", SUE, "offer", "1001", "--to", TINA, "--accept-terms", "--dry-run",
                            "--json").json()
    human = mailing_cli.ok("--as", SUE, "offer", "1001", "--to", TINA, "--accept-terms", "--dry-run")
    assert result["dry_run"] is True and result["transfercode"] is None
    assert [a["code"] for a in result["administrations"]] == ["1001"]
    assert human.stdout.strip() == f"Would offer 1001 Bakkerij Jansen to {TINA} (nothing changed)."
    assert state.take() == snapshot
    assert smtp.take() == []


def test_codes_are_unique_and_random(cli: Cli, world_dir: Path, world: dict[str, Any]) -> None:
    world = copy.deepcopy(world)
    acme = world["environments"][0]
    for n in range(8):
        acme["accounting_systems"][0]["catalogue"].append({"code": f"20{n}", "name": f"K{n}"})
        acme["administrations"].append({"code": f"20{n}", "name": f"K{n}", "accounting_system": "acme-tw"})
    cli.ok("load", write_world(world_dir, world))
    codes = {make_offer(cli, f"20{n}")["transfercode"] for n in range(8)}
    assert len(codes) == 8


# -- one offer, one target ------------------------------------------------------------------------


def _offered_to(db_url: str) -> list[tuple[int, str | None]]:
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT m.id, e.code FROM migrations m LEFT JOIN environments e "
            "ON e.id = m.offered_to_environment_id ORDER BY m.id")).all()
    engine.dispose()
    return [tuple(row) for row in rows]


def test_the_offer_fixes_its_target_environment(
    mailing_cli: Cli, loaded: dict[str, Any], smtp: SmtpServer, db_url: str
) -> None:
    result = make_offer(mailing_cli, "1001")
    assert result["target_environment"] == "BOOK"
    assert _offered_to(db_url) == [(1, "BOOK")]
    [mail] = smtp.take()
    assert "to move into Bookwise (BOOK):" in mail.text
    assert "To take them, as a Superuser of Bookwise (BOOK):" in mail.text
    resent = mailing_cli.ok("--as", SUE, "resend", "1", "--json").json()
    assert resent["target_environment"] == "BOOK" and _offered_to(db_url) == [(1, "BOOK")]


def test_an_unknown_address_only_with_the_option_and_for_one_environment(
    mailing_cli: Cli, world_dir: Path, world: dict[str, Any], smtp: SmtpServer, state: State, db_url: str
) -> None:
    world["environments"].append({
        "code": "FAR", "name": "Far Away", "plan": "premium",
        "users": [{"email": "fay@far.example", "name": "Fay", "role": "superuser"}],
        "accounting_systems": [{"id": "far-tw", "package": "twinfield", "name": "Twinfield Far",
                                "catalogue": [{"code": "1001", "name": "Bakkerij Jansen"}]}]})
    mailing_cli.ok("load", write_world(world_dir, world))
    result = mailing_cli("--as", SUE, "offer", "1001", "--to", "newboss@example.org",
                         "--allow-unknown-recipient", "--to-env", "BOOK", "--accept-terms", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ("Warning: newboss@example.org is not a user of any environment yet: the "
                             "code works only once they are a Superuser of BOOK\n")
    offer = result.json()
    assert (offer["recipients"], offer["target_environment"]) == (["newboss@example.org"], "BOOK")
    [mail] = smtp.take()
    assert mail.message["To"] == "newboss@example.org"
    code = offer["transfercode"]

    # They become a Superuser of another premium office: the offer is not theirs to take there.
    world["environments"][3]["users"].append(
        {"email": "newboss@example.org", "name": "New", "role": "superuser"})
    mailing_cli.ok("load", write_world(world_dir, world))
    snapshot = state.take()
    for args in (["--accept-terms"], ["--reject"], ["--accept-terms", "--dry-run"]):
        refused = mailing_cli("--as", "newboss@example.org", "redeem", code, *args)
        verb = "reject" if "--reject" in args else "redeem"
        assert (refused.exit_code, refused.error) == (
            4, f"Error: this offer is for environment BOOK, not FAR: only a Superuser of BOOK may {verb} it")
    assert state.take() == snapshot and smtp.take() == []

    # resend keeps the target.
    resent = mailing_cli.ok("--as", SUE, "resend", "1", "--json").json()
    assert resent["target_environment"] == "BOOK" and _offered_to(db_url) == [(1, "BOOK")]
    again = mailing_cli("--as", "newboss@example.org", "redeem", resent["transfercode"], "--accept-terms")
    assert (again.exit_code, again.error) == (
        4, "Error: this offer is for environment BOOK, not FAR: only a Superuser of BOOK may redeem it")


def test_an_unknown_address_beside_a_known_superuser_needs_no_to_env(
    mailing_cli: Cli, loaded: dict[str, Any], smtp: SmtpServer, db_url: str
) -> None:
    offer = make_offer(mailing_cli, "1001", to=(TINA, "tian@book.example"),
                       extra=("--allow-unknown-recipient",))
    assert (offer["recipients"], offer["target_environment"]) == ([TINA, "tian@book.example"], "BOOK")
    assert _offered_to(db_url) == [(1, "BOOK")]
    [mail] = smtp.take()
    assert sorted(mail.recipients) == sorted([TINA, "tian@book.example", SUE])
    taken = mailing_cli.ok("--as", TINA, "redeem", offer["transfercode"], "--accept-terms", "--json").json()
    assert taken["status"] == "completed"
