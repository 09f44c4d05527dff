"""Read commands against the contract's --json fields, and the error conventions."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SUE, Cli, run_process, write_world

ADMIN_FIELDS = {"id", "environment", "code", "name", "accounting_system", "package", "email",
                "documents", "bytes"}


def test_env_list(cli: Cli, loaded: dict[str, Any], storage: Path) -> None:
    envs = cli.ok("env", "list", "--json").json()
    assert [(e["code"], e["name"], e["plan"], e["administrations"], e["users"], e["documents"])
            for e in envs] == [("ACME", "Acme Accountants", "premium", 3, 3, 4),
                               ("BOOK", "Bookwise", "premium", 1, 3, 0),
                               ("TRY", "Trial Office", "trial", 0, 1, 0)]
    assert envs[0]["storage"] == str(storage / "ACME")


def test_admin_list_has_the_contract_fields(cli: Cli, loaded: dict[str, Any], world_dir: Path) -> None:
    admins = cli.ok("admin", "list", "--json").json()
    assert all(ADMIN_FIELDS <= set(a) for a in admins)
    first = next(a for a in admins if a["code"] == "1001")
    size = sum((world_dir / "docs" / f"invoice-{n}.pdf").stat().st_size for n in (1, 2, 3))
    assert {k: first[k] for k in ADMIN_FIELDS - {"id"}} == {
        "environment": "ACME", "code": "1001", "name": "Bakkerij Jansen",
        "accounting_system": "acme-tw", "package": "twinfield",
        "email": "ACME.1001@mailtobasecone.com", "documents": 3, "bytes": size}
    only_book = cli.ok("admin", "list", "--env", "BOOK", "--json").json()
    assert [(a["environment"], a["code"]) for a in only_book] == [("BOOK", "5001")]


def test_admin_show_adds_users_and_workflows(cli: Cli, loaded: dict[str, Any]) -> None:
    shown = cli.ok("--as", "sue@acme.example", "admin", "show", "1002", "--json").json()
    assert ADMIN_FIELDS <= set(shown)
    assert shown["users"] == ["carl@acme.example"]
    assert shown["workflows"] == [{"name": "Over 1000", "authorisers": ["bob@acme.example"]}]
    same = cli.ok("admin", "show", str(shown["id"]), "--json").json()
    assert same == shown


def test_unknown_environment_and_administration(cli: Cli, loaded: dict[str, Any]) -> None:
    env = cli("admin", "list", "--env", "NOPE")
    assert (env.exit_code, env.error) == (
        3, "Error: no environment with office code 'NOPE' (see `basecone-migrate env list`)")
    admin = cli("--as", "tina@book.example", "admin", "show", "1001")
    assert (admin.exit_code, admin.error) == (
        3, "Error: no administration '1001' in environment BOOK: give its id or its code "
           "(see `basecone-migrate admin list`)")


def test_a_code_is_read_within_the_acting_users_environment(
    cli: Cli, world_dir: Path, world: dict[str, Any]
) -> None:
    world = copy.deepcopy(world)
    world["environments"][1]["administrations"].append(
        {"code": "1001", "name": "Bakkerij Jansen", "accounting_system": "book-tw"})
    cli.ok("load", write_world(world_dir, world))

    ambiguous = cli("admin", "show", "1001")
    acme = cli.ok("--as", "sue@acme.example", "admin", "show", "1001", "--json").json()
    book = cli.ok("admin", "show", "1001", "--json", "--as", "tina@book.example").json()

    assert ambiguous.exit_code == 2
    assert re.fullmatch(
        r"Error: '1001' is ambiguous \(id \d+ = ACME/1001 Bakkerij Jansen; id \d+ = BOOK/1001 "
        r"Bakkerij Jansen\): use id:N for an id, or --as to pick your environment", ambiguous.error)
    assert (acme["environment"], book["environment"]) == ("ACME", "BOOK")


def test_a_number_that_is_an_id_and_a_code_is_not_guessed(
    cli: Cli, world_dir: Path, world: dict[str, Any]
) -> None:
    world["environments"][0]["accounting_systems"][0]["catalogue"].append({"code": "1", "name": "Een"})
    world["environments"][0]["administrations"].append(
        {"code": "1", "name": "Een", "accounting_system": "acme-tw"})
    cli.ok("load", write_world(world_dir, world))

    result = cli("--as", "sue@acme.example", "admin", "show", "1")
    by_id = cli.ok("--as", "sue@acme.example", "admin", "show", "id:1", "--json").json()

    assert result.exit_code == 2
    assert result.error.startswith("Error: '1' is ambiguous (id 1 = ACME/1001 Bakkerij Jansen; id ")
    assert (by_id["id"], by_id["code"]) == (1, "1001")


def test_unknown_acting_user_is_not_allowed(cli: Cli, loaded: dict[str, Any]) -> None:
    result = cli("--as", "mallory@evil.example", "admin", "show", "1001")
    assert (result.exit_code, result.error) == (
        4, "Error: unknown acting user mallory@evil.example: --as must name a user of an environment")


def test_usage_errors_are_one_line(cli: Cli, loaded: dict[str, Any]) -> None:
    missing = cli("admin", "show")
    unknown = cli("frobnicate")
    bad_option = cli("admin", "list", "--colour")
    assert (missing.exit_code, missing.error) == (
        2, "Error: Missing argument 'ADMIN'. See 'basecone-migrate admin show --help'.")
    assert (unknown.exit_code, unknown.error) == (
        2, "Error: No such command 'frobnicate'. See 'basecone-migrate --help'.")
    assert (bad_option.exit_code, bad_option.error) == (
        2, "Error: No such option: --colour. See 'basecone-migrate admin list --help'.")


def test_json_output_is_exactly_one_document(cli: Cli, loaded: dict[str, Any]) -> None:
    for args in (["env", "list"], ["admin", "list"], ["admin", "show", "1"], ["archive", "list", "1"],
                 ["config"]):
        result = cli.ok(*args, "--json")
        json.loads(result.stdout)  # the whole of stdout parses
        assert result.stderr == ""
    assert cli.ok("--json", "env", "list").json() == cli.ok("env", "list", "--json").json()


def test_debug_shows_the_traceback(cli: Cli, loaded: dict[str, Any]) -> None:
    plain = cli("admin", "show", "999")
    debug = cli("--debug", "admin", "show", "999")
    assert "Traceback" not in plain.stderr
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1] == plain.error
    assert debug.exit_code == plain.exit_code == 3


def test_unreachable_database_is_one_line(cli: Cli) -> None:
    result = cli("env", "list", db="postgresql://nobody@127.0.0.1:1/none")
    assert result.exit_code == 70
    assert result.error.startswith("Error: database problem: ")
    assert result.error.endswith("(run with --debug for the traceback)")


@pytest.mark.slow
def test_the_installed_program_in_a_pipe(env_vars: dict[str, str], loaded: dict[str, Any]) -> None:
    listed = run_process(["admin", "list"], env_vars)
    as_json = run_process(["admin", "list", "--json"], env_vars)
    version = run_process(["--version"], env_vars)
    assert listed.returncode == 0, listed.stderr
    assert "\x1b[" not in listed.stdout  # no colours when not on a terminal
    assert "Bakkerij Jansen" in listed.stdout
    assert len(json.loads(as_json.stdout)) == 4
    assert version.stdout.startswith("basecone-migrate ")


def test_ids_beyond_32_bits_name_nothing_on_both_databases(cli: Cli, loaded: dict[str, Any]) -> None:
    for args in (["status", "99999999999"], ["archive", "list", "id:99999999999"],
                 ["admin", "show", "99999999999"], ["--as", SUE, "resume", "99999999999"]):
        assert cli(*args).exit_code == 3, args


def test_as_is_accepted_after_every_command(cli: Cli, loaded: dict[str, Any]) -> None:
    for args in (["env", "list"], ["admin", "list"], ["mail", "list"], ["mail", "flush"], ["expire"],
                 ["db", "upgrade"], ["config"], ["audit"], ["status"]):
        assert cli(*args, "--as", SUE, "--json").exit_code == 0, args


def test_a_database_url_that_is_not_one_is_a_usage_error(cli: Cli) -> None:
    result = cli("env", "list", db="bogus://x")
    assert result.exit_code == 2
    assert result.error.startswith(
        "Error: database URL 'bogus://x' (from env BASECONE_MIGRATE_DB) is not valid: ")
