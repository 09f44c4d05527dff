"""The mails the tool sends: who gets them and what they say. Plain text, no I/O.

Only offer and resend mails carry a transfercode (``carries_code``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from basecone_migrate.domain.receipts import Receipt
from basecone_migrate.domain.rules import package_label

RULE = "-" * 64


@dataclass(frozen=True)
class Mail:
    event: str
    to: list[str]
    subject: str
    body: str
    cc: list[str] = field(default_factory=list)
    carries_code: bool = False


@dataclass(frozen=True)
class Party:
    name: str
    email: str


class AdminLine(NamedTuple):  # a tuple: `expire` makes one per item, 100,000 at a time
    name: str
    code: str
    package: str
    email: str = ""

    def line(self) -> str:
        return f"  - {self.name} (code {self.code}, {package_label(self.package)})"


def _utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _lines(admins: Sequence[AdminLine]) -> str:
    return "\n".join(a.line() for a in admins)


def offer(*, migration_id: int, code: str, expires_at: datetime, sender: Party, source: str,
          recipients: list[str], admins: Sequence[AdminLine], fee: str, resent: bool = False,
          target: str | None = None) -> Mail:
    again = " (a new code: the previous one no longer works)" if resent else ""
    into = target or "your Basecone environment"
    who = target or "the receiving (premium) environment"
    body = f"""Hello,

{sender.name} ({sender.email}) of {source} offers you {_plural(len(admins), 'administration')}
to move into {into}{again}:

{_lines(admins)}

Transfercode: {code}
Valid until:  {_utc(expires_at)}, and only once.

To take them, as a Superuser of {who}:

  basecone-migrate --as YOUR-EMAIL redeem --accept-terms

which asks for the code without showing it. A code typed on the command line
(redeem {code} --accept-terms) shows in the process list and the shell history:
in a script, put it in a file only you can read and pass --code-file FILE, or
--code-file - to read it from standard input.

Or in Basecone: Administrations > Migrate administration(s) > Retrieve one or
more administrations. Redeeming accepts the terms and the costs ({fee} per
administration, invoiced to the receiving environment). You choose which
administrations to take and the accounting system to link each to (with
--link ADMIN=CONNECTION[:CODE]); or decline with --reject --reason TEXT.

Users, their access and authorisation workflows are not transferred.

{RULE}
Migration {migration_id}. {sender.name} receives a copy of this mail.
"""
    return Mail(
        event="resend" if resent else "offer",
        to=recipients,
        cc=[sender.email],
        subject=f"Transfercode for {_plural(len(admins), 'administration')} from {source}",
        body=body,
        carries_code=True,
    )


def revoke(*, migration_id: int, sender: Party, source: str, recipients: list[str],
           admins: Sequence[AdminLine]) -> Mail:
    body = f"""Hello,

{sender.name} ({sender.email}) of {source} has withdrawn the offer of:

{_lines(admins)}

The transfercode no longer opens these administrations. Nothing needs to be done.

{RULE}
Migration {migration_id}.
"""
    return Mail("revoke", recipients, f"Migration offer withdrawn by {source}", body)


def reject(*, migration_id: int, sender: Party, receiver: Party, target: str,
           admins: Sequence[AdminLine], reason: str | None) -> Mail:
    because = reason or "(no reason given)"
    body = f"""Hello {sender.name},

{receiver.name} ({receiver.email}) of {target} did not take:

{_lines(admins)}

Reason: {because}

These administrations stay in your environment; the migration overview shows them
as rejected. You can offer them again.

{RULE}
Migration {migration_id}.
"""
    return Mail("reject", [sender.email], f"Migration rejected by {target}", body)


def started(*, migration_id: int, sender: Party, receiver: Party, target: str,
            admins: Sequence[AdminLine]) -> Mail:
    body = f"""Hello {sender.name},

{receiver.name} ({receiver.email}) of {target} accepted your offer. The migration
of these administrations has started:

{_lines(admins)}

You will get another mail when it is complete.

{RULE}
Migration {migration_id}.
"""
    return Mail("redeem", [sender.email], f"Migration started by {target}", body)


def completed(*, migration_id: int, sender: Party, receiver: Party, source: str, target: str,
              admins: Sequence[AdminLine], receipts: Sequence[Receipt | None] = ()) -> Mail:
    def moved_line(admin: AdminLine, receipt: Receipt | None) -> str:
        line = f"{admin.line()}\n      new mail address: {admin.email}"
        if receipt is not None:
            line += (f"\n      archive as it arrived: {_plural(receipt.documents, 'document')}, "
                     f"{receipt.bytes} bytes, digest {receipt.digest}")
        return line

    moved = "\n".join(moved_line(a, r) for a, r in zip(admins, receipts or [None] * len(admins),
                                                          strict=True))
    body = f"""Hello,

The migration from {source} to {target} is complete. These administrations now
belong to {target}, with their whole archive:

{moved}

Suppliers should send invoices to the new mail addresses.

The digest of an archive is the SHA-256 of the SHA-256 of its documents, one per line, in
ascending order: `basecone-migrate archive verify --json` gives it for the archive as it is.

Reminder: users and their access were not transferred. {receiver.name}, give users
access to the administrations (repeat --user for more users):

  basecone-migrate --as {receiver.email} access grant --migration {migration_id} --user EMAIL

or in Basecone: Settings > Administrations > Users > Access = Yes.

{RULE}
Migration {migration_id}.
"""
    to = list(dict.fromkeys([sender.email, receiver.email]))
    return Mail("completed", to, f"Migration complete: {_plural(len(admins), 'administration')} "
                f"moved to {target}", body)


def returned(*, event: str, migration_id: int, by: Party, sender: Party, receiver: Party,
             source: str, target: str, admins: Sequence[AdminLine], reason: str | None) -> Mail:
    """A cancelled or undone move (``event``: ``cancel`` or ``undo``), to both sides: the
    administrations are back in the sending environment. It carries no code."""
    what = ("stopped the migration before it completed" if event == "cancel"
            else "undid the completed migration")
    body = f"""Hello,

{by.name} ({by.email}) {what} from {source} to {target}.
These administrations are back in {source}, with their old connection, code and mail
address and every document of their archive (also those added since):

{_lines(admins)}

Reason: {reason or "(no reason given)"}

The migration fee is credited back to {target}.

{RULE}
Migration {migration_id}.
"""
    to = list(dict.fromkeys([sender.email, receiver.email]))
    subject = ("Migration cancelled" if event == "cancel" else "Migration undone")
    return Mail(event, to, f"{subject}: {_plural(len(admins), 'administration')} back in {source}", body)


def expired(*, sender: Party, offers: Sequence[tuple[int, str, Sequence[AdminLine]]]) -> Mail:
    parts = "\n\n".join(f"Migration {mid} (offered to {to}):\n{_lines(admins)}"
                        for mid, to, admins in offers)
    count = sum(len(admins) for _, _, admins in offers)
    body = f"""Hello {sender.name},

The transfercode of these offers expired before anyone redeemed it:

{parts}

The administrations stay in your environment. To offer them again to the same
recipients, with a new transfercode valid for 15 days, resend the offer (MIGRATION is
its number above):

  basecone-migrate --as {sender.email} resend MIGRATION
"""
    return Mail("expire", [sender.email], f"Migration offer expired: {_plural(count, 'administration')}",
                body)
