"""The first five minutes: the demo says how to reach the program it ran from, a mail reads
as its recipients read it, and the terms can be read before they are accepted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import SUE, TINA, Cli, State, make_offer

#: A PATH without the virtual environment the tests run from, as after the Quick start.
BARE_PATH = "/usr/local/bin:/usr/bin:/bin"


def test_the_demos_explore_lines_work_in_a_shell_without_the_venv_on_path(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASECONE_MIGRATE_")}
    env["PATH"] = BARE_PATH
    demo = subprocess.run([sys.executable, "-m", "basecone_migrate", "demo", "--documents", "5",
                           "--workspace", str(tmp_path / "ws")], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert demo.returncode == 0, demo.stderr
    tail = demo.stdout.split("Explore it yourself:\n", 1)[1].splitlines()
    venv_bin = Path(sys.executable).parent
    assert tail[0] == f'  export PATH={venv_bin}:"$PATH"'
    assert tail[-1] == ("  basecone-migrate --as tina@bookwise.example access grant --migration 1 "
                        "--user uma@bookwise.example")

    shell = subprocess.run(["bash", "-c", "set -e\n" + "\n".join(tail)], env=env,
                           capture_output=True, text=True, timeout=60, check=False)
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout.startswith("Granted access to administration 1: uma@bookwise.example;")


def test_mail_show_prints_a_mail_as_its_recipients_read_it(cli: Cli, loaded: Any) -> None:
    code = make_offer(cli, "1001")["transfercode"]
    cli.ok("--as", SUE, "revoke", "1")
    shown = cli.ok("mail", "show", "2").stdout
    head, body = shown.split("\n\n", 1)
    from_, to, subject, date, state, mail = head.splitlines()
    assert [from_, to, subject, date, mail] == [
        "From:    migrations@basecone.invalid", f"To:      {TINA}",
        "Subject: Migration offer withdrawn by Acme Accountants (ACME)",
        "Date:    2026-03-02 09:00 UTC", "Mail:    2 (revoke, migration 1)"]
    assert state.startswith("State:   sent 2026-03-02 09:00 UTC via file /")
    assert state.endswith("/000002-revoke.eml")
    assert body.startswith("Hello,\n\nSue (sue@acme.example) of Acme Accountants (ACME) has withdrawn")
    assert "=\n" not in body and "=20" not in body  # plain text, not quoted-printable
    assert "  - Bakkerij Jansen (code 1001, Twinfield)\n" in body

    offer = cli.ok("mail", "show", "1")  # delivered, so its code is gone
    assert f"Cc:      {SUE}" in offer.stdout.splitlines()
    assert offer.stdout.splitlines()[-1] == (
        "(The text held a transfercode and was erased once the mail was delivered: only its "
        "recipients have the code.)")
    assert code not in offer.stdout
    fields = cli.ok("mail", "show", "1", "--json").json()
    assert {k: fields[k] for k in ("id", "event", "migration_id", "from", "to", "cc", "state",
                                   "body", "body_erased")} == {
        "id": 1, "event": "offer", "migration_id": 1, "from": "migrations@basecone.invalid",
        "to": [TINA], "cc": [SUE], "state": "sent", "body": None, "body_erased": True}
    assert fields["subject"] == "Transfercode for 1 administration from Acme Accountants (ACME)"


def test_mail_show_of_a_queued_mail_keeps_its_text_and_says_why_it_waits(
        env_vars: dict[str, str], loaded: Any) -> None:
    from tests.conftest import SmtpServer

    down = SmtpServer()  # nobody listens
    cli = Cli({**env_vars, **down.env})
    code = make_offer(cli, "1001")["transfercode"]
    shown = cli.ok("mail", "show", "1").stdout
    state = next(line for line in shown.splitlines() if line.startswith("State:"))
    assert state.startswith("State:   queued (1 attempt(s); last error: ConnectionRefusedError")
    assert f"Transfercode: {code}" in shown.splitlines()  # not delivered yet: the text is kept


def test_mail_show_of_an_unknown_mail_is_exit_3(cli: Cli, loaded: Any, state: State) -> None:
    snapshot = state.take()
    for number in ("9", "0", "99999999999999999999"):
        result = cli("mail", "show", number)
        assert (result.exit_code, result.error) == (
            3, f"Error: no mail {number} (see `basecone-migrate mail list`)")
    assert state.take() == snapshot


def test_the_terms_can_be_read_before_they_are_accepted(cli: Cli, loaded: Any) -> None:
    shown = cli.ok("terms", fee="EUR 49.00").stdout
    assert shown.startswith("Terms and costs of moving administrations to another environment\n")
    assert ("  EUR 49.00 per administration the receiver takes, invoiced to the receiving "
            "environment.\n") in shown
    assert "Users, their access and authorisation workflows stay behind." in shown
    as_json = cli.ok("terms", "--json", fee="EUR 49.00").json()
    assert {k: as_json[k] for k in ("fee", "per", "invoiced_to", "code_valid_days")} == {
        "fee": "EUR 49.00", "per": "administration", "invoiced_to": "the receiving environment",
        "code_valid_days": 15}
    assert as_json["text"] == shown

    code = make_offer(cli, "1001")["transfercode"]
    refused = cli("--as", TINA, "redeem", code, fee="EUR 49.00")
    assert (refused.exit_code, refused.error) == (1, (
        "Error: accept the terms and the costs (EUR 49.00 per administration, invoiced to BOOK) "
        "with --accept-terms (read them first: `basecone-migrate terms`)"))
    offer = cli("--as", SUE, "offer", "1002", "--to", TINA, "--confirm-checklist")
    assert offer.error == ("Error: accept the terms of the migration with --accept-terms (read them "
                           "first: `basecone-migrate terms`)")
