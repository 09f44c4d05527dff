"""At a terminal, redeem asks for what the options left out (through a real pseudo-terminal)."""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TINA, Cli, make_offer, write_world

ANSI = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]")


class Terminal:
    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.master, slave = os.openpty()
        full = {k: v for k, v in os.environ.items() if not k.startswith("BASECONE_MIGRATE_")}
        full.update(env, COLUMNS="160", TERM="xterm")
        self.process = subprocess.Popen([sys.executable, "-m", "basecone_migrate", *args], env=full,
                                        stdin=slave, stdout=slave, stderr=slave, close_fds=True)
        os.close(slave)
        self.seen = ""

    def expect(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            if time.monotonic() > deadline:
                raise AssertionError(f"never saw {text!r} in {self.seen!r}")
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(self.master, 65536).decode(errors="replace")
                except OSError:  # the program ended
                    chunk = ""
                self.seen += ANSI.sub("", chunk).replace("\r", "")
        return self.seen

    def send(self, line: str) -> None:
        os.write(self.master, (line + "\n").encode())

    def finish(self, timeout: float = 60) -> int:
        code = self.process.wait(timeout=timeout)
        try:
            while True:
                ready, _, _ = select.select([self.master], [], [], 0.1)
                if not ready:
                    break
                self.seen += ANSI.sub("", os.read(self.master, 65536).decode(errors="replace"))
        except OSError:
            pass
        os.close(self.master)
        return code


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
