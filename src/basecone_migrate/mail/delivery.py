"""Delivery: over SMTP through yagmail (STARTTLS and the login done here, with certificate
checks), or, without an SMTP host, as ``.eml`` files in the outbox folder, never written
through a symbolic link. yagmail is imported only when a connection is opened."""

from __future__ import annotations

import errno
import os
import ssl
import stat
from pathlib import Path
from typing import Any

from basecone_migrate.errors import UsageProblem
from basecone_migrate.mail.render import file_name, message_bytes
from basecone_migrate.runtime import Runtime
from basecone_migrate.settings import Settings

LOOPBACK = ("127.0.0.1", "::1", "localhost")


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


class Transport:
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
            path = write_mail_file(self.rt.claim_outbox(), file_name(row), message)
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


def describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if not text.startswith(type(exc).__name__) else text
