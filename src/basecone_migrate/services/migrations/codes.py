"""The receiver's transfercode: the lock-out after codes that opened nothing, the offer a
code opens (or why none), and spending it once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from basecone_migrate.db.models import (
    Environment,
    FailedRedeem,
    Migration,
    Transfercode,
    User,
)
from basecone_migrate.domain import lifecycle, transfercode
from basecone_migrate.domain.lifecycle import ItemStatus
from basecone_migrate.domain.rules import (
    FAILED_CODE_LIMIT,
    FAILED_CODE_WINDOW,
    can_receive,
    is_past_expiry,
    is_superuser,
    lockout_until,
)
from basecone_migrate.errors import (
    NotAllowed,
    Refused,
)
from basecone_migrate.runtime import Runtime
from basecone_migrate.services import lookup
from basecone_migrate.services.locks import TransferLock
from basecone_migrate.services.migrations.common import (
    item_status,
    items_of,
    recipients_of,
)

#: Redeemed and not finished (a transfer to run, resume, cancel).
UNFINISHED = lifecycle.UNFINISHED


class NoOffer(Refused):
    """The code opens no offer: refused, and counted towards the lock-out."""


class Unfinished(Refused):
    """The code was redeemed and its transfer was not finished when we looked (not a guess:
    not counted). `find_offer` says which: running, interrupted, or just finished."""

    def __init__(self, migration_id: int, when: str) -> None:
        super().__init__(f"this transfercode was redeemed on {when}; see "
                         f"`basecone-migrate status {migration_id}`")
        self.migration_id = migration_id
        self.when = when


def locked_until(s: Session, user_id: int, now: datetime) -> datetime | None:
    recent = list(s.scalars(select(FailedRedeem.at).where(
        FailedRedeem.user_id == user_id, FailedRedeem.at > now - 2 * FAILED_CODE_WINDOW)
        .order_by(FailedRedeem.at.desc()).limit(FAILED_CODE_LIMIT)))
    return lockout_until(recent, now)


def spend_code(s: Session, digest: str, now: datetime) -> None:
    """Spend the code (rule 7, `rules.code_usable`, as a guarded UPDATE: of two redeems or
    rejects at once, one spends it), else Refused."""
    code = Transfercode.__table__.c
    spent = s.execute(update(Transfercode).where(
        code.code_sha256 == digest, code.spent_at.is_(None), code.replaced_at.is_(None),
        code.expires_at > now).values(spent_at=now)).rowcount
    if spent != 1:
        raise Refused("this transfercode was used by someone else a moment ago")


def open_offer(rt: Runtime, s: Session, user: User, code_text: str,
                lock: bool) -> tuple[Migration, str]:
    """The migration a code opens, or NoOffer saying why not."""
    now = rt.now()
    until = locked_until(s, user.id, now)
    if until is not None:
        raise NotAllowed(f"too many transfercodes that opened no offer: redeeming is locked for "
                         f"{user.email} until {until:%Y-%m-%d %H:%M} UTC")
    digest = transfercode.digest(code_text)
    code = s.get(Transfercode, digest) if digest else None
    if code is None:
        raise NoOffer("unknown transfercode: check it against the mail (case, spaces and dashes "
                       "do not matter)")
    migration = lookup.migration(s, code.migration_id, lock=lock)
    if code.replaced_at is not None:
        raise NoOffer(f"this transfercode was replaced by a new one on {code.replaced_at:%Y-%m-%d}: "
                       "use the code from the latest mail")
    items = items_of(s, migration)
    if code.spent_at is not None or migration.redeemed_at is not None:
        when = f"{migration.redeemed_at or code.spent_at:%Y-%m-%d}"
        if migration.reject_reason is None and any(i.status in UNFINISHED for i in items):
            raise Unfinished(migration.id, when)  # not a guess: see find_offer
        how = "rejected" if migration.reject_reason is not None else "redeemed"
        raise NoOffer(f"this transfercode was already used: the offer was {how} on {when}")
    statuses = {item_status(i, now) for i in items}
    if ItemStatus.OFFERED not in statuses:
        if is_past_expiry(code.expires_at, now) or statuses == {ItemStatus.EXPIRED}:
            raise NoOffer(f"this transfercode expired on {code.expires_at:%Y-%m-%d %H:%M} UTC: ask "
                           f"{migration.created_by.email} to resend the offer")
        raise NoOffer("this offer was revoked by its sender")
    return migration, digest  # type: ignore[return-value]


def receiver(rt: Runtime, s: Session, code_text: str, *, rejecting: bool,
              lock: bool = False) -> tuple[User, Migration, str]:
    user = lookup.acting_user(rt, s)
    migration, digest = open_offer(rt, s, user, code_text, lock)
    if not is_superuser(user.role):
        raise NotAllowed(f"{user.email} is not a Superuser: only a Superuser of the receiving "
                         f"environment may {'reject' if rejecting else 'redeem'} an offer")
    if user.email not in recipients_of(s, migration):
        raise NotAllowed(f"{user.email} is not a recipient of this transfercode: only the addresses "
                         f"it was sent to can redeem it; ask {migration.created_by.email} for a new "
                         "offer to your address")
    target = user.environment
    if target.id == migration.source_environment_id:
        raise Refused(f"these administrations are already in your environment {target.code}: a "
                      "transfercode moves them to another environment")
    if migration.offered_to_environment_id not in (None, target.id):  # rule 5: fixed at the offer
        offered_to = s.get(Environment, migration.offered_to_environment_id)
        assert offered_to is not None
        raise NotAllowed(f"this offer is for environment {offered_to.code}, not {target.code}: only "
                         f"a Superuser of {offered_to.code} may {'reject' if rejecting else 'redeem'} it")
    if not rejecting and not can_receive(target.plan):
        raise Refused(f"environment {target.code} is on a {target.plan} plan: only premium "
                      "environments can receive administrations")
    return user, migration, digest


def find_offer(rt: Runtime, code_text: str, *, rejecting: bool) -> int:
    """Look the code up (a code that opens nothing is counted) and return the migration id."""
    user_id = None
    try:
        with rt.uow(read_only=True) as uow:
            user_id = lookup.acting_user(rt, uow.session).id
            _, migration, _ = receiver(rt, uow.session, code_text, rejecting=rejecting)
            return migration.id
    except NoOffer:
        assert user_id is not None
        with rt.uow() as uow:
            uow.session.add(FailedRedeem(user_id=user_id, at=rt.now()))
            uow.commit()
        raise
    except Unfinished as unfinished:
        raise explain_unfinished(rt, unfinished) from None


def explain_unfinished(rt: Runtime, unfinished: Unfinished) -> Refused:
    """Running, interrupted, or finished a moment ago? Asked in this order, outside the
    transaction that saw it unfinished (a read snapshot would not see it finish)."""
    mid, when = unfinished.migration_id, unfinished.when
    if TransferLock(rt, mid).is_running():
        return Refused(f"this transfercode was redeemed on {when} and its transfer is running now: "
                       f"follow it with `basecone-migrate status {mid} --watch`")
    with rt.uow(read_only=True) as uow:
        still = any(i.status in UNFINISHED for i in items_of(uow.session, lookup.migration(uow.session, mid)))
    if still:
        return Refused(f"this transfercode was redeemed on {when} and its transfer did not finish: "
                       f"run `basecone-migrate resume {mid}`")
    return Refused(f"this transfercode was already used: the offer was redeemed on {when}")
