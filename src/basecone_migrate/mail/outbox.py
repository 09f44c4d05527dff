"""The outbox: mails are rows written in the transaction of the change they report
(`queue`), claimed with a guarded UPDATE and delivered only after that transaction commits
(`Postman`), and listed for `mail list` / `mail show`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, case, insert, null, or_, select, update

from basecone_migrate.db.tables import outbox
from basecone_migrate.domain.mails import Mail
from basecone_migrate.mail.delivery import Transport, describe
from basecone_migrate.runtime import Runtime

#: A mail claimed by a process that then died is offered again after this long.
STALE_CLAIM = timedelta(minutes=10)
#: Mails claimed in one statement.
CLAIM_BATCH = 200


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

    def _send_batch(self, transport: Transport, rows: list[Any], result: Delivery,
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
                    why = describe(exc)
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
        transport = Transport(self.rt)
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
            result.trouble = describe(exc)
        finally:
            transport.close()
        return result


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
