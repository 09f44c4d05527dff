"""At a terminal, redeem asks for what the options left out (through a real pseudo-terminal)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TINA, Cli, make_offer, write_world
from tests.terminal import Terminal


@pytest.mark.slow
def test_redeem_asks_for_terms_selection_and_links(
    env_vars: dict[str, str], world_dir: Path, world: dict[str, Any]
) -> None:
    cli = Cli(env_vars)
    world["environments"][1]["accounting_systems"].append(
        {"id": "book-tw2", "package": "twinfield", "name": "Twinfield 2",
         "catalogue": [{"code": "1001", "name": "Bakkerij Jansen"}]})
    cli.ok("load", write_world(world_dir, world))
    code = make_offer(cli, "1001", "1002", extra=("--confirm-checklist",))["transfercode"]

    terminal = Terminal(["--as", TINA, "redeem", code], env_vars)
    terminal.expect("Do you accept the terms and the costs?")
    terminal.send("y")
    terminal.expect("Take which administrations")
    terminal.send("1001")
    terminal.expect("Reject them?")
    terminal.send("y")
    terminal.expect("Reason for the sender")
    terminal.send("")
    screen = terminal.expect("Number")
    [row] = [line for line in screen.splitlines() if "book-tw2" in line and "1001" in line]
    terminal.send(row.split()[0])
    assert terminal.finish() == 0, terminal.seen

    moved = cli.ok("admin", "show", "1", "--json").json()
    assert (moved["environment"], moved["accounting_system"], moved["code"]) == ("BOOK", "book-tw2", "1001")
    assert cli.ok("admin", "show", "2", "--json").json()["environment"] == "ACME"  # not selected
    assert "Migration 1: completed" in terminal.seen


@pytest.mark.slow
def test_saying_no_to_the_terms_changes_nothing(env_vars: dict[str, str], loaded: dict[str, Any]) -> None:
    cli = Cli(env_vars)
    code = make_offer(cli, "1001")["transfercode"]
    terminal = Terminal(["--as", TINA, "redeem", code], env_vars)
    terminal.expect("Do you accept the terms and the costs?")
    terminal.send("n")
    assert terminal.finish() == 1
    assert "Error: accept the terms and the costs" in terminal.seen
    assert cli.ok("admin", "show", "1", "--json").json()["environment"] == "ACME"


@pytest.mark.slow
def test_a_question_at_the_terminal_holds_no_lock(env_vars: dict[str, str], loaded: dict[str, Any]) -> None:
    """While a person thinks, other processes (cron) write to the database as usual."""
    terminal = Terminal(["--as", "sue@acme.example", "offer", "1001", "--to", TINA], env_vars)
    terminal.expect("Do you accept the terms")
    cron = subprocess.run([sys.executable, "-m", "basecone_migrate", "expire", "--json"],
                          env={**{k: v for k, v in os.environ.items() if not k.startswith("BASECONE_")},
                               **env_vars}, capture_output=True, text=True, timeout=30)
    terminal.send("y")
    assert terminal.finish() == 0, terminal.seen
    assert cron.returncode == 0, cron.stderr
    assert Cli(env_vars).ok("--as", "sue@acme.example", "list", "--json").json()["offered_total"] == 1


@pytest.mark.slow
def test_every_question_is_on_the_screen_while_redeem_waits(
    env_vars: dict[str, str], loaded: dict[str, Any]
) -> None:
    """The README's redeem at a 120-column terminal: each question stays on the screen while
    the program waits for its answer (no live display erases it), and what is left out of
    the selection is rejected only once the person has said so, with a reason."""
    cli = Cli(env_vars)
    code = make_offer(cli, "1001", "1002", extra=("--confirm-checklist",))["transfercode"]
    terminal = Terminal(["--as", TINA, "redeem", code], env_vars, columns=120, lines=40)
    terminal.waits_with("Do you accept the terms and the costs? [y/n] (n):")
    assert ("Migration costs EUR 0.00 per administration, invoiced to BOOK. The terms: "
            "`basecone-migrate terms`.") in terminal.screen
    terminal.send("y")
    screen = terminal.waits_with("Take which administrations (ids or codes, comma-separated) (all):")
    assert "Offered administrations" in screen and "Garage Smit" in screen
    terminal.send("1002")
    screen = terminal.waits_with("Reject them? [y/n] (n):")
    assert "  - 1001 Bakkerij Jansen" in screen
    terminal.send("n")  # not what was meant: choose again
    terminal.waits_with("Then choose again.")
    terminal.send("1001")
    screen = terminal.waits_with("Reject them? [y/n] (n):")
    assert "  - 1002 Garage Smit" in screen
    terminal.send("y")
    terminal.waits_with("Reason for the sender (not selected):")
    terminal.send("we only keep the bakery")
    assert terminal.finish() == 0, terminal.seen
    assert "Migration 1: completed" in terminal.screen
    status = cli.ok("status", "1", "--json").json()
    assert [(i["administration"], i["status"]) for i in status["items"]] == [
        ("Bakkerij Jansen", "completed"), ("Garage Smit", "rejected")]
    [rejected] = [row for row in cli.ok("audit", "--migration", "1", "--json").json()
                  if row["action"] == "reject"]
    assert rejected["details"]["reason"] == "we only keep the bakery"


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_redeem_asks_nothing_that_the_options_answer(
    env_vars: dict[str, str], loaded: dict[str, Any], backend: str
) -> None:
    """--accept-terms with --link (the offer mail's form), and one administration offered whose
    link is found: nothing is asked at a terminal, and the transfer runs to the end."""
    cli = Cli(env_vars)
    one = make_offer(cli, "1001")["transfercode"]  # one administration, its link found
    found = Terminal(["--as", TINA, "redeem", one, "--accept-terms"], env_vars, columns=120, lines=40)
    assert found.finish(timeout=60) == 0, found.seen
    assert "[y/n]" not in found.seen and "(all):" not in found.seen
    assert "Migration 1: completed" in found.screen

    two = make_offer(cli, "1002", extra=("--confirm-checklist",))["transfercode"]
    linked = Terminal(["--as", TINA, "redeem", two, "--accept-terms", "--link", "1002=book-tw"],
                      env_vars, columns=120, lines=40)
    assert linked.finish(timeout=60) == 0, linked.seen
    assert "[y/n]" not in linked.seen and "(all):" not in linked.seen
    assert "Migration 2: completed" in linked.screen
    moved = cli.ok("admin", "list", "--env", "BOOK", "--json").json()
    assert sorted(a["code"] for a in moved) == ["1001", "1002", "5001"]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_code_is_asked_for_without_echo(
    env_vars: dict[str, str], loaded: dict[str, Any], backend: str
) -> None:
    """Left out at a terminal, the code is asked for and never shown: not in the process list,
    the shell history or on the screen."""
    code = make_offer(Cli(env_vars), "1001")["transfercode"]
    terminal = Terminal(["--as", TINA, "redeem", "--accept-terms"], env_vars, columns=120, lines=40)
    terminal.waits_with("Transfercode (from the mail; not shown as you type):")
    terminal.send(code)
    assert terminal.finish() == 0, terminal.seen
    assert "Migration 1: completed" in terminal.screen
    assert code not in terminal.seen and code.replace("-", "") not in terminal.seen


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_reason_typed_at_the_question_is_held_to_the_limits_of_reason(
    env_vars: dict[str, str], loaded: dict[str, Any], backend: str
) -> None:
    cli = Cli(env_vars)
    code = make_offer(cli, "1001", "1002", extra=("--confirm-checklist",))["transfercode"]
    terminal = Terminal(["--as", TINA, "redeem", code, "--accept-terms", "--select", "1001", "--dry-run"],
                        env_vars, columns=120, lines=40)
    assert terminal.finish() == 0  # --select answers it: nothing asked
    terminal = Terminal(["--as", TINA, "redeem", code, "--accept-terms"], env_vars, columns=120, lines=40)
    terminal.waits_with("Take which administrations (ids or codes, comma-separated) (all):")
    terminal.send("1001")
    terminal.waits_with("Reject them? [y/n] (n):")
    terminal.send("y")
    terminal.waits_with("Reason for the sender (not selected):")
    terminal.send("x" * 2001)
    terminal.waits_with("That reason is 2001 characters; keep it under 2000.")
    terminal.send("too many garages")
    assert terminal.finish() == 0, terminal.seen
    [rejected] = [row for row in cli.ok("audit", "--migration", "1", "--json").json()
                  if row["action"] == "reject"]
    assert rejected["details"]["reason"] == "too many garages"
