"""Words that say what is true: what a status belongs to, what a person can do next, where a
mail went."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import SUE, TINA, Cli, SmtpServer, make_offer


def test_revoking_one_administration_says_whose_status_it_prints(cli: Cli, loaded: Any) -> None:
    make_offer(cli, "1001", "1002", extra=("--confirm-checklist",))
    one = cli.ok("--as", SUE, "revoke", "1", "--admin", "1002")
    assert one.stdout == ("Migration 1: revoked 1002 Garage Smit. Status of migration 1 as a "
                          "whole: offered.\n")
    rest = cli.ok("--as", SUE, "revoke", "1")
    assert rest.stdout == ("Migration 1: revoked 1001 Bakkerij Jansen. Status of migration 1 as a "
                           "whole: revoked.\n")


def test_the_expiry_mail_points_to_resend(mailing_cli: Cli, smtp: SmtpServer, loaded: Any) -> None:
    make_offer(mailing_cli, "1001")
    smtp.take()
    mailing_cli.ok("expire", now="2026-03-20T00:00:00Z")
    [mail] = smtp.take()
    text = mail.text.replace("\r\n", "\n")
    assert mail.recipients == [SUE]
    assert "make a new offer" not in text
    assert ("The administrations stay in your environment. To offer them again to the same\n"
            "recipients, with a new transfercode valid for 15 days, resend the offer (MIGRATION is\n"
            "its number above):\n\n"
            f"  basecone-migrate --as {SUE} resend MIGRATION\n") in text
    assert "Migration 1 (offered to tina@book.example):" in text
    # ... and resend does what the mail says: the offer is open again, with a new code.
    again = mailing_cli.ok("--as", SUE, "resend", "1", "--json", now="2026-03-20T00:00:00Z").json()
    assert again["status"] == "offered" and again["recipients"] == [TINA]


def test_flush_without_an_smtp_host_says_written_not_sent(
        env_vars: dict[str, str], loaded: Any) -> None:
    down = SmtpServer()  # nobody listens: the offer's mail stays queued
    code = make_offer(Cli({**env_vars, **down.env}), "1001")["transfercode"]
    flushed = Cli(env_vars).ok("mail", "flush")  # then without an SMTP host: to a file
    written, summary = flushed.stdout.splitlines()
    assert written.startswith("Written to ") and written.endswith("000001-offer.eml")
    assert code in Path(written.removeprefix("Written to ")).read_text()
    assert summary == ("Wrote 1 mail(s) to files, as no SMTP host is set "
                       "(BASECONE_MIGRATE_SMTP_HOST); 0 still queued.")
    assert flushed.stderr == ""


def test_load_help_says_what_its_transaction_holds(cli: Cli) -> None:
    shown = " ".join(cli.ok("load", "--help").stdout.split())
    assert "One transaction" not in shown
    assert ("The entities go in one transaction; the documents are copied after it, so a load "
            "that stopped while copying is finished by loading the file again.") in shown
