"""The outbox: mails are rows written in the transaction of the change they report,
and delivered only after that transaction commits.

Delivery claims each mail with a guarded UPDATE, so two processes flushing at once
never send one mail twice. With an SMTP host the mails go out through yagmail (which
opens the session); without one they are written as ``.eml`` files to the outbox
folder. A failure leaves the mail queued with its error; ``mail flush`` retries. The
body of a mail that carries a transfercode is erased once it is delivered.

The message itself is built here with the standard library: yagmail's own builder
turns newlines into ``<br>`` in the plain-text part.
"""

from __future__ import annotations

import binascii
import errno
import html
import os
import re
import secrets
import ssl
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.header import Header
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, case, insert, null, or_, select, update

from basecone_migrate.db.tables import outbox
from basecone_migrate.domain.mails import Mail
from basecone_migrate.errors import UsageProblem
from basecone_migrate.runtime import Runtime
from basecone_migrate.settings import Settings

#: A mail claimed by a process that then died is offered again after this long.
STALE_CLAIM = timedelta(minutes=10)
#: Mails claimed in one statement.
CLAIM_BATCH = 200
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def queue(db: Any, mails: Sequence[tuple[Mail, int | None]], *, sender: str, at: datetime) -> list[int]:
    """Put (mail, migration id) pairs in the outbox, in the caller's transaction (a Core
    connection or an ORM session): one INSERT for them all. Returns their ids, in order."""
    if not mails:
        return []
    rows = [{"created_at": at, "event": mail.event, "migration_id": migration_id, "sender": sender,
             "to": list(mail.to), "cc": [c for c in mail.cc if c not in mail.to],
             "subject": mail.subject, "body": mail.body, "carries_code": mail.carries_code,
             "state": "queued", "attempts": 0} for mail, migration_id in mails]
    return list(db.scalars(insert(outbox).returning(outbox.c.id, sort_by_parameter_order=True), rows))


#: Header lines are folded before this many characters (RFC 5322 recommends 78).
_FOLD_AT = 78


def _header(name: str, value: str) -> bytes:
    """One header line: ASCII text as it is, anything else as RFC 2047 encoded words; a
    line break in a value (a name in a world file) never starts a new header."""
    value = " ".join(value.split()) if ("\r" in value or "\n" in value) else value
    if not value.isascii():
        value = Header(value, "utf-8", header_name=name).encode(linesep="\r\n")
    return f"{name}: {value}\r\n".encode("ascii")


def _addresses(name: str, addresses: Sequence[str]) -> bytes:
    """An address list, folded after a comma where a line would grow past 78 characters;
    internationalised addresses go as UTF-8 (RFC 6532), as the envelope does (SMTPUTF8)."""
    line, lines = f"{name}:", []
    for position, address in enumerate(addresses):
        item = f" {address}" + ("," if position < len(addresses) - 1 else "")
        if len(line) + len(item) > _FOLD_AT and line != f"{name}:":
            lines.append(line)
            line = ""
        line += item
    lines.append(line)
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _part(content_type: str, text: str) -> bytes:
    body = binascii.b2a_qp(text.encode("utf-8"), istext=True).replace(b"\n", b"\r\n")
    return (f'Content-Type: {content_type}; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n").encode("ascii") + body


def message_bytes(row: Any, at: datetime) -> bytes:
    """The mail as it goes on the wire: multipart/alternative, the plain text and the same
    text preformatted in HTML, both UTF-8 in quoted-printable, lines ending in CRLF.

    Written with the standard library's encoders (RFC 2047 headers, quoted-printable)
    rather than built as an ``EmailMessage``: building and flattening one took 1.6 ms, and
    `expire` writes one mail to each of thousands of senders. `tests/unit/test_mail_bytes.py`
    reads every mail back with the standard parser.
    """
    body = row.body or ""
    parts = [_part("text/plain", body), _part("text/html", (
        '<html><body><pre style="font-family: sans-serif; white-space: pre-wrap">'
        f"{html.escape(body)}</pre></body></html>"))]
    # "=_" never occurs in quoted-printable text (RFC 2045, 6.7): the boundary cannot either.
    boundary = f"=_bcm_{secrets.token_hex(16)}"
    head = [_addresses("From", [row.sender]), _addresses("To", row.to)]
    if row.cc:
        head.append(_addresses("Cc", row.cc))
    head += [_header("Subject", row.subject), _header("Date", format_datetime(at)),
             _header("Message-ID", make_msgid(idstring=f"bcm-{row.id}",
                                              domain=row.sender.split("@")[-1])),
             b"MIME-Version: 1.0\r\n",
             f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'.encode()]
    delimiter = f"--{boundary}\r\n".encode()
    return (b"".join(head) + b"".join(delimiter + part + b"\r\n" for part in parts)
            + f"--{boundary}--\r\n".encode())


@dataclass
class Delivery:
    sent: list[int] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    #: Why delivery stopped before it could try each mail (they all stay queued).
    trouble: str | None = None

    def merge(self, other: Delivery) -> None:
        self.sent += other.sent
        self.written += other.written
        self.failed.update(other.failed)
        self.trouble = self.trouble or other.trouble


def check_mail(rt: Runtime) -> None:
    """What a command that mails needs, checked before it changes anything: the settings
    (`check_settings`), and without an SMTP host an outbox that is not another database's
    (it is marked as this one's with its first mail)."""
    check_settings(rt.settings)
    if not rt.settings.smtp_host:
        rt.claim_outbox(check_only=True)


def check_settings(settings: Settings) -> None:
    """Mail settings a command will need, checked before it changes anything (exit 2)."""
    security = settings.smtp_security
    settings.smtp_port  # noqa: B018 - parsing is the check
    sender = settings.mail_from
    if "@" not in sender or any(c.isspace() for c in sender):
        raise UsageProblem(f"sender address {sender!r} (from {settings.raw('mail_from').source}) is not "
                           "an e-mail address")
    settings.smtp_ca_file  # noqa: B018 - a CA file that is not there is reported now
    host = settings.smtp_host
    if host and security == "none" and settings.smtp_user and host not in LOOPBACK:
        raise UsageProblem(f"BASECONE_MIGRATE_SMTP_SECURITY=none would send the SMTP password in clear "
                           f"to {host}: use starttls or ssl")


class _Transport:
    """Where mails go: an SMTP connection opened on first use, or the outbox folder."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.client: Any = None
        self.via: str = ""

    def send(self, row: Any) -> tuple[str, Path | None]:
        message = message_bytes(row, self.rt.now())
        settings = self.rt.settings
        if not settings.smtp_host:
            refuse_linked_outbox(self.rt.outbox_dir)  # before its marker is written there
            path = write_mail_file(self.rt.claim_outbox(), _file_name(row), message)
            return f"file {path}", path
        if self.client is None:
            self.client = _connect(self.rt)
            self.via = f"smtp {settings.smtp_host}:{_port(settings.smtp_security, settings.smtp_port)}"
        recipients = [*row.to, *row.cc]
        international = not all(a.isascii() for a in (row.sender, *recipients))
        self.client.smtp.sendmail(row.sender, recipients, message,
                                  mail_options=("SMTPUTF8",) if international else ())
        return self.via, None

    def close(self) -> None:
        if self.client is not None:
            self.client.close()  # yagmail swallows errors of QUIT


class UnsafeOutbox(Exception):
    """The outbox folder or a mail's file name is not a plain folder or file of ours."""


def _linked_outbox(folder: Path) -> UnsafeOutbox:
    return UnsafeOutbox(f"the outbox {folder} is a symbolic link, and mail is never written "
                        "through one: make it a folder")


def refuse_linked_outbox(folder: Path) -> None:
    if folder.is_symlink():
        raise _linked_outbox(folder)


def write_mail_file(folder: Path, name: str, message: bytes) -> Path:
    """Write a mail as ``folder/name``, readable by its owner alone (a transfercode is for its
    recipients only), never through a symbolic link: an outbox folder that is one, or a link
    (or another odd file) planted at the mail's name, is refused (UnsafeOutbox) and the link's
    target is left untouched. Writing the same mail again replaces its file."""
    path = folder / name
    from basecone_migrate.storage import private_folders

    refuse_linked_outbox(folder)
    private_folders(str(folder))
    flags = os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        where = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # made a link since the check above
            raise _linked_outbox(folder) from None
        raise
    try:
        try:  # not truncated before it is known to be a plain file of its own
            descriptor = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK | flags, 0o600,
                                 dir_fd=where)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            raise UnsafeOutbox(f"{path} is a symbolic link, and mail is never written through "
                               "one: remove it, then run `basecone-migrate mail flush`") from None
    finally:
        os.close(where)
    with os.fdopen(descriptor, "wb") as handle:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode) or status.st_nlink != 1:
            raise UnsafeOutbox(f"{path} is not a plain file of the outbox (a link or a device was put "
                               "there): remove it, then run `basecone-migrate mail flush`")
        os.set_blocking(descriptor, True)
        os.ftruncate(descriptor, 0)
        handle.write(message)
    return path


class Postman:
    """Delivers outbox mails, claimed a batch at a time just before they are sent.

    The claim is a guarded UPDATE ... RETURNING that bumps ``attempts``; each result is
    written back only for that same claim, so a slow sender and a flush that reclaimed a
    stale mail never both count it, and a delivered mail is never queued again.

    Claiming many mails in one statement duplicates nothing: a claimed mail that is never
    sent (the process died) is only offered again after ``STALE_CLAIM``. The results are
    written back after each mail sent over SMTP (a crash re-sends at most that one mail)
    and after each batch when mails are written as files (writing one again replaces the
    same file), which is what keeps `expire` of thousands of mails to a few transactions.
    """

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def _candidates(self, ids: list[int] | None) -> list[int]:
        query = select(outbox.c.id).where(self._claimable()).order_by(outbox.c.id)
        if ids is not None:
            query = query.where(outbox.c.id.in_(ids))
        with self.rt.reading() as db:
            return list(db.scalars(query))

    def _claimable(self) -> Any:
        return or_(outbox.c.state == "queued",
                   (outbox.c.state == "sending") & (outbox.c.claimed_at < self.rt.now() - STALE_CLAIM))

    def _claim(self, mail_ids: Sequence[int]) -> list[Any]:
        """Claim those of ``mail_ids`` no other process has, read back as the claim left them."""
        with self.rt.writing() as db:
            rows = list(db.execute(
                update(outbox).where(outbox.c.id.in_(mail_ids), self._claimable())
                .values(state="sending", claimed_at=self.rt.now(), attempts=outbox.c.attempts + 1)
                .returning(*outbox.c)))
        return sorted(rows, key=lambda row: row.id)

    def _finish(self, sent: list[tuple[Any, str]], failed: list[tuple[Any, str]],
                untried: list[Any], why: str = "") -> None:
        """Write back, in one transaction, what became of mails this process claimed: sent
        (the body of a mail with a code erased), failed (queued again with its error), or
        never tried (queued again as they were, saying why)."""
        if not (sent or failed or untried):
            return
        c = outbox.c
        ours = (c.id == bindparam("mail_id"), c.attempts == bindparam("claim"), c.state == "sending")
        with self.rt.writing() as db:
            if sent:
                db.execute(
                    update(outbox).where(*ours).values(
                        state="sent", sent_at=self.rt.now(), last_error=None,
                        delivered_via=bindparam("via"), body=case((c.carries_code, null()), else_=c.body)),
                    [{"mail_id": row.id, "claim": row.attempts, "via": via} for row, via in sent])
            if failed:
                db.execute(
                    update(outbox).where(*ours).values(state="queued", last_error=bindparam("error")),
                    [{"mail_id": row.id, "claim": row.attempts, "error": error[:2000]}
                     for row, error in failed])
            if untried:
                db.execute(
                    update(outbox).where(*ours).values(state="queued", attempts=c.attempts - 1,
                                                       last_error=why[:2000]),
                    [{"mail_id": row.id, "claim": row.attempts} for row in untried])

    def _note_failure(self, ids: list[int], error: str) -> None:
        """Why mails that were not tried stay queued (they keep their attempt count)."""
        if not ids:
            return
        with self.rt.writing() as db:
            db.execute(update(outbox).where(outbox.c.id.in_(ids), outbox.c.state == "queued")
                       .values(last_error=error[:2000]))

    def _send_batch(self, transport: _Transport, rows: list[Any], result: Delivery,
                    by_mail: bool) -> str | None:
        """Send claimed mails, writing back what became of them (after each mail over SMTP,
        else once at the end); returns why, when no connection could be made (the rest of
        the batch is then left queued, untried)."""
        sent: list[tuple[Any, str]] = []
        failed: list[tuple[Any, str]] = []
        untried: list[Any] = []
        why = ""
        try:
            for position, row in enumerate(rows):
                try:
                    via, path = transport.send(row)
                except Exception as exc:  # noqa: BLE001 - any failure leaves the mail queued
                    why = _describe(exc)
                    failed.append((row, why))
                    result.failed[row.id] = why
                    if transport.client is None and by_mail:
                        # No connection: the others would wait for the same timeout.
                        untried = rows[position + 1:]
                        result.failed.update(dict.fromkeys((r.id for r in untried), why))
                        return why
                    continue
                sent.append((row, via))
                result.sent.append(row.id)
                if path is not None:
                    result.written.append(path)
                if by_mail:
                    self._finish(sent, failed, [])
                    sent, failed = [], []
            return None
        finally:
            self._finish(sent, failed, untried, why)

    def deliver(self, ids: list[int] | None = None) -> Delivery:
        """Deliver the given queued mails (or every queued one); never raises: what cannot be
        delivered stays queued with its error."""
        result = Delivery()
        if ids is not None and not ids:
            return result
        transport = _Transport(self.rt)
        by_mail = bool(self.rt.settings.smtp_host)  # write back after each mail sent over SMTP
        try:
            candidates = self._candidates(ids)
            for start in range(0, len(candidates), CLAIM_BATCH):
                rows = self._claim(candidates[start:start + CLAIM_BATCH])
                why = self._send_batch(transport, rows, result, by_mail)
                if why is not None:
                    # Leave the mails not yet claimed queued too, each saying why (`mail list`).
                    rest = candidates[start + CLAIM_BATCH:]
                    self._note_failure(rest, why)
                    result.failed.update(dict.fromkeys(rest, why))
                    break
        except Exception as exc:  # noqa: BLE001 - the change is committed; the mail can wait
            result.trouble = _describe(exc)
        finally:
            transport.close()
        return result


def _port(security: str, port: int | None) -> int:
    return port or {"ssl": 465, "starttls": 587, "none": 25}[security]


class NoStartTLS(Exception):
    """``starttls`` was asked for and the server does not offer it: nothing is sent."""


def tls_context(settings: Settings) -> ssl.SSLContext:
    """Certificates are always checked: against the system's CAs, or the CA file given by
    ``BASECONE_MIGRATE_SMTP_CA_FILE`` (for a relay with a certificate of a private CA)."""
    ca_file = settings.smtp_ca_file
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


def _connect(rt: Runtime) -> Any:
    """A yagmail client with an open, authenticated SMTP connection (``client.smtp``).

    Keep the client while sending: yagmail closes the connection when it is collected.
    STARTTLS and the login are done here, with certificate checks (yagmail's own STARTTLS
    does not verify the server). ``starttls`` means STARTTLS or nothing, on every host:
    a server that does not offer it gets no mail (plain text only with ``none``).
    """
    import yagmail

    settings = rt.settings
    security = settings.smtp_security
    context = tls_context(settings) if security != "none" else None
    extra: dict[str, Any] = {"timeout": 30}
    if security == "ssl":
        extra["context"] = context
    client = yagmail.SMTP(
        user=None, password="", host=settings.smtp_host, port=_port(security, settings.smtp_port),
        smtp_ssl=security == "ssl", smtp_starttls=False, smtp_skip_login=True,
        soft_email_validation=False, **extra,
    )
    client.login()  # connects; skip_login: authentication follows below
    smtp = client.smtp
    if security == "starttls":
        smtp.ehlo()
        if not smtp.has_extn("starttls"):
            client.close()
            raise NoStartTLS(
                f"{settings.smtp_host} does not offer STARTTLS, so nothing was sent in clear "
                "text (BASECONE_MIGRATE_SMTP_SECURITY=starttls); enable STARTTLS on the server, "
                "use ssl, or set none for a relay on a trusted network")
        try:
            smtp.starttls(context=context)
        except BaseException:
            client.close()
            raise
        smtp.ehlo()
    if settings.smtp_user:
        password = settings.smtp_password().value
        if not password:
            client.close()
            raise RuntimeError(
                f"no SMTP password for {settings.smtp_user}: store it in the keyring (service "
                "'basecone-migrate') or set BASECONE_MIGRATE_SMTP_PASSWORD")
        smtp.login(settings.smtp_user, password)
    return client


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if not text.startswith(type(exc).__name__) else text


def _file_name(row: Any) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", row.event.lower()).strip("-")
    return f"{row.id:06d}-{slug}.eml"


def mail_rows(db: Any, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    query = select(outbox).order_by(outbox.c.id.desc()).limit(limit)
    if state:
        query = query.where(outbox.c.state == state)
    return [
        {
            "id": m.id, "created_at": m.created_at, "event": m.event, "migration_id": m.migration_id,
            "to": m.to, "cc": m.cc, "subject": m.subject, "state": m.state, "attempts": m.attempts,
            "last_error": m.last_error, "sent_at": m.sent_at, "delivered_via": m.delivered_via,
        }
        for m in db.execute(query)
    ]


def mail_detail(db: Any, mail_id: int) -> dict[str, Any]:
    """One mail as its recipients read it: the headers and the plain text (exit 3 for an id
    no mail has). A mail that carried a transfercode has no body once it was delivered."""
    from basecone_migrate.errors import NotFound
    from basecone_migrate.services.lookup import MAX_ID

    row = db.execute(select(outbox).where(outbox.c.id == mail_id)).first() if 0 < mail_id <= MAX_ID else None
    if row is None:
        raise NotFound(f"no mail {mail_id} (see `basecone-migrate mail list`)")
    return {
        "id": row.id, "created_at": row.created_at, "event": row.event, "migration_id": row.migration_id,
        "from": row.sender, "to": row.to, "cc": row.cc, "subject": row.subject, "state": row.state,
        "attempts": row.attempts, "last_error": row.last_error, "sent_at": row.sent_at,
        "delivered_via": row.delivered_via, "body": row.body,
        "body_erased": row.body is None and row.carries_code,
    }
