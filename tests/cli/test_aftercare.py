"""Kinds 2, 3 and 5 with `link`; access after a move; the audit log tells the whole story."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DatabaseError

from tests.conftest import (
    CARL,
    SUE,
    TINA,
    UMA,
    Cli,
    State,
    make_offer,
    snapshot_files,
    write_world,
)


def show(cli: Cli, admin: str = "1") -> dict[str, Any]:
    return cli.ok("admin", "show", admin, "--json").json()


@pytest.mark.parametrize(("args", "kind", "system", "code"), [
    (["--system", "acme-tw2"], 3, "acme-tw2", "1001"),
    (["--code", "1099"], 2, "acme-tw", "1099"),
    (["--system", "acme-tw2", "--code", "1501"], 5, "acme-tw2", "1501"),
], ids=["kind 3", "kind 2", "kind 5"])
def test_link_changes_connection_and_code_but_not_the_archive(
    cli: Cli, loaded: dict[str, Any], storage: Path, args: list[str], kind: int, system: str, code: str
) -> None:
    files = snapshot_files(storage)
    documents = cli.ok("archive", "list", "1", "--json").json()

    result = cli.ok("--as", SUE, "link", "1001", *args, "--json").json()

    assert {k: result[k] for k in ("administration_id", "accounting_system", "code", "email", "kind")} == {
        "administration_id": 1, "accounting_system": system, "code": code,
        "email": f"ACME.{code}@mailtobasecone.com", "kind": kind}
    assert result["previous"] == {"accounting_system": "acme-tw", "code": "1001",
                                  "email": "ACME.1001@mailtobasecone.com", "name": "Bakkerij Jansen"}
    assert result["name"] == "Bakkerij Jansen"
    shown = show(cli)
    assert (shown["id"], shown["environment"], shown["accounting_system"], shown["code"]) == (
        1, "ACME", system, code)
    assert shown["users"] == [CARL, SUE]  # same environment: access stays
    assert snapshot_files(storage) == files
    assert cli.ok("archive", "list", "1", "--json").json() == documents
    expected_aliases = [] if code == "1001" else ["ACME.1001@mailtobasecone.com"]
    assert shown["aliases"] == expected_aliases


def test_the_old_address_still_reaches_the_administration(cli: Cli, loaded: dict[str, Any]) -> None:
    cli.ok("--as", SUE, "link", "1001", "--code", "1099")
    assert show(cli, "ACME.1001@mailtobasecone.com")["id"] == 1
    assert show(cli, "acme.1099@MAILTOBASECONE.COM")["id"] == 1
    # Back to the old code: the live address wins, the alias goes.
    cli.ok("--as", SUE, "link", "1099", "--code", "1001")
    assert show(cli)["aliases"] == ["ACME.1099@mailtobasecone.com"]
    gone = cli("admin", "show", "nobody.1@mailtobasecone.com")
    assert (gone.exit_code, gone.error) == (
        3, "Error: no administration receives mail at nobody.1@mailtobasecone.com")


LINK_REFUSALS = [
    ("no acting user", [], ["1001", "--code", "1099"], 4,
     "no acting user: pass --as EMAIL (or set BASECONE_MIGRATE_USER) to say who is doing this"),
    ("not a superuser", ["--as", CARL], ["1001", "--code", "1099"], 4,
     "carl@acme.example is not a Superuser of environment ACME: only its Superusers may re-link or "
     "re-code its administrations"),
    ("superuser of another environment", ["--as", TINA], ["id:1", "--code", "1099"], 4,
     "tina@book.example is not a Superuser of environment ACME: only its Superusers may re-link or "
     "re-code its administrations"),
    ("nothing named", ["--as", SUE], ["1001"], 2,
     "say what changes: --system CONNECTION, --code CODE, or both"),
    ("nothing to change", ["--as", SUE], ["1001", "--system", "acme-tw", "--code", "1001"], 2,
     "administration 1001 Bakkerij Jansen (id 1) is already linked to acme-tw under code 1001: "
     "nothing to change"),
    ("unknown administration", ["--as", SUE], ["4242", "--code", "1099"], 3,
     "no administration '4242' in environment ACME: give its id or its code (see `basecone-migrate "
     "admin list`)"),
    ("unknown connection", ["--as", SUE], ["1001", "--system", "nope"], 3,
     "no accounting system (connection) 'nope'"),
    ("connection of another environment", ["--as", SUE], ["1001", "--system", "book-tw"], 1,
     "connection book-tw belongs to environment BOOK, not ACME"),
    ("another package", ["--as", SUE], ["1001", "--system", "acme-eol"], 1,
     "administration 1001 Bakkerij Jansen (id 1) is a Twinfield administration and connection "
     "acme-eol is Exact Online (NL): the package never changes"),
    ("code not in the catalogue", ["--as", SUE], ["1001", "--code", "7777"], 1,
     "code 7777 is not in the catalogue of connection acme-tw: move the administration in Twinfield "
     "first, then load the catalogue"),
    ("code taken in the connection", ["--as", SUE], ["1001", "--code", "1002"], 1,
     "code 1002 of connection acme-tw is already linked to administration 1002 Garage Smit (id 2): "
     "administrations are never merged"),
    ("another company in the catalogue", ["--as", SUE], ["1002", "--code", "1099"], 1,
     ("code 1099 of connection acme-tw is 'Bakkerij Jansen' in the catalogue, not 'Garage Smit': "
      "check the code, or pass --take-catalogue-name to link administration 2 to it and rename it "
      "'Bakkerij Jansen'")),
    ("a code taken is refused whatever the name", ["--as", SUE],
     ["1002", "--code", "1001", "--take-catalogue-name"], 1,
     ("code 1001 of connection acme-tw is already linked to administration 1001 Bakkerij Jansen "
      "(id 1): administrations are never merged")),
]


@pytest.mark.parametrize(("case", "before", "args", "exit_code", "message"), LINK_REFUSALS,
                         ids=[r[0] for r in LINK_REFUSALS])
@pytest.mark.parametrize("dry_run", [False, True], ids=["real", "dry-run"])
def test_refused_links_change_nothing(
    cli: Cli, loaded: dict[str, Any], state: State,
    case: str, before: list[str], args: list[str], exit_code: int, message: str, dry_run: bool,
) -> None:
    snapshot = state.take()
    result = cli(*before, "link", *args, *(["--dry-run"] if dry_run else []))
    assert (result.exit_code, result.error) == (exit_code, f"Error: {message}")
    assert state.take() == snapshot


@pytest.mark.parametrize("stage", ["offered", "in progress"])
def test_an_administration_in_an_open_migration_is_not_relinked(
    cli: Cli, loaded: dict[str, Any], state: State, stage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = make_offer(cli, "1001")["transfercode"]
    status = "offered"
    if stage == "in progress":
        from basecone_migrate.services import transfer

        monkeypatch.setattr(transfer.ItemTransfer, "copy", lambda self, plan: ["document 1: disk on fire"])
        assert cli("--as", TINA, "redeem", code, "--accept-terms").exit_code == 5
        status = "failed"
    snapshot = state.take()
    result = cli("--as", SUE, "link", "1001", "--code", "1099")  # still ACME's until the switch
    assert (result.exit_code, result.error) == (
        1, f"Error: administration 1001 Bakkerij Jansen (id 1) is in migration 1 ({status}): revoke "
           "or finish that migration first")
    assert state.take() == snapshot


def test_dry_run_link_says_what_would_change(cli: Cli, loaded: dict[str, Any], state: State) -> None:
    snapshot = state.take()
    result = cli.ok("--as", SUE, "link", "1001", "--code", "1099", "--dry-run", "--json").json()
    human = cli.ok("--as", SUE, "link", "1001", "--code", "1099", "--dry-run")
    assert result["dry_run"] is True and result["code"] == "1099"
    assert human.stdout.splitlines()[0] == (
        "Would re-link administration 1 (kind 2): acme-tw 1001 -> acme-tw 1099.")
    assert state.take() == snapshot


# -- the catalogue's name ------------------------------------------------------------------------


def _with_entries(cli: Cli, world_dir: Path, world: dict[str, Any], *entries: tuple[str, str]) -> None:
    """The sample world with more entries in ACME's Twinfield catalogue, loaded."""
    world["environments"][0]["accounting_systems"][0]["catalogue"] += [
        {"code": code, "name": name} for code, name in entries]
    cli.ok("load", write_world(world_dir, world))


def test_names_are_compared_without_case_or_runs_of_spaces(
    cli: Cli, world_dir: Path, world: dict[str, Any]
) -> None:
    _with_entries(cli, world_dir, world, ("4001", "  garage   SMIT "), ("4002", "Garage Smit B.V."))
    result = cli.ok("--as", SUE, "link", "1002", "--code", "4001", "--json").json()
    assert (result["code"], result["name"], result["previous"]["name"]) == ("4001", "Garage Smit", "Garage Smit")
    assert show(cli, "2")["name"] == "Garage Smit"  # the name stays as it was
    other = cli("--as", SUE, "link", "4001", "--code", "4002")  # punctuation counts
    assert (other.exit_code, other.error) == (
        1, ("Error: code 4002 of connection acme-tw is 'Garage Smit B.V.' in the catalogue, not "
            "'Garage Smit': check the code, or pass --take-catalogue-name to link administration 2 "
            "to it and rename it 'Garage Smit B.V.'"))


def test_take_catalogue_name_renames_at_once_and_in_the_log(
    cli: Cli, world_dir: Path, world: dict[str, Any], state: State
) -> None:
    _with_entries(cli, world_dir, world, ("4000", "Groot Archief BV"))
    snapshot = state.take()
    refused = cli("--as", SUE, "link", "1002", "--code", "4000")
    assert (refused.exit_code, refused.error) == (
        1, ("Error: code 4000 of connection acme-tw is 'Groot Archief BV' in the catalogue, not "
            "'Garage Smit': check the code, or pass --take-catalogue-name to link administration 2 "
            "to it and rename it 'Groot Archief BV'"))
    dry = cli.ok("--as", SUE, "link", "1002", "--code", "4000", "--take-catalogue-name", "--dry-run")
    assert dry.stdout.splitlines() == [
        "Would re-link administration 2 (kind 2): acme-tw 1002 -> acme-tw 4000.",
        ("Mail address: ACME.4000@mailtobasecone.com (was ACME.1002@mailtobasecone.com, which keeps "
         "reaching it as an alias)."),
        "Would rename it Groot Archief BV (was Garage Smit), as the catalogue names it."]
    assert state.take() == snapshot

    result = cli.ok("--as", SUE, "link", "1002", "--code", "4000", "--take-catalogue-name", "--json").json()

    assert (result["code"], result["name"], result["previous"]["name"]) == ("4000", "Groot Archief BV",
                                                                           "Garage Smit")
    shown = show(cli, "2")
    assert (shown["code"], shown["name"]) == ("4000", "Groot Archief BV")
    [row] = [e for e in cli.ok("audit", "--admin", "2", "--json").json() if e["action"] == "link"]
    assert (row["actor"], row["details"]["before"]["name"], row["details"]["after"]["name"]) == (
        SUE, "Garage Smit", "Groot Archief BV")


def test_a_batch_is_refused_for_one_other_name_unless_it_takes_the_names(
    cli: Cli, world_dir: Path, world: dict[str, Any], tmp_path: Path, state: State
) -> None:
    _with_entries(cli, world_dir, world, ("4000", "Groot Archief BV"))
    batch = tmp_path / "links.csv"
    batch.write_text("1001,acme-tw2\n1002,,4000\n")
    snapshot = state.take()
    refused = cli("--as", SUE, "link", "--from", batch)
    assert (refused.exit_code, refused.error) == (
        1, ("Error: 1 of 2 rows refused, so nothing changed: line 2: code 4000 of connection acme-tw "
            "is 'Groot Archief BV' in the catalogue, not 'Garage Smit': check the code, or pass "
            "--take-catalogue-name to link administration 2 to it and rename it 'Groot Archief BV'"))
    assert state.take() == snapshot

    report = cli.ok("--as", SUE, "link", "--from", batch, "--take-catalogue-name", "--json").json()
    assert [(r["line"], r["name"], r["previous"]["name"]) for r in report["rows"]] == [
        (1, "Bakkerij Jansen", "Bakkerij Jansen"), (2, "Groot Archief BV", "Garage Smit")]
    assert show(cli, "2")["name"] == "Groot Archief BV"


# -- access ---------------------------------------------------------------------------------------


def test_after_a_move_only_the_new_environment_grants_access(cli: Cli, loaded: dict[str, Any]) -> None:
    code = make_offer(cli, "1001")["transfercode"]
    cli.ok("--as", TINA, "redeem", code, "--accept-terms")
    assert cli.ok("access", "list", "1", "--json").json()["users"] == []

    old_office = cli("--as", SUE, "access", "grant", "id:1", "--user", CARL)
    wrong_user = cli("--as", TINA, "access", "grant", "1001", "--user", CARL)
    granted = cli.ok("--as", TINA, "access", "grant", "1001", "--user", UMA, "--user", TINA, "--json").json()
    again = cli.ok("--as", TINA, "access", "grant", "1001", "--user", UMA, "--json").json()

    assert (old_office.exit_code, old_office.error) == (
        4, "Error: sue@acme.example is not a Superuser of environment BOOK: only its Superusers may "
           "change who has access to its administrations")
    assert (wrong_user.exit_code, wrong_user.error) == (
        1, "Error: carl@acme.example is a user of ACME, not of BOOK: only users of the "
           "administration's environment can have access to it")
    assert granted == {"administration_id": 1, "granted": [UMA, TINA], "unchanged": [],
                       "users": [TINA, UMA]}
    assert again["granted"] == [] and again["unchanged"] == [UMA]
    assert cli.ok("access", "list", "1", "--json").json()["users"] == [
        {"email": TINA, "name": "Tina", "role": "superuser"},
        {"email": UMA, "name": "Uma", "role": "accountant"}]
    assert show(cli)["users"] == [TINA, UMA]

    revoked = cli.ok("--as", TINA, "access", "revoke", "1001", "--user", UMA, "--json").json()
    assert revoked == {"administration_id": 1, "revoked": [UMA], "unchanged": [], "users": [TINA]}


def test_access_refusals_change_nothing(cli: Cli, loaded: dict[str, Any], state: State) -> None:
    snapshot = state.take()
    unknown = cli("--as", SUE, "access", "grant", "1001", "--user", "ghost@acme.example")
    nobody = cli("access", "revoke", "1001", "--user", CARL)
    accountant = cli("--as", CARL, "access", "revoke", "1001", "--user", SUE)
    missing = cli("--as", SUE, "access", "grant", "1001")
    assert (unknown.exit_code, unknown.error) == (3, "Error: no user 'ghost@acme.example'")
    assert nobody.exit_code == 4
    assert accountant.exit_code == 4
    assert (missing.exit_code, missing.error) == (
        2, "Error: Missing option '--user'. See 'basecone-migrate access grant --help'.")
    assert state.take() == snapshot


# -- audit ----------------------------------------------------------------------------------------


def test_audit_tells_the_story_of_a_move_a_relink_and_a_code_change(
    cli: Cli, world_dir: Path, world: dict[str, Any]
) -> None:
    world["environments"][1]["accounting_systems"].append(
        {"id": "book-tw2", "package": "twinfield", "name": "Twinfield Bookwise 2",
         "catalogue": [{"code": "7001", "name": "Bakkerij Jansen"}, {"code": "7002", "name": "Bakkerij Jansen"}]})
    cli.ok("load", write_world(world_dir, world))
    code = make_offer(cli, "1001", now="2026-03-02T09:00:00Z")["transfercode"]
    cli.ok("--as", TINA, "redeem", code, "--accept-terms", "--link", "1001=book-tw:7001",
           now="2026-03-03T10:00:00Z")
    cli.ok("--as", TINA, "link", "7001", "--system", "book-tw2", now="2026-03-04T11:00:00Z")
    cli.ok("--as", TINA, "link", "7001", "--code", "7002", now="2026-03-05T12:00:00Z")
    cli.ok("--as", TINA, "access", "grant", "7002", "--user", UMA, now="2026-03-05T12:30:00Z")

    story = cli.ok("audit", "--admin", "1", "--json").json()

    assert [(e["actor"], e["action"]) for e in story] == [
        (SUE, "offer"), (TINA, "redeem"), (TINA, "transfer_start"), (TINA, "transfer_complete"),
        (TINA, "link"), (TINA, "link"), (TINA, "access_grant")]
    assert all({"at", "actor", "action", "administration_id", "migration_id", "details"} <= set(e)
               for e in story)
    assert [e["at"][:10] for e in story] == ["2026-03-02", "2026-03-03", "2026-03-03", "2026-03-03",
                                             "2026-03-04", "2026-03-05", "2026-03-05"]
    moved = story[3]["details"]
    assert (moved["source"]["email"], moved["target"]["email"]) == (
        "ACME.1001@mailtobasecone.com", "BOOK.7001@mailtobasecone.com")
    relink, recode = story[4]["details"], story[5]["details"]
    assert (relink["kind"], relink["before"]["accounting_system"], relink["after"]["accounting_system"]) == (
        3, "book-tw", "book-tw2")
    assert (recode["kind"], recode["before"]["code"], recode["after"]["code"]) == (2, "7001", "7002")
    assert story[6]["details"] == {"users": [UMA]}
    assert show(cli)["aliases"] == ["ACME.1001@mailtobasecone.com", "BOOK.7001@mailtobasecone.com"]

    by_migration = cli.ok("audit", "--migration", "1", "--json").json()
    assert [e["action"] for e in by_migration] == ["offer", "redeem", "transfer_start", "transfer_complete"]
    recent = cli.ok("audit", "--since", "2026-03-04", "--json").json()
    assert [e["action"] for e in recent] == ["link", "link", "access_grant"]
    by_code = cli.ok("--as", TINA, "audit", "--admin", "7002", "--json").json()
    assert by_code == story
    assert cli("audit", "--since", "last tuesday").exit_code == 2


def test_load_and_expire_are_in_the_log_with_their_actors(cli: Cli, loaded: dict[str, Any]) -> None:
    make_offer(cli, "1001")
    cli.ok("expire", now="2026-04-01T00:00:00Z")
    rows = cli.ok("audit", "--json").json()
    assert (rows[0]["actor"], rows[0]["action"], rows[0]["administration_id"]) == ("system", "load", None)
    assert (rows[-1]["actor"], rows[-1]["action"], rows[-1]["administration_id"]) == ("cron", "expire", 1)


def test_the_audit_log_is_append_only_in_the_database(cli: Cli, loaded: dict[str, Any], db_url: str) -> None:
    engine = create_engine(db_url)
    for statement in ("UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"):
        with engine.connect() as connection, pytest.raises(DatabaseError, match="append-only"):
            connection.execute(text(statement))
    engine.dispose()
    assert cli.ok("audit", "--json").json()[0]["actor"] == "system"


# -- access for a whole migration ---------------------------------------------------------------


def test_a_completed_redeem_names_the_next_step_and_it_grants_every_moved_administration(
        cli: Cli, loaded: dict[str, Any]) -> None:
    code = make_offer(cli, "1001", "1002", extra=("--confirm-checklist",))["transfercode"]
    redeemed = cli.ok("--as", TINA, "redeem", code, "--accept-terms", "--link", "1002=book-tw:1002")
    assert redeemed.stdout.splitlines()[-2:] == [
        ("Next: users and their access did not move. Give users access to the 2 administrations "
         "(repeat --user for more):"),
        f"  basecone-migrate --as {TINA} access grant --migration 1 --user EMAIL"]

    granted = cli.ok("--as", TINA, "access", "grant", "--migration", "1", "--user", UMA,
                     "--user", TINA, "--json").json()
    assert granted == {"migration_id": 1, "administrations": [
        {"administration_id": 1, "granted": [UMA, TINA], "unchanged": [], "users": [TINA, UMA]},
        {"administration_id": 2, "granted": [UMA, TINA], "unchanged": [], "users": [TINA, UMA]}]}
    assert show(cli, "id:2")["users"] == [TINA, UMA]
    grants = [e for e in cli.ok("audit", "--migration", "1", "--json").json()
              if e["action"] == "access_grant"]
    assert [(e["administration_id"], e["details"]) for e in grants] == [
        (1, {"users": [UMA, TINA]}), (2, {"users": [UMA, TINA]})]
    again = cli.ok("--as", TINA, "access", "grant", "--migration", "1", "--user", UMA)
    assert again.stdout.splitlines() == [
        f"Granted access to administration 1: nobody new; users with access: {TINA}, {UMA}.",
        f"Granted access to administration 2: nobody new; users with access: {TINA}, {UMA}."]


def test_only_what_completed_gets_the_next_step_and_access(cli: Cli, loaded: dict[str, Any]) -> None:
    code = make_offer(cli, "1001", "1002", extra=("--confirm-checklist",))["transfercode"]
    dry = cli.ok("--as", TINA, "redeem", code, "--accept-terms", "--select", "1001", "--dry-run")
    assert "Next:" not in dry.stdout and "access grant" not in dry.stdout
    taken = cli.ok("--as", TINA, "redeem", code, "--accept-terms", "--select", "1001")
    assert "Give users access to the administration (repeat" in taken.stdout
    granted = cli.ok("--as", TINA, "access", "grant", "--migration", "1", "--user", UMA, "--json").json()
    assert [a["administration_id"] for a in granted["administrations"]] == [1]  # 1002 was rejected
    assert show(cli, "id:2")["users"] == [CARL]


ACCESS_MIGRATION_REFUSALS = [
    ("unknown migration", TINA, ["--migration", "9", "--user", UMA], 3,
     "no migration 9 (see `basecone-migrate list`)"),
    ("nothing completed", TINA, ["--migration", "1", "--user", UMA], 1,
     ("migration 1 completed no administration (offered): access is granted once an "
      "administration has arrived")),
    ("both forms", TINA, ["1001", "--migration", "1", "--user", UMA], 2,
     "name the administration (ADMIN) or the migration (--migration N), not both"),
    ("neither form", TINA, ["--user", UMA], 2,
     "name the administration (ADMIN), or --migration N for all that a migration moved"),
    ("no acting user", None, ["--migration", "1", "--user", UMA], 4,
     "no acting user: pass --as EMAIL (or set BASECONE_MIGRATE_USER) to say who is doing this"),
]


@pytest.mark.parametrize(("who", "acting", "args", "exit_code", "message"), ACCESS_MIGRATION_REFUSALS,
                         ids=[r[0] for r in ACCESS_MIGRATION_REFUSALS])
def test_access_grant_migration_refusals_change_nothing(
        cli: Cli, loaded: dict[str, Any], state: State, who: str, acting: str | None,
        args: list[str], exit_code: int, message: str) -> None:
    make_offer(cli, "1001")
    snapshot = state.take()
    result = cli(*(["--as", acting] if acting else []), "access", "grant", *args)
    assert (result.exit_code, result.error) == (exit_code, f"Error: {message}")
    assert state.take() == snapshot


def test_access_grant_migration_is_all_or_nothing(cli: Cli, loaded: dict[str, Any], state: State) -> None:
    code = make_offer(cli, "1001", "1002", extra=("--confirm-checklist",))["transfercode"]
    cli.ok("--as", TINA, "redeem", code, "--accept-terms", "--link", "1002=book-tw:1002")
    back = make_offer(cli, "id:2", sender=TINA, to=(SUE,))["transfercode"]
    cli.ok("--as", SUE, "redeem", back, "--accept-terms")  # 1002 went back to ACME since

    snapshot = state.take()
    moved_on = cli("--as", TINA, "access", "grant", "--migration", "1", "--user", UMA)
    sender = cli("--as", SUE, "access", "grant", "--migration", "1", "--user", CARL)
    stranger = cli("--as", TINA, "access", "grant", "--migration", "1", "--user", CARL)
    unknown = cli("--as", TINA, "access", "grant", "--migration", "1", "--user", "ghost@book.example")
    assert (moved_on.exit_code, moved_on.error) == (
        4, ("Error: tina@book.example is not a Superuser of environment ACME: only its Superusers "
            "may change who has access to its administrations"))
    assert (sender.exit_code, sender.error) == (
        4, ("Error: sue@acme.example is not a Superuser of environment BOOK: only its Superusers "
            "may change who has access to its administrations"))
    assert (stranger.exit_code, stranger.error) == (
        1, ("Error: carl@acme.example is a user of ACME, not of BOOK: only users of the "
            "administration's environment can have access to it"))
    assert (unknown.exit_code, unknown.error) == (3, "Error: no user 'ghost@book.example'")
    assert state.take() == snapshot  # administration 1 got no access either
