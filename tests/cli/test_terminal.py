"""What a terminal and a script each get: plain tables off a terminal or with NO_COLOR,
--quiet for cron, --no-input so that nothing ever waits for an answer."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import SUE, TINA, Cli, make_offer
from tests.terminal import Terminal

BOX = set("─━│┃┌┐└┘├┤┬┴┼╭╮╯╰═║")


def test_without_a_terminal_tables_are_plain_columns(cli: Cli, loaded: Any) -> None:
    out = cli.ok("admin", "list").stdout
    lines = out.splitlines()
    assert lines[0] == "Administrations"  # the title, then the header
    assert lines[1].split()[:4] == ["id", "office", "code", "name"]
    assert not BOX & set(out)
    assert all(line == line.rstrip() for line in lines), "no trailing spaces"
    assert any("  Bakkerij Jansen  " in line for line in lines)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_no_color_at_a_terminal_is_plain_too(env_vars: dict[str, str], loaded: Any, backend: str) -> None:
    boxed = Terminal(["env", "list"], env_vars)
    assert boxed.finish() == 0
    assert BOX & set(boxed.seen)
    plain = Terminal(["env", "list"], {**env_vars, "NO_COLOR": "1"})
    assert plain.finish() == 0
    assert not BOX & set(plain.seen) and "ACME" in plain.seen


def test_quiet_prints_nothing_but_warnings_and_errors(cli: Cli, loaded: Any) -> None:
    offer = cli.ok("-q", "--as", SUE, "offer", "1001", "--to", TINA, "--accept-terms")
    [line] = offer.stdout.splitlines()  # the code is shown nowhere else: it is always printed
    assert line.startswith("Transfercode: ") and offer.stderr == ""
    expired = cli.ok("expire", "--quiet", now="2026-04-01T00:00:00Z")
    assert (expired.stdout, expired.stderr) == ("", "")
    listed = cli.ok("--as", SUE, "list", "-q", "--json").json()  # --json still prints its document
    assert listed["offered"][0]["status"] == "expired"
    refused = cli("-q", "--as", SUE, "revoke", "99")
    assert refused.exit_code == 3 and refused.stdout == ""
    assert refused.error == "Error: no migration 99 (see `basecone-migrate list`)"


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_no_input_never_asks_at_a_terminal(env_vars: dict[str, str], loaded: Any, backend: str) -> None:
    code = make_offer(Cli(env_vars), "1001")["transfercode"]
    terminal = Terminal(["--as", TINA, "redeem", code, "--no-input"], env_vars)
    assert terminal.finish(timeout=30) == 1  # no question waited for an answer
    assert "Do you accept" not in terminal.seen
    assert "Error: accept the terms and the costs (EUR 0.00 per administration, invoiced to BOOK) " \
           "with --accept-terms" in terminal.seen
    asked = Terminal(["--as", TINA, "redeem", code, "--dry-run"], env_vars)
    asked.expect("Do you accept the terms and the costs?")
    asked.send("n")
    assert asked.finish() == 1


def test_a_long_note_off_a_terminal_stays_one_line(cli: Cli, loaded: Any, monkeypatch: Any) -> None:
    """A note naming a long path (the mail file in a database's own outbox) is one line in a
    log, whatever COLUMNS says."""
    monkeypatch.setenv("COLUMNS", "40")
    offered = cli.ok("--as", SUE, "offer", "1001", "--to", TINA, "--accept-terms")
    [note] = [line for line in offered.stderr.splitlines() if line.startswith("Mail written to ")]
    assert note.endswith(".eml (no SMTP host set)") and len(note) > 40
