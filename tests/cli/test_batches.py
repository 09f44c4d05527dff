"""Batches from a file: every row checked first; all made in one transaction, or none."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SUE, Cli, snapshot_database, write_world


def _file(tmp_path: Path, text: str, name: str = "batch.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _links(cli: Cli) -> dict[str, tuple[str, str]]:
    return {a["name"]: (a["accounting_system"], a["code"])
            for a in cli.ok("admin", "list", "--env", "ACME", "--json").json()}


def test_link_from_a_csv_file_changes_every_row_in_one_transaction(
        cli: Cli, world_dir: Path, world: dict[str, Any], tmp_path: Path) -> None:
    # The package swapped the two codes, and the catalogue says so.
    catalogue = world["environments"][0]["accounting_systems"][0]["catalogue"]
    for entry in catalogue:
        entry["name"] = {"1002": "Bakkerij Jansen", "1099": "Garage Smit"}.get(entry["code"], entry["name"])
    cli.ok("load", write_world(world_dir, world))
    # Row 1 frees code 1002 that row 2 takes: each row is checked after the ones before it.
    batch = _file(tmp_path, "admin,system,code\n1002,,1099\n1001,,1002\n# done\n")
    result = cli.ok("--as", SUE, "link", "--from", batch, "--json").json()
    assert [(r["line"], r["status"], r["kind"], r["code"]) for r in result["rows"]] == [
        (2, "changed", 2, "1099"), (3, "changed", 2, "1002")]
    assert result["changed"] == 2 and result["refused"] == 0
    assert _links(cli)["Garage Smit"] == ("acme-tw", "1099")
    assert _links(cli)["Bakkerij Jansen"] == ("acme-tw", "1002")
    assert [e["action"] for e in cli.ok("audit", "--json").json()].count("link") == 2


def test_link_from_json_lines_and_standard_input(cli: Cli, loaded: Any) -> None:
    lines = '{"admin": "1001", "system": "acme-tw2"}\n{"admin": "1002", "code": "1098", "note": "x"}\n'
    result = cli.ok("--as", SUE, "link", "--from", "-", "--json", input=lines).json()
    assert [(r["accounting_system"], r["code"]) for r in result["rows"]] == [
        ("acme-tw2", "1001"), ("acme-tw", "1098")]


def test_one_bad_row_refuses_the_whole_batch_and_names_every_bad_row(
        cli: Cli, loaded: Any, tmp_path: Path, db_url: str) -> None:
    batch = _file(tmp_path, "1001,acme-tw2\n1002,acme-eol\n9999,,1099\n")
    before = snapshot_database(db_url)
    result = cli("--as", SUE, "link", "--from", batch, "--json")
    assert result.exit_code == 1
    assert result.error == (
        "Error: 2 of 3 rows refused, so nothing changed: line 2: administration 1002 Garage Smit "
        "(id 2) is a Twinfield administration and connection acme-eol is Exact Online (NL): the "
        "package never changes; line 3: no administration '9999' in environment ACME: give its id "
        "or its code (see `basecone-migrate admin list`)")
    report = result.json()
    assert [(r["line"], r["status"]) for r in report["rows"]] == [
        (1, "changed"), (2, "refused"), (3, "refused")]
    assert report["changed"] == 0 and report["refused"] == 2
    assert snapshot_database(db_url) == before


def test_a_dry_run_reports_and_changes_nothing(cli: Cli, loaded: Any, tmp_path: Path, db_url: str) -> None:
    before = snapshot_database(db_url)
    good = _file(tmp_path, "1002,,1098\n1001,acme-tw2,1501\n")
    result = cli.ok("--as", SUE, "link", "--from", good, "--dry-run", "--json").json()
    assert [r["status"] for r in result["rows"]] == ["would change", "would change"]
    bad = _file(tmp_path, "1001,,1002\n", "bad.csv")  # 1002 is still Garage Smit's
    refused = cli("--as", SUE, "link", "--from", bad, "--dry-run")
    assert refused.exit_code == 1 and "line 1: code 1002 of connection acme-tw is already linked" in refused.stderr
    assert snapshot_database(db_url) == before


def test_the_same_administration_twice_is_refused(cli: Cli, loaded: Any, tmp_path: Path) -> None:
    batch = _file(tmp_path, "1001,acme-tw2\nid:1,acme-tw\n")
    result = cli("--as", SUE, "link", "--from", batch)
    assert result.exit_code == 1
    assert "line 2: administration 1 is also on line 1: one row each" in result.error


@pytest.mark.parametrize(("text", "message"), [
    ("1001,acme-tw2,1001,extra\n", "line 1: 4 fields, at most 3 (admin, system, code)"),
    (",acme-tw2\n", "line 1: no admin"),
    ('{"admin": 1001\n', "line 1: not JSON"),
    ("", "holds no rows"),
])
def test_a_malformed_batch_is_a_usage_error(cli: Cli, loaded: Any, tmp_path: Path, text: str,
                                            message: str, db_url: str) -> None:
    before = snapshot_database(db_url)
    result = cli("--as", SUE, "link", "--from", _file(tmp_path, text))
    assert result.exit_code == 2 and message in result.error
    assert snapshot_database(db_url) == before


def test_a_batch_that_is_not_a_regular_file_is_never_read(cli: Cli, loaded: Any, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    result = cli("--as", SUE, "link", "--from", fifo)
    assert result.exit_code == 2
    assert result.error == f"Error: --from {fifo}: is a FIFO (named pipe), not a regular file"
    both = cli("--as", SUE, "link", "1001", "--from", fifo)
    assert both.exit_code == 2 and "drop ADMIN, --system and --code" in both.error


# -- offer --from ---------------------------------------------------------------------------

from tests.conftest import TINA, make_offer  # noqa: E402


def test_offer_from_a_file_and_standard_input(cli: Cli, loaded: Any, tmp_path: Path) -> None:
    offered = cli.ok("--as", SUE, "offer", "--from", _file(tmp_path, "1001\n# the garage too\n1002\n"),
                     "--to", TINA, "--accept-terms", "--confirm-checklist", "--json").json()
    assert [a["code"] for a in offered["administrations"]] == ["1001", "1002"]
    cli.ok("--as", SUE, "revoke", str(offered["migration_id"]))
    again = cli.ok("--as", SUE, "offer", "1001", "--from", "-", "--to", TINA, "--accept-terms",
                   "--confirm-checklist", "--json", input="1002\n").json()
    assert [a["code"] for a in again["administrations"]] == ["1001", "1002"]


def test_offer_from_a_file_names_every_refused_line(cli: Cli, loaded: Any, tmp_path: Path,
                                                    db_url: str) -> None:
    before = snapshot_database(db_url)
    result = cli("--as", SUE, "offer", "--from", _file(tmp_path, "1001\n3001\n9999\n"), "--to", TINA,
                 "--accept-terms", "--json")
    assert result.exit_code == 1
    assert result.error.startswith(
        "Error: 2 of 3 rows refused, so nothing changed: line 2: administration 3001 Kapsalon Mulder "
        "(id 3) is linked to snelstart, which cannot move between environments")
    assert "line 3: no administration '9999' in environment ACME" in result.error
    assert [(r["line"], r["status"]) for r in result.json()["rows"]] == [
        (1, "ok"), (2, "refused"), (3, "refused")]
    assert snapshot_database(db_url) == before
    nothing = cli("--as", SUE, "offer", "--to", TINA, "--accept-terms")
    assert nothing.exit_code == 2 and "or give them with --from FILE" in nothing.error


# -- redeem --links -------------------------------------------------------------------------


def test_redeem_with_links_from_a_file(cli: Cli, loaded: Any, tmp_path: Path) -> None:
    code = make_offer(cli, "1001", "1002", extra=("--confirm-checklist",))["transfercode"]
    links = _file(tmp_path, "admin,connection,code\n1001,book-tw,7001\n1002,book-tw\n")
    result = cli.ok("--as", TINA, "redeem", code, "--accept-terms", "--links", links, "--json").json()
    assert [(i["accounting_system"], i["code"], i["status"]) for i in result["items"]] == [
        ("book-tw", "7001", "completed"), ("book-tw", "1002", "completed")]


def test_redeem_from_is_the_same_option_as_links(cli: Cli, loaded: Any, tmp_path: Path) -> None:
    code = make_offer(cli, "1001", "1002", extra=("--confirm-checklist",))["transfercode"]
    links = _file(tmp_path, "1001,book-tw,7001\n1002,book-tw\n")
    spelled = [cli.ok("--as", TINA, "redeem", code, "--accept-terms", option, links, "--dry-run",
                      "--json").json() for option in ("--links", "--from")]
    assert spelled[0] == spelled[1]
    assert [(i["accounting_system"], i["code"]) for i in spelled[1]["items"]] == [
        ("book-tw", "7001"), ("book-tw", "1002")]
    both = cli("--as", TINA, "redeem", code, "--accept-terms", "--from", links, "--link", "1001=book-tw")
    assert (both.exit_code, both.error) == (
        2, "Error: give the links with --link or with --links FILE, not both")


def test_redeem_links_name_every_refused_line_and_spend_nothing(
        cli: Cli, loaded: Any, tmp_path: Path, db_url: str) -> None:
    code = make_offer(cli, "1001", "1002", extra=("--confirm-checklist",))["transfercode"]
    before = snapshot_database(db_url)
    links = _file(tmp_path, "1001,book-xero\n1002,nosuch\n")
    result = cli("--as", TINA, "redeem", code, "--accept-terms", "--links", links)
    assert result.exit_code == 1
    assert result.error == (
        "Error: 2 of 2 links refused, so nothing changed: line 1: administration 1001 Bakkerij "
        "Jansen (id 1) is a Twinfield administration and connection book-xero is Xero: the package "
        "never changes; line 2: no accounting system (connection) 'nosuch'")
    assert snapshot_database(db_url) == before
    both = cli("--as", TINA, "redeem", code, "--accept-terms", "--links", links, "--link", "1001=book-tw")
    assert both.exit_code == 2 and "not both" in both.error
    good = _file(tmp_path, "1001,book-tw\n1002,book-tw\n", "good.csv")
    cli.ok("--as", TINA, "redeem", code, "--accept-terms", "--links", good)
