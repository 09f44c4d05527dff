"""`mail list`, `mail show` and `mail flush`: the outbox as it stands, and its delivery."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from basecone_migrate.runtime import Runtime

if TYPE_CHECKING:
    from basecone_migrate.mail import Delivery


def mails(rt: Runtime, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """The outbox, most recent first (never a body)."""
    from basecone_migrate.mail import mail_rows

    with rt.reading() as db:
        return mail_rows(db, state, limit)


def mail(rt: Runtime, mail_id: int) -> dict[str, Any]:
    """One mail as its recipients read it (NotFound, exit 3, for an id no mail has)."""
    from basecone_migrate.mail import mail_detail

    with rt.reading() as db:
        return mail_detail(db, mail_id)


def flush(rt: Runtime) -> Delivery:
    """`mail flush`: deliver every queued mail, each once (the mail settings checked first)."""
    from basecone_migrate.mail import Postman, check_mail

    check_mail(rt)
    return Postman(rt).deliver()
