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

import email.policy
import html
import re
import ssl
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from basecone_migrate.db.models import OutboxMail
from basecone_migrate.domain.mails import Mail
from basecone_migrate.runtime import Runtime

#: A mail claimed by a process that then died is offered again after this long.
STALE_CLAIM = timedelta(minutes=10)
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def queue(session: Session, mail: Mail, *, sender: str, at: datetime, migration_id: int | None) -> OutboxMail:
    row = OutboxMail(
        created_at=at, event=mail.event, migration_id=migration_id, sender=sender,
        to=list(mail.to), cc=[c for c in mail.cc if c not in mail.to], subject=mail.subject,
        body=mail.body, carries_code=mail.carries_code, state="queued", attempts=0,
    )
    session.add(row)
    return row


#: Headers stay on one line up to RFC 5322's limit (folded subjects read back with a space).
POLICY = email.policy.SMTP.clone(max_line_length=998)


def build_message(row: OutboxMail, at: datetime) -> EmailMessage:
    message = EmailMessage(policy=POLICY)
    message["From"] = row.sender
    message["To"] = ", ".join(row.to)
    if row.cc:
        message["Cc"] = ", ".join(row.cc)
    message["Subject"] = row.subject
    message["Date"] = format_datetime(at)
    message["Message-ID"] = make_msgid(idstring=f"bcm-{row.id}", domain=row.sender.split("@")[-1])
    message.set_content(row.body or "")
    message.add_alternative(
        "<html><body><pre style=\"font-family: sans-serif; white-space: pre-wrap\">"
        f"{html.escape(row.body or '')}</pre></body></html>",
        subtype="html",
    )
    return message


@dataclass
class Delivery:
    sent: list[int] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)

    def merge(self, other: Delivery) -> None:
        self.sent += other.sent
        self.written += other.written
        self.failed.update(other.failed)


class Postman:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def _claim(self, ids: list[int] | None) -> list[OutboxMail]:
        """Mark mails as being sent, in one guarded UPDATE: each mail has one sender."""
        now = self.rt.now()
        claimable = or_(
            OutboxMail.state == "queued",
            (OutboxMail.state == "sending") & (OutboxMail.claimed_at < now - STALE_CLAIM),
        )
        claim = (
            update(OutboxMail).where(claimable)
            .values(state="sending", claimed_at=now, attempts=OutboxMail.attempts + 1)
            .returning(OutboxMail.id)
        )
        if ids is not None:
            claim = claim.where(OutboxMail.id.in_(ids))
        with self.rt.uow() as uow:
            session = uow.session
            claimed = list(session.scalars(claim))
            rows = list(session.scalars(select(OutboxMail).where(OutboxMail.id.in_(claimed))
                                        .order_by(OutboxMail.id)))
            uow.commit()
            session.expunge_all()
            return rows

    def _finish(self, row_id: int, *, error: str | None, via: str | None, carries_code: bool) -> None:
        with self.rt.uow() as uow:
            values: dict[str, Any]
            if error is None:
                values = {"state": "sent", "sent_at": self.rt.now(), "last_error": None,
                          "delivered_via": via}
                if carries_code:
                    values["body"] = None
            else:
                values = {"state": "queued", "last_error": error[:2000]}
            uow.session.execute(update(OutboxMail).where(OutboxMail.id == row_id).values(**values))
            uow.commit()

    def deliver(self, ids: list[int] | None = None) -> Delivery:
        """Deliver the given queued mails (or every queued one); never raises for SMTP trouble."""
        if ids is not None and not ids:
            return Delivery()
        rows = self._claim(ids)
        result = Delivery()
        if not rows:
            return result
        settings = self.rt.settings
        if settings.smtp_host:
            self._send_smtp(rows, result)
        else:
            folder = settings.outbox_dir
            folder.mkdir(parents=True, exist_ok=True)
            for row in rows:
                path = folder / _file_name(row)
                path.write_bytes(bytes(build_message(row, self.rt.now())))
                self._finish(row.id, error=None, via=f"file {path}", carries_code=row.carries_code)
                result.sent.append(row.id)
                result.written.append(path)
        return result

    def _send_smtp(self, rows: list[OutboxMail], result: Delivery) -> None:
        settings = self.rt.settings
        via = f"smtp {settings.smtp_host}:{_port(settings.smtp_security, settings.smtp_port)}"
        try:
            client = _connect(self.rt)
        except Exception as exc:  # noqa: BLE001 - any failure leaves the mails queued
            for row in rows:
                self._finish(row.id, error=_describe(exc), via=None, carries_code=row.carries_code)
                result.failed[row.id] = _describe(exc)
            return
        try:
            for row in rows:
                try:
                    client.smtp.send_message(build_message(row, self.rt.now()),
                                            to_addrs=[*row.to, *row.cc])
                except Exception as exc:  # noqa: BLE001
                    self._finish(row.id, error=_describe(exc), via=None, carries_code=row.carries_code)
                    result.failed[row.id] = _describe(exc)
                else:
                    self._finish(row.id, error=None, via=via, carries_code=row.carries_code)
                    result.sent.append(row.id)
        finally:
            client.close()  # yagmail swallows errors of QUIT


def _port(security: str, port: int | None) -> int:
    return port or {"ssl": 465, "starttls": 587, "none": 25}[security]


def _connect(rt: Runtime) -> Any:
    """A yagmail client with an open, authenticated SMTP connection (``client.smtp``).

    Keep the client while sending: yagmail closes the connection when it is collected.

    STARTTLS and the login are done here, with certificate checks (yagmail's own
    STARTTLS does not verify the server). ``starttls`` requires the server to offer
    STARTTLS, except on the loopback interface where there is no wire to protect.
    """
    import yagmail

    settings = rt.settings
    security = settings.smtp_security
    context = ssl.create_default_context()
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
        if smtp.has_extn("starttls"):
            smtp.starttls(context=context)
            smtp.ehlo()
        elif settings.smtp_host not in LOOPBACK:
            smtp.close()
            raise RuntimeError(f"{settings.smtp_host} does not offer STARTTLS; set "
                               "BASECONE_MIGRATE_SMTP_SECURITY=ssl or none")
    if settings.smtp_user:
        password = settings.smtp_password().value
        if not password:
            smtp.close()
            raise RuntimeError(
                f"no SMTP password for {settings.smtp_user}: store it in the keyring (service "
                "'basecone-migrate') or set BASECONE_MIGRATE_SMTP_PASSWORD")
        smtp.login(settings.smtp_user, password)
    return client


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if not text.startswith(type(exc).__name__) else text


def _file_name(row: OutboxMail) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", row.event.lower()).strip("-")
    return f"{row.id:06d}-{slug}.eml"


def mail_rows(session: Session, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    query = select(OutboxMail).order_by(OutboxMail.id.desc()).limit(limit)
    if state:
        query = query.where(OutboxMail.state == state)
    return [
        {
            "id": m.id, "created_at": m.created_at, "event": m.event, "migration_id": m.migration_id,
            "to": m.to, "cc": m.cc, "subject": m.subject, "state": m.state, "attempts": m.attempts,
            "last_error": m.last_error, "sent_at": m.sent_at, "delivered_via": m.delivered_via,
        }
        for m in session.scalars(query)
    ]
