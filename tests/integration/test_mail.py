"""The outbox against a real SMTP server (aiosmtpd on 127.0.0.1)."""

from __future__ import annotations

import email
import email.policy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from basecone_migrate.db.models import OutboxMail
from tests.conftest import (
    MARKER,
    SUE,
    TINA,
    Cli,
    SmtpServer,
    database_folder,
    make_offer,
    run_process,
)


def outbox(db_url: str) -> list[OutboxMail]:
    engine = create_engine(db_url)
    with engine.connect() as connection:
        rows = list(connection.execute(select(OutboxMail.__table__).order_by(OutboxMail.id)))
    engine.dispose()
    return rows  # type: ignore[return-value]


def test_an_unreachable_server_leaves_mail_queued_until_flush(
    env_vars: dict[str, str], loaded: dict[str, Any], db_url: str
) -> None:
    server = SmtpServer()  # a port nobody listens on yet
    cli = Cli({**env_vars, **server.env})

    offered = cli("--as", SUE, "offer", "1001", "--to", TINA, "--accept-terms", "--json")

    assert offered.exit_code == 0  # the offer stands; the mail waits
    assert offered.stderr.startswith("Warning: 1 mail(s) could not be sent (ConnectionRefusedError")
    assert offered.stderr.rstrip().endswith("they stay queued; retry with `basecone-migrate mail flush`")
    [queued] = cli.ok("mail", "list", "--json").json()
    assert (queued["state"], queued["attempts"], queued["to"], queued["cc"]) == ("queued", 1, [TINA], [SUE])
    assert queued["last_error"].startswith("ConnectionRefusedError")
    assert "body" not in queued
    assert outbox(db_url)[0].body is not None  # kept until delivered

    server.start()
    try:
        flushed = cli.ok("mail", "flush", "--json").json()
        again = cli.ok("mail", "flush", "--json").json()
    finally:
        server.stop()

    assert flushed["sent"] == [queued["id"]] and again["sent"] == []
    [mail] = server.messages
    assert offered.json()["transfercode"] in mail.text
    [row] = outbox(db_url)
    assert (row.state, row.attempts, row.last_error) == ("sent", 2, None)
    assert row.body is None  # a body with a code is erased once delivered
    assert row.delivered_via == f"smtp 127.0.0.1:{server.port}"


def test_mail_without_a_code_keeps_its_body(mailing_cli: Cli, loaded: dict[str, Any], db_url: str,
                                            smtp: SmtpServer) -> None:
    code = make_offer(mailing_cli, "1001")["transfercode"]
    mailing_cli.ok("--as", TINA, "redeem", code, "--reject")
    offer_row, reject_row = outbox(db_url)
    assert offer_row.body is None and offer_row.carries_code
    assert reject_row.body is not None and not reject_row.carries_code


def test_two_flushes_at_once_deliver_each_mail_once(
    env_vars: dict[str, str], loaded: dict[str, Any]
) -> None:
    server = SmtpServer()
    env = {**env_vars, **server.env}
    cli = Cli(env)
    for admin in ("1001", "1002"):
        cli("--as", SUE, "offer", admin, "--to", TINA, "--accept-terms", "--confirm-checklist")
    cli("--as", SUE, "revoke", "1")
    assert len(cli.ok("mail", "list", "--state", "queued", "--json").json()) == 3

    server.start()
    try:
        command = [sys.executable, "-m", "basecone_migrate", "mail", "flush"]
        full = {**{k: v for k, v in __import__("os").environ.items()
                   if not k.startswith("BASECONE_MIGRATE_")}, **env}
        runs = [subprocess.Popen(command, env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                for _ in range(3)]
        for run in runs:
            assert run.wait(timeout=60) == 0, run.stderr.read()
    finally:
        server.stop()
    assert len(server.messages) == 3
    assert sorted(m.subject for m in server.messages) == [
        "Migration offer withdrawn by Acme Accountants (ACME)",
        "Transfercode for 1 administration from Acme Accountants (ACME)",
        "Transfercode for 1 administration from Acme Accountants (ACME)"]


def test_a_mail_refused_mid_batch_stays_queued_and_the_others_go_once(
    env_vars: dict[str, str], loaded: dict[str, Any], db_url: str
) -> None:
    server = SmtpServer()
    env = {**env_vars, **server.env}
    cli = Cli(env)
    for admin in ("1001", "1002"):  # no server yet: three mails stay queued
        cli("--as", SUE, "offer", admin, "--to", TINA, "--accept-terms", "--confirm-checklist")
    cli("--as", SUE, "revoke", "1")
    server.refuse_subjects.add("withdrawn")
    server.start()
    try:
        first = cli("mail", "flush", "--json")
        rows = {row.id: row for row in outbox(db_url)}
        server.refuse_subjects.clear()
        second = cli.ok("mail", "flush", "--json")
    finally:
        server.stop()
    assert first.exit_code == 5, first.stderr
    assert [(rows[i].state, rows[i].attempts) for i in (1, 2)] == [("sent", 2), ("sent", 2)]
    assert rows[3].state == "queued" and rows[3].attempts == 2
    assert "554" in (rows[3].last_error or "") and "Message refused" in (rows[3].last_error or "")
    assert second.json()["sent"] == [3]
    assert sorted(m.subject for m in server.messages) == [
        "Migration offer withdrawn by Acme Accountants (ACME)",
        "Transfercode for 1 administration from Acme Accountants (ACME)",
        "Transfercode for 1 administration from Acme Accountants (ACME)"]


def test_without_smtp_mails_become_eml_files(
    cli: Cli, loaded: dict[str, Any], isolated_environment: Path, db_url: str
) -> None:
    result = cli("--as", SUE, "offer", "1001", "--to", TINA, "--accept-terms")
    folder = database_folder(db_url, isolated_environment) / "outbox"  # this database's own
    [path] = sorted(p for p in folder.iterdir() if p.name != MARKER)
    assert f"Mail written to {path} (no SMTP host set)" in result.stderr
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert (message["To"], message["Cc"]) == (TINA, SUE)
    assert "Transfercode: " in message.get_body(preferencelist=("plain",)).get_content()
    [row] = cli.ok("mail", "list", "--json").json()
    assert (row["state"], row["delivered_via"]) == ("sent", f"file {path}")


def test_smtp_login_uses_the_password_from_the_environment(
    env_vars: dict[str, str], loaded: dict[str, Any]
) -> None:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    seen: list[tuple[str, str]] = []

    class Authenticator:
        def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str,
                     auth_data: Any) -> AuthResult:
            assert isinstance(auth_data, LoginPassword)
            seen.append((auth_data.login.decode(), auth_data.password.decode()))
            return AuthResult(success=auth_data.password == b"s3cret")

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            return "250 OK"

    server = SmtpServer()
    controller = Controller(Handler(), hostname="127.0.0.1", port=server.port,
                            authenticator=Authenticator(), auth_require_tls=False)
    controller.start()
    try:
        env = {**env_vars, **server.env, "BASECONE_MIGRATE_SMTP_USER": "mailer",
               "BASECONE_MIGRATE_SMTP_PASSWORD": "s3cret"}
        result = Cli(env).ok("--as", SUE, "offer", "1001", "--to", TINA, "--accept-terms")
    finally:
        controller.stop()
    assert result.stderr == ""  # delivered: no warning
    assert seen == [("mailer", "s3cret")]


def test_a_login_without_any_password_is_explained(env_vars: dict[str, str], loaded: dict[str, Any],
                                                   smtp: SmtpServer) -> None:
    env = {**env_vars, **smtp.env, "BASECONE_MIGRATE_SMTP_USER": "mailer"}
    result = Cli(env)("--as", SUE, "offer", "1001", "--to", TINA, "--accept-terms")
    assert result.exit_code == 0
    assert ("no SMTP password for mailer: store it in the keyring (service 'basecone-migrate') or set "
            "BASECONE_MIGRATE_SMTP_PASSWORD") in result.stderr


def test_the_program_delivers_from_its_own_process(
    env_vars: dict[str, str], loaded: dict[str, Any], smtp: SmtpServer
) -> None:
    result = run_process(["--as", SUE, "offer", "1001", "--to", TINA, "--accept-terms"],
                         {**env_vars, **smtp.env})
    assert result.returncode == 0, result.stderr
    [mail] = smtp.messages
    assert mail.message["To"] == TINA


def test_bad_mail_settings_refuse_before_anything_changes(
    env_vars: dict[str, str], loaded: dict[str, Any], state: Any
) -> None:
    cli = Cli(env_vars)
    code = make_offer(cli, "1001")["transfercode"]
    snapshot = state.take()
    cases = [
        ({"smtp_security": "bogus"}, "SMTP security 'bogus' (from env BASECONE_MIGRATE_SMTP_SECURITY) is "
                                     "not valid: expected one of starttls, ssl, none"),
        ({"smtp_port": "abc"}, "SMTP port 'abc' (from env BASECONE_MIGRATE_SMTP_PORT) is not valid: "
                               "expected a port number"),
        ({"mail_from": "nobody"}, "sender address 'nobody' (from env BASECONE_MIGRATE_MAIL_FROM) is not an "
                                  "e-mail address"),
        ({"smtp_host": "mail.example.org", "smtp_security": "none", "smtp_user": "mailer",
          "smtp_password": "x"},
         "BASECONE_MIGRATE_SMTP_SECURITY=none would send the SMTP password in clear to "
         "mail.example.org: use starttls or ssl"),
    ]
    for settings, message in cases:
        for args in (["--as", SUE, "offer", "1002", "--to", TINA, "--accept-terms", "--confirm-checklist"],
                     ["--as", TINA, "redeem", code, "--accept-terms"],
                     ["--as", SUE, "revoke", "1"], ["expire"], ["mail", "flush"]):
            result = cli(*args, **settings)
            assert (result.exit_code, result.error) == (2, f"Error: {message}"), args
            assert state.take() == snapshot, args


def test_an_outbox_that_cannot_be_written_leaves_the_mail_queued(
    env_vars: dict[str, str], loaded: dict[str, Any], isolated_environment: Path, db_url: str
) -> None:
    data = database_folder(db_url, isolated_environment)
    data.mkdir(parents=True)
    (data / "outbox").write_text("a file where the folder should be")
    cli = Cli(env_vars)
    result = cli("--as", SUE, "offer", "1001", "--to", TINA, "--accept-terms", "--json")
    assert result.exit_code == 0
    assert result.json()["transfercode"]  # the sender still sees the code
    assert result.stderr.startswith("Warning: 1 mail(s) could not be sent (")
    [row] = cli.ok("mail", "list", "--json").json()
    assert (row["state"], row["attempts"]) == ("queued", 1)
    (data / "outbox").unlink()
    assert cli.ok("mail", "flush", "--json").json()["sent"] == [row["id"]]


def test_mail_files_and_the_default_database_are_private(
    cli: Cli, loaded: dict[str, Any], isolated_environment: Path, db_url: str
) -> None:
    cli.ok("--as", SUE, "offer", "1001", "--to", TINA, "--accept-terms")
    folder = database_folder(db_url, isolated_environment) / "outbox"
    [path] = [p for p in folder.iterdir() if p.name != MARKER]
    assert (folder.stat().st_mode & 0o777, path.stat().st_mode & 0o777) == (0o700, 0o600)
    Cli({})("env", "list")  # the embedded default database
    database = isolated_environment / "data" / "basecone-migrate" / "basecone-migrate.db"
    assert database.stat().st_mode & 0o777 == 0o600


def test_a_late_result_never_requeues_a_mail_another_process_delivered(
    env_vars: dict[str, str], loaded: dict[str, Any], db_url: str
) -> None:
    from sqlalchemy import update

    from basecone_migrate.mail import Postman
    from basecone_migrate.runtime import Runtime
    from basecone_migrate.settings import Settings

    Cli(env_vars)("--as", SUE, "offer", "1001", "--to", TINA, "--accept-terms",
                  smtp_host="127.0.0.1", smtp_port="1", smtp_security="none")  # stays queued
    rt = Runtime(Settings.load({}, env_vars))
    [slow] = Postman(rt)._claim([1])  # a slow sender takes it ...
    with rt.uow() as uow:  # ... someone reclaims it as stale and delivers it
        uow.session.execute(update(OutboxMail).values(state="sent", last_error=None,
                                                      attempts=OutboxMail.attempts + 1))
        uow.commit()
    Postman(rt)._finish([], [(slow, "timed out")], [])  # the slow one gives up, too late
    Postman(rt)._finish([], [], [slow], "no connection")
    [row] = outbox(db_url)
    assert (row.state, row.last_error, row.attempts) == ("sent", None, 3)
    rt.close()


def test_a_batch_claim_takes_only_what_no_one_else_has(
    env_vars: dict[str, str], loaded: dict[str, Any], db_url: str
) -> None:
    from basecone_migrate.mail import Postman
    from basecone_migrate.runtime import Runtime
    from basecone_migrate.settings import Settings

    cli = Cli(env_vars)
    unreachable = {"smtp_host": "127.0.0.1", "smtp_port": "1", "smtp_security": "none"}
    for admin in ("1001", "1002"):  # all stay queued
        assert cli("--as", SUE, "offer", admin, "--to", TINA, "--accept-terms",
                   "--confirm-checklist", **unreachable).exit_code == 0
    assert cli("--as", SUE, "revoke", "1", **unreachable).exit_code == 0
    rt = Runtime(Settings.load({}, env_vars))
    first = Postman(rt)._claim([2])
    again = Postman(rt)._claim([1, 2, 3])
    assert [row.id for row in first] == [2]
    assert [(row.id, row.attempts) for row in again] == [(1, 2), (3, 2)]
    # Claimed and never tried (the connection failed first): queued as before, saying why.
    Postman(rt)._finish([], [], again, "ConnectionRefusedError: [Errno 111] Connection refused")
    rows = {row.id: row for row in outbox(db_url)}
    assert [(rows[i].state, rows[i].attempts) for i in (1, 2, 3)] == [
        ("queued", 1), ("sending", 2), ("queued", 1)]
    assert rows[1].last_error == "ConnectionRefusedError: [Errno 111] Connection refused"
    rt.close()


# -- STARTTLS means STARTTLS ---------------------------------------------------------------


def test_starttls_sends_nothing_to_a_server_that_does_not_offer_it(
    env_vars: dict[str, str], loaded: dict[str, Any], smtp: SmtpServer, db_url: str
) -> None:
    env = {**env_vars, **smtp.env}
    del env["BASECONE_MIGRATE_SMTP_SECURITY"]  # the default: starttls
    cli = Cli(env)

    offered = cli("--as", SUE, "offer", "1001", "--to", TINA, "--accept-terms", "--json")
    revoked = cli("--as", SUE, "revoke", "1", "--json")
    flushed = cli("mail", "flush", "--json")

    refusal = ("NoStartTLS: 127.0.0.1 does not offer STARTTLS, so nothing was sent in clear text "
               "(BASECONE_MIGRATE_SMTP_SECURITY=starttls); enable STARTTLS on the server, use ssl, "
               "or set none for a relay on a trusted network")
    assert offered.exit_code == revoked.exit_code == 0  # the changes stand; the mails wait
    assert offered.stderr == f"Warning: 1 mail(s) could not be sent ({refusal}): they stay queued; " \
                             "retry with `basecone-migrate mail flush`\n"
    assert smtp.messages == []  # not one byte of a mail went out in clear text
    assert (flushed.exit_code, flushed.error) == (
        5, f"Error: 2 mail(s) stay queued: {refusal} (`basecone-migrate mail list` shows each; "
           "flush again once that is fixed)")
    assert flushed.json() == {"sent": [], "failed": {"1": refusal, "2": refusal}, "written": [],
                              "trouble": None}
    rows = cli.ok("mail", "list", "--json").json()
    assert [(r["id"], r["state"], r["last_error"]) for r in rows] == [
        (2, "queued", refusal), (1, "queued", refusal)]
    assert all(row.body for row in outbox(db_url))  # kept, to be sent once it can be

    plain = cli.ok("mail", "flush", "--json", smtp_security="none").json()  # said on purpose
    assert plain["sent"] == [1, 2] and len(smtp.messages) == 2


@pytest.fixture(scope="module")
def certificate_authority() -> Any:
    import trustme

    return trustme.CA()


def _starttls_server(ca: Any) -> SmtpServer:
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return SmtpServer(tls_context=context)


def test_starttls_checks_the_server_certificate_and_trusts_a_given_ca_file(
    env_vars: dict[str, str], loaded: dict[str, Any], certificate_authority: Any, tmp_path: Path
) -> None:
    server = _starttls_server(certificate_authority)
    server.start()
    try:
        env = {**env_vars, **server.env, "BASECONE_MIGRATE_SMTP_SECURITY": "starttls"}
        cli = Cli(env)
        offered = cli.ok("--as", SUE, "offer", "1001", "--to", TINA, "--accept-terms", "--json")
        assert "CERTIFICATE_VERIFY_FAILED" in offered.stderr  # a self-signed CA is not trusted
        assert server.messages == []
        [row] = cli.ok("mail", "list", "--json").json()
        assert row["state"] == "queued" and "certificate verify failed" in row["last_error"]

        ca_file = tmp_path / "ca.pem"
        certificate_authority.cert_pem.write_to_path(str(ca_file))
        flushed = cli.ok("mail", "flush", "--json", smtp_ca_file=str(ca_file)).json()
    finally:
        server.stop()
    assert flushed["sent"] == [row["id"]]
    [mail] = server.messages
    assert mail.encrypted and offered.json()["transfercode"] in mail.text


def test_a_ca_file_that_is_not_there_is_a_usage_error(env_vars: dict[str, str], loaded: dict[str, Any],
                                                      state: Any, tmp_path: Path) -> None:
    snapshot = state.take()
    result = Cli(env_vars)("--as", SUE, "offer", "1001", "--to", TINA, "--accept-terms",
                           smtp_ca_file=str(tmp_path / "nope.pem"))
    assert (result.exit_code, result.error) == (
        2, f"Error: SMTP CA certificates (PEM file) '{tmp_path / 'nope.pem'}' (from env "
           "BASECONE_MIGRATE_SMTP_CA_FILE) is not valid: no such file (a PEM file of CA certificates)")
    assert state.take() == snapshot


def test_flush_exits_5_while_mail_stays_queued_and_0_once_all_is_delivered(
    env_vars: dict[str, str], loaded: dict[str, Any]
) -> None:
    server = SmtpServer()  # nobody listens yet
    cli = Cli({**env_vars, **server.env})
    cli.ok("--as", SUE, "offer", "1001", "--to", TINA, "--accept-terms")

    down = cli("mail", "flush")
    assert down.exit_code == 5
    assert down.stdout == "Sent 0 mail(s); 1 still queued.\n"
    assert down.error.startswith("Error: 1 mail(s) stay queued: ConnectionRefusedError")
    server.start()
    try:
        up = cli("mail", "flush", "--json")
        idle = cli("mail", "flush", "--json")
    finally:
        server.stop()
    assert (up.exit_code, up.json()["sent"], up.stderr) == (0, [1], "")
    assert (idle.exit_code, idle.json()["sent"]) == (0, [])
