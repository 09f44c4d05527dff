"""Who acted, and when: the operator and the database's own time in every audit row, and a
clock no one can turn back by accident (BASECONE_MIGRATE_NOW: the environment only, and a
warning on every command while it is in force)."""

from __future__ import annotations

import getpass
import socket
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import NOW, SUE, TINA, Cli, make_offer, write_world

WARNING = (f"Warning: the clock is set by BASECONE_MIGRATE_NOW to {NOW}, not the real time: expiry, "
           "lock-outs, scheduled starts and the audit's `at` follow it (`recorded_at` keeps the real "
           "time)\n")


def _leaf_commands() -> list[list[str]]:
    from basecone_migrate.cli import _command
    from basecone_migrate.cli.reference import _commands

    root = _command()
    ctx = root.make_context("basecone-migrate", [], resilient_parsing=True)
    return [path.split() for path, command, _ in _commands(root, ctx)
            if path and not hasattr(command, "list_commands")]


def test_every_command_says_the_clock_is_set_while_it_is(env_vars: dict[str, str]) -> None:
    raw = Cli(env_vars, clock_warning=True)
    commands = _leaf_commands()
    assert len(commands) > 25 and ["expire"] in commands
    for command in commands:
        result = raw(*command, "--help")
        assert (result.exit_code, result.stderr) == (0, WARNING), command
    # --quiet silences notes, never this; a refusal keeps its one Error: line after it
    assert raw("--quiet", "expire").stderr.startswith(WARNING)
    refused = raw("status", "7")
    assert (refused.exit_code, refused.stderr) == (
        3, WARNING + "Error: no migration 7 (see `basecone-migrate list`)\n")


def test_the_real_clock_says_nothing(env_vars: dict[str, str]) -> None:
    real = {k: v for k, v in env_vars.items() if k != "BASECONE_MIGRATE_NOW"}
    result = Cli(real, clock_warning=True)("status", "7")
    assert (result.exit_code, result.stderr) == (3, "Error: no migration 7 (see `basecone-migrate list`)\n")


def test_a_clock_in_the_config_file_is_ignored_with_a_warning(
        cli: Cli, loaded: dict[str, Any], env_vars: dict[str, str], tmp_path: Path) -> None:
    """A `now` left behind in a config file would redeem expired codes and backdate the audit
    without a word: the file's clock is ignored, and the user told so."""
    code = make_offer(cli, "1001")["transfercode"]  # expires 14 days after NOW, long past today
    config = tmp_path / "config.toml"
    config.write_text('now = "2026-03-03T09:00:00Z"\n')
    real = Cli({**{k: v for k, v in env_vars.items() if k != "BASECONE_MIGRATE_NOW"},
                "BASECONE_MIGRATE_CONFIG": str(config)}, clock_warning=True)

    shown = real("config", "--json")
    assert shown.exit_code == 0
    assert [(s["value"], s["source"]) for s in shown.json()["settings"] if s["setting"] == "now"] == [(None, "default")]
    assert shown.stderr == (f"Warning: config file {config}: `now` is ignored: only BASECONE_MIGRATE_NOW "
                            "sets the clock\n")
    refused = real("--as", TINA, "redeem", code, "--accept-terms")
    assert refused.exit_code == 1 and "expired" in refused.stderr, refused.stderr
    assert cli.ok("status", "1", "--json").json()["items"][0]["status"] == "offered"  # unchanged


def _expected_operator(db_url: str, role: str = "postgres") -> str:
    me = f"{getpass.getuser()}@{socket.gethostname()}"
    return me if db_url.startswith("sqlite") else f"{me}, database role {role}"


def test_every_audit_row_names_its_operator_and_the_real_time(
        cli: Cli, world_dir: Path, world: dict[str, Any], db_url: str) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    cli.ok("load", write_world(world_dir, world))
    code = make_offer(cli, "1001")["transfercode"]
    cli.ok("--as", TINA, "redeem", code, "--accept-terms")
    cli.ok("expire")
    after = datetime.now(UTC) + timedelta(seconds=1)

    rows = cli.ok("audit", "--json").json()
    assert [r["action"] for r in rows] == ["load", "offer", "redeem", "transfer_start", "transfer_complete"]
    operator = _expected_operator(db_url)
    assert [r["operator"] for r in rows] == [operator] * len(rows)
    assert {r["at"] for r in rows} == {"2026-03-02T09:00:00+00:00"}  # the clock set
    for row in rows:  # ... and the database's own time beside it
        assert before <= datetime.fromisoformat(row["recorded_at"]) <= after, row
    table = cli.ok("audit").stdout
    assert table.count(operator.split(",")[0]) == len(rows)


def test_expired_offers_name_their_operator_too(cli: Cli, loaded: dict[str, Any], db_url: str) -> None:
    make_offer(cli, "1001")
    cli.ok("expire", now="2026-04-01T00:00:00Z")
    [row] = [r for r in cli.ok("audit", "--json").json() if r["action"] == "expire"]
    assert (row["actor"], row["at"], row["operator"]) == ("cron", "2026-04-01T00:00:00+00:00",
                                                         _expected_operator(db_url))
    assert datetime.fromisoformat(row["recorded_at"]) > datetime.now(UTC) - timedelta(minutes=5)


@pytest.mark.parametrize("backend", ["postgresql"])
def test_on_postgresql_the_database_names_the_role_whatever_the_tool_sends(
        cli: Cli, loaded: dict[str, Any], db_url: str, env_vars: dict[str, str]) -> None:
    """A support engineer with a role of their own (docs/operations.md) is named by the
    database itself: neither --as nor a forged value in the INSERT changes it."""
    role = f"engineer_{uuid.uuid4().hex[:8]}"
    engine = create_engine(db_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        database = connection.execute(text("SELECT current_database()")).scalar_one()
        connection.execute(text(f'GRANT CONNECT ON DATABASE "{database}" TO "{role}"'))
        connection.execute(text(f'GRANT USAGE ON SCHEMA public TO "{role}"'))
        connection.execute(text(
            f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}"'))
        connection.execute(text(f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO "{role}"'))
    try:
        as_engineer = make_url(db_url).set(username=role).render_as_string(hide_password=False)
        engineer = Cli({**env_vars, "BASECONE_MIGRATE_DB": as_engineer})
        engineer.ok("--as", SUE, "offer", "1001", "--to", TINA, "--accept-terms")
        with engine.connect() as connection:  # a forged role and time, sent by hand
            connection.execute(text(
                "INSERT INTO audit_log (at, actor, action, details, operator, db_role, recorded_at) "
                "VALUES (now(), 'mallory', 'forged', '{}', 'mallory@nowhere', 'someone_else', "
                "'2000-01-01T00:00:00Z')"))
        rows = cli.ok("audit", "--json").json()
        offer, forged = rows[-2], rows[-1]
        assert (offer["actor"], offer["action"], offer["operator"]) == (
            SUE, "offer", _expected_operator(db_url, role))
        assert forged["operator"] == "mallory@nowhere, database role postgres"
        assert forged["recorded_at"] > "2026"
    finally:
        with engine.connect() as connection:
            connection.execute(text(f'DROP OWNED BY "{role}"'))
            connection.execute(text(f'DROP ROLE "{role}"'))
        engine.dispose()
