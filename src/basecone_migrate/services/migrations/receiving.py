"""The receiver's side: redeem (take), reject, and resume a transfer that did not finish."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from basecone_migrate.batches import summary
from basecone_migrate.db.lifecycle import change, guarded
from basecone_migrate.db.models import (
    AccountingSystem,
    Administration,
    CatalogueEntry,
    Charge,
    Document,
    Environment,
    FailedRedeem,
    Migration,
    MigrationItem,
    Transfercode,
    User,
)
from basecone_migrate.db.tables import migration_items
from basecone_migrate.domain import lifecycle, mails, transfercode
from basecone_migrate.domain.lifecycle import Actor, Event, ItemStatus
from basecone_migrate.domain.rules import (
    FAILED_CODE_LIMIT,
    FAILED_CODE_WINDOW,
    administration_email,
    can_receive,
    is_superuser,
    lockout_until,
    package_label,
    same_name,
)
from basecone_migrate.errors import (
    BaseconeError,
    NotAllowed,
    Refused,
    TransferIncomplete,
    UsageProblem,
)
from basecone_migrate.mail import Delivery, Postman
from basecone_migrate.runtime import Runtime
from basecone_migrate.services import audit, lookup
from basecone_migrate.services.links import check_link
from basecone_migrate.services.locks import TransferLock
from basecone_migrate.services.lookup import admin_label
from basecone_migrate.services.migrations import search
from basecone_migrate.services.migrations.common import (
    Outcome,
    Questions,
    env_label,
    item_in,
    item_status,
    items_of,
    lines,
    migration_status,
    party,
    queue_mail,
    recipients_of,
    require_mail_settings,
)
from basecone_migrate.services.transfer import NoProgress, Progress, transfer

#: Failed codes: this many within the window locks a user's redeem until the window passes.
REASON_LIMIT = 2000
#: Redeemed and not finished (a transfer to run, resume, cancel).
UNFINISHED = lifecycle.UNFINISHED


class _NoOffer(Refused):
    """The code opens no offer: refused, and counted towards the lock-out."""


class _Unfinished(Refused):
    """The code was redeemed and its transfer was not finished when we looked (not a guess:
    not counted). `_find_offer` says which: running, interrupted, or just finished."""

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


def _spend(s: Session, digest: str, now: datetime) -> None:
    """Spend the code (rule 7, `rules.code_usable`, as a guarded UPDATE: of two redeems or
    rejects at once, one spends it), else Refused."""
    code = Transfercode.__table__.c
    spent = s.execute(update(Transfercode).where(
        code.code_sha256 == digest, code.spent_at.is_(None), code.replaced_at.is_(None),
        code.expires_at > now).values(spent_at=now)).rowcount
    if spent != 1:
        raise Refused("this transfercode was used by someone else a moment ago")


def _open_offer(rt: Runtime, s: Session, user: User, code_text: str,
                lock: bool) -> tuple[Migration, str]:
    """The migration a code opens, or _NoOffer saying why not."""
    now = rt.now()
    until = locked_until(s, user.id, now)
    if until is not None:
        raise NotAllowed(f"too many transfercodes that opened no offer: redeeming is locked for "
                         f"{user.email} until {until:%Y-%m-%d %H:%M} UTC")
    digest = transfercode.digest(code_text)
    code = s.get(Transfercode, digest) if digest else None
    if code is None:
        raise _NoOffer("unknown transfercode: check it against the mail (case, spaces and dashes "
                       "do not matter)")
    migration = lookup.migration(s, code.migration_id, lock=lock)
    if code.replaced_at is not None:
        raise _NoOffer(f"this transfercode was replaced by a new one on {code.replaced_at:%Y-%m-%d}: "
                       "use the code from the latest mail")
    items = items_of(s, migration)
    if code.spent_at is not None or migration.redeemed_at is not None:
        when = f"{migration.redeemed_at or code.spent_at:%Y-%m-%d}"
        if migration.reject_reason is None and any(i.status in UNFINISHED for i in items):
            raise _Unfinished(migration.id, when)  # not a guess: see _find_offer
        how = "rejected" if migration.reject_reason is not None else "redeemed"
        raise _NoOffer(f"this transfercode was already used: the offer was {how} on {when}")
    statuses = {item_status(i, now) for i in items}
    if ItemStatus.OFFERED not in statuses:
        if lifecycle.is_past_expiry(code.expires_at, now) or statuses == {ItemStatus.EXPIRED}:
            raise _NoOffer(f"this transfercode expired on {code.expires_at:%Y-%m-%d %H:%M} UTC: ask "
                           f"{migration.created_by.email} to resend the offer")
        raise _NoOffer("this offer was revoked by its sender")
    return migration, digest  # type: ignore[return-value]


def _receiver(rt: Runtime, s: Session, code_text: str, *, rejecting: bool,
              lock: bool = False) -> tuple[User, Migration, str]:
    user = lookup.acting_user(rt, s)
    migration, digest = _open_offer(rt, s, user, code_text, lock)
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


def _find_offer(rt: Runtime, code_text: str, *, rejecting: bool) -> int:
    """Look the code up (a code that opens nothing is counted) and return the migration id."""
    user_id = None
    try:
        with rt.uow(read_only=True) as uow:
            user_id = lookup.acting_user(rt, uow.session).id
            _, migration, _ = _receiver(rt, uow.session, code_text, rejecting=rejecting)
            return migration.id
    except _NoOffer:
        assert user_id is not None
        with rt.uow() as uow:
            uow.session.add(FailedRedeem(user_id=user_id, at=rt.now()))
            uow.commit()
        raise
    except _Unfinished as unfinished:
        raise _explain_unfinished(rt, unfinished) from None


def _explain_unfinished(rt: Runtime, unfinished: _Unfinished) -> Refused:
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


# -- where each administration goes ------------------------------------------------------------


@dataclass
class _Link:
    item: MigrationItem
    connection: AccountingSystem
    code: str
    name: str  # the administration's name once linked (the catalogue's, with --take-catalogue-name)


def _link_options(s: Session, environment: Environment, package: str) -> list[AccountingSystem]:
    return list(s.scalars(select(AccountingSystem).where(
        AccountingSystem.environment_id == environment.id, AccountingSystem.package == package)
        .order_by(AccountingSystem.id)))


def _item_view(item: MigrationItem) -> dict[str, Any]:
    return {"administration_id": item.administration_id, "code": item.source_code, "name": item.name,
            "package": item.package, "email": item.source_email}


def _option_view(s: Session, connection: AccountingSystem) -> dict[str, Any]:
    entries = s.execute(select(CatalogueEntry.code, CatalogueEntry.name).where(
        CatalogueEntry.accounting_system_id == connection.id).order_by(CatalogueEntry.code)).all()
    return {"id": connection.id, "name": connection.name,
            "catalogue": [{"code": c, "name": n} for c, n in entries]}


def _plan_links(s: Session, chosen: list[MigrationItem], items: list[MigrationItem],
                links: Sequence[tuple[str, str, str | None]], target: Environment,
                ask: Questions | None, lines: Sequence[int] | None = None,
                take_name: bool = False) -> list[_Link]:
    """Where each taken administration goes. ``lines`` (a batch from `--links FILE`, one per
    link) collects every refused link, named by its line, instead of stopping at the first.
    ``take_name``: an administration linked to an entry of another name takes that name."""
    problems: list[tuple[str, str]] = []

    def attempt(where: str, check: Any) -> Any:
        if lines is None:
            return check()
        try:
            return check()
        except BaseconeError as exc:
            problems.append((where, exc.message))
            return None

    explicit: dict[int, tuple[str, str | None]] = {}
    line_of: dict[int, str] = {}
    for position, (reference, connection_id, code) in enumerate(links):
        where = f"line {lines[position]}" if lines is not None else ""

        def claim(reference: str = reference) -> MigrationItem:
            item = item_in(items, reference)
            if item not in chosen:
                raise UsageProblem(f"--link names {admin_label(item)}, which is not taken (see --select)")
            if item.id in explicit:
                raise UsageProblem(f"--link names {admin_label(item)} twice")
            return item

        item = attempt(where, claim)
        if item is not None:
            explicit[item.id] = (connection_id, code)
            line_of[item.id] = where
    plans: list[_Link] = []
    for item in chosen:
        plan = attempt(line_of.get(item.id) or admin_label(item),
                       lambda item=item: _plan_one(s, item, explicit, target, ask, plans, take_name))
        if plan is not None:
            plans.append(plan)
    if problems:
        named = summary([f"{where}: {message}" for where, message in problems])
        raise Refused(f"{len(problems)} of {len(links)} links refused, so nothing changed: {named}")
    return plans


def _plan_one(s: Session, item: MigrationItem, explicit: dict[int, tuple[str, str | None]],
              target: Environment, ask: Questions | None, plans: list[_Link],
              take_name: bool = False) -> _Link:
    admin = item.administration
    package = admin.accounting_system.package
    if item.id in explicit:
        connection_id, code = explicit[item.id]
        connection = lookup.accounting_system(s, connection_id)
        code = code or admin.code
    else:
        options = _link_options(s, target, package)
        if not options:
            raise Refused(f"environment {target.code} has no {package_label(package)} connection "
                          f"for {admin_label(item)}: add one first (the package never changes)")
        matching = [c for c in options if any(same_name(name, admin.name) for name in s.scalars(
            select(CatalogueEntry.name).where(CatalogueEntry.accounting_system_id == c.id,
                                              CatalogueEntry.code == admin.code)))]
        if len(matching) == 1:
            connection, code = matching[0], admin.code
        elif ask is not None:
            connection_id, code = ask.link(_item_view(item), [_option_view(s, c) for c in options])
            connection = lookup.accounting_system(s, connection_id)
        else:
            why = (f"{len(matching)} connections have {admin.code} {admin.name} in their catalogue"
                   if matching else f"no connection has {admin.code} {admin.name} in its catalogue")
            names = ", ".join(c.id for c in (matching or options))
            raise UsageProblem(f"say where {admin_label(item)} goes with --link "
                               f"{item.source_code}=CONNECTION[:CODE] ({why}; "
                               f"{package_label(package)} connections: {names})")
    name = check_link(s, admin, connection, code, target, take_name=take_name)
    for other in plans:
        if (other.connection.id, other.code) == (connection.id, code):
            raise Refused(f"{admin_label(other.item)} and {admin_label(item)} are both linked to "
                          f"code {code} of connection {connection.id}")
        if (other.code, other.name) == (code, name):
            raise Refused(f"{admin_label(other.item)} and {admin_label(item)} would both be "
                          f"{code} {name} in {target.code}")
    return _Link(item, connection, code, name)


# -- redeem -------------------------------------------------------------------------------------


@dataclass
class _Decision:
    user: User
    migration: Migration
    digest: str
    target: Environment
    plans: list[_Link]
    left: list[MigrationItem]
    reason: str | None = None  # why the others are rejected (asked, or --reason)


def _decide(rt: Runtime, s: Session, code_text: str, accept_terms: bool, select_: Sequence[str],
            links: Sequence[tuple[str, str, str | None]], ask: Questions | None,
            lock: bool, link_lines: Sequence[int] | None = None,
            reason: str | None = None, take_name: bool = False) -> _Decision:
    """Every check of a redeem, in the contract's order; asks what is missing when it may,
    and nothing that the options answer: the terms unless accepted, which administrations
    only when several are offered and neither --select nor a link names them, a link only
    where no single connection has the administration's code and name."""
    now = rt.now()
    fee = rt.settings.fee
    user, migration, digest = _receiver(rt, s, code_text, rejecting=False, lock=lock)
    target = user.environment
    items = items_of(s, migration)
    offered = [i for i in items if lifecycle.allows(item_status(i, now), Event.REDEEM)]
    if not accept_terms and not (ask and ask.accept_terms(str(fee), len(offered), target.code)):
        raise Refused(f"accept the terms and the costs ({fee} per administration, invoiced to "
                      f"{target.code}) with --accept-terms (read them first: "
                      "`basecone-migrate terms`)")
    if select_:
        chosen: list[MigrationItem] = []
        for reference in select_:
            item = item_in(items, reference)
            if item not in offered:
                raise Refused(f"{admin_label(item)} is {item_status(item, now)}, not offered")
            if item not in chosen:
                chosen.append(item)
    elif ask is not None and not links and len(offered) > 1:
        chosen, reason = _ask_selection(ask, offered, reason)
    else:
        chosen = offered
    if not chosen:
        raise UsageProblem("take at least one administration with --select, or use --reject")
    plans = _plan_links(s, chosen, items, links, target, ask, link_lines, take_name)
    return _Decision(user, migration, digest, target, plans, [i for i in offered if i not in chosen],
                     reason)


def _ask_selection(ask: Questions, offered: list[MigrationItem],
                   reason: str | None) -> tuple[list[MigrationItem], str | None]:
    """Which administrations a person takes; what they leave is rejected (its sender is
    mailed), so that is said and confirmed, with a reason, before anything is decided. A
    person who does not confirm chooses again."""
    views = [_item_view(i) for i in offered]
    while True:
        wanted = set(ask.select(views))
        chosen = [i for i in offered if i.administration_id in wanted]
        left = [view for view in views if view["administration_id"] not in wanted]
        if not chosen or not left:
            return chosen, reason
        confirmed = ask.confirm_rejection(left, reason)
        if confirmed is not None:
            return chosen, confirmed


def _documents(s: Session, administration_id: int) -> tuple[int, int]:
    count, size = s.execute(select(func.count(Document.id), func.coalesce(func.sum(Document.size), 0))
                            .where(Document.administration_id == administration_id)).one()
    return int(count), int(size)


def redeem(
    rt: Runtime,
    code_text: str,
    *,
    accept_terms: bool,
    select_: Sequence[str] = (),
    links: Sequence[tuple[str, str, str | None]] = (),
    reason: str | None = None,
    dry_run: bool = False,
    ask: Questions | None = None,
    progress: Progress | None = None,
    background: bool = False,
    link_lines: Sequence[int] | None = None,
    take_name: bool = False,
) -> Outcome:
    """Take what a code offers, then move the archives: here, inline, or (``background``)
    by workers, with the items left ``in_progress`` and one queued job per item.
    ``take_name``: an administration linked to a catalogue entry of another name takes that
    name at the switch (without it, such a link is refused)."""
    _check_reason(reason)
    if background:
        from basecone_migrate.services.background import require_postgres

        require_postgres(rt)
    require_mail_settings(rt)
    migration_id = _find_offer(rt, code_text, rejecting=False)
    if ask is not None:
        # Questions first, in a read-only pass: nobody waits on a lock while a person thinks.
        with rt.uow(read_only=True) as uow:
            asked = _decide(rt, uow.session, code_text, accept_terms, select_, links, ask, lock=False,
                            reason=reason, take_name=take_name)
            accept_terms = True
            reason = asked.reason
            _check_reason(reason)  # as if given with --reason
            select_ = [str(p.item.administration_id) for p in asked.plans]
            links = [(str(p.item.administration_id), p.connection.id, p.code) for p in asked.plans]
    if dry_run:
        with rt.uow(read_only=True) as uow:
            decision = _decide(rt, uow.session, code_text, accept_terms, select_, links, None, lock=False,
                               link_lines=link_lines, take_name=take_name)
            return Outcome(_dry_run(uow.session, decision, rt))
    # Held from before the checks until the transfer ends: a concurrent redeem of the same
    # code, or a resume, is refused instead of racing (the guarded UPDATEs still decide).
    # (In the background the items' locks are the workers' to take: the jobs are visible the
    # moment the redeem commits.)
    with TransferLock(rt, migration_id, items=not background):
        outcome = _take(rt, code_text, accept_terms, select_, links, reason, background, link_lines,
                        take_name)
        if not background:
            outcome.delivery.merge(_transfer(rt, migration_id, progress))
    outcome.payload = _redeem_payload(rt, migration_id)
    return outcome


def _dry_run(s: Session, decision: _Decision, rt: Runtime) -> dict[str, Any]:
    target = decision.target
    rows = [{"administration_id": p.item.administration_id, "administration": p.name,
             "renamed_from": p.item.name if p.name != p.item.name else None,
             "status": ItemStatus.OFFERED.value, "action": "take", "accounting_system": p.connection.id,
             "code": p.code, "email": administration_email(target.code, p.code),
             **dict(zip(("documents", "bytes"), _documents(s, p.item.administration_id), strict=True))}
            for p in decision.plans]
    rows += [{"administration_id": i.administration_id, "administration": i.name, "renamed_from": None,
              "status": ItemStatus.OFFERED.value, "action": "reject",
              "accounting_system": i.source_accounting_system_id, "code": i.source_code,
              "email": i.source_email,
              **dict(zip(("documents", "bytes"), _documents(s, i.administration_id), strict=True))}
             for i in decision.left]
    return {"dry_run": True, "migration_id": decision.migration.id, "status": ItemStatus.OFFERED.value,
            "fee": str(rt.settings.fee), "items": rows}


def _take(rt: Runtime, code_text: str, accept_terms: bool, select_: Sequence[str],
          links: Sequence[tuple[str, str, str | None]], reason: str | None,
          background: bool = False, link_lines: Sequence[int] | None = None,
          take_name: bool = False) -> Outcome:
    now = rt.now()
    fee = rt.settings.fee
    with rt.uow() as uow:
        s = uow.session
        d = _decide(rt, s, code_text, accept_terms, select_, links, None, lock=True, link_lines=link_lines,
                    take_name=take_name)
        _check_archives(rt, d.migration.source_environment, d.target)
        # The administrations' rows are held too: no document joins an archive that is about
        # to move (archive add and load take the same lock).
        s.execute(select(Administration.id).where(
            Administration.id.in_([p.item.administration_id for p in d.plans])).with_for_update())
        _spend(s, d.digest, now)
        migration = d.migration
        migration.redeemed_at = now
        migration.redeemed_by_id = d.user.id
        migration.target_environment_id = d.target.id
        for plan in d.plans:
            documents, size = _documents(s, plan.item.administration_id)
            taken = s.execute(guarded(Event.REDEEM, Actor.RECEIVER, migration_items.c.id == plan.item.id)
                .values(phase="copying",
                        target_accounting_system_id=plan.connection.id, target_code=plan.code,
                        target_email=administration_email(d.target.code, plan.code),
                        target_name=plan.name if plan.name != plan.item.name else None,
                        documents_total=documents, bytes_total=size)).rowcount
            if taken != 1:
                raise Refused(f"{admin_label(plan.item)} was revoked a moment ago")
            s.add(Charge(environment_id=d.target.id, item_id=plan.item.id, currency=fee.currency,
                         amount_cents=fee.cents, created_at=now))
            audit.record(s, at=now, actor=d.user.email, action="redeem",
                         administration_id=plan.item.administration_id, migration_id=migration.id,
                         environment=d.target.code, accounting_system=plan.connection.id,
                         code=plan.code, fee=str(fee),
                         **({"name": plan.name} if plan.name != plan.item.name else {}))
        search.refresh(s, migration.id)  # a receiver and connections to find them by
        mail_ids = [queue_mail(rt, s, mails.started(
            migration_id=migration.id, sender=party(migration.created_by), receiver=party(d.user),
            target=env_label(d.target), admins=lines([p.item for p in d.plans])), migration.id)]
        if d.left:
            mail_ids.append(_reject_left(rt, s, d.user, migration, d.left, reason or "not selected", now))
        if background:  # in this transaction: no job without the change, no change without its jobs
            from basecone_migrate.services.background import enqueue

            enqueue(s, [p.item.id for p in d.plans], d.user.email, rt)
        uow.commit()
    return Outcome({}, Postman(rt).deliver(mail_ids))


def _check_archives(rt: Runtime, source: Environment, target: Environment | None) -> None:
    """The archives a transfer will use can be opened as configured (a driver, an endpoint,
    credentials: else 2), are this database's (else 1), and are two places: two names of
    one folder or bucket, or one inside the other, would have the move remove what it
    moved (1). Refused before the command changes anything."""
    archive = rt.archive(source, claim=False)  # checked first: a refusal writes nothing
    other = rt.archive(target, claim=False) if target is not None else None
    if other is not None and archive.overlaps(other):
        how = "are one place" if archive.same_place(other) else "are one inside the other"
        raise Refused(f"the archives of {source.code} ({archive.url}) and {target.code} "  # type: ignore[union-attr]
                      f"({other.url}) {how}: a move between them could remove what it moved; "
                      "give each environment a storage of its own in the world file")
    for environment in (source, target):
        if environment is not None:
            rt.archive(environment)  # marked as this database's


def _transfer(rt: Runtime, migration_id: int, progress: Progress | None) -> Delivery:
    try:
        return transfer(rt, migration_id, rt.settings.user or audit.SYSTEM, progress or NoProgress())
    except TransferIncomplete as incomplete:
        raise TransferIncomplete(incomplete.message, payload=_redeem_payload(rt, migration_id)) from None


def _check_reason(reason: str | None) -> None:
    if reason is not None and len(reason) > REASON_LIMIT:
        raise UsageProblem(f"--reason is {len(reason)} characters; keep it under {REASON_LIMIT}")


def _reject_left(rt: Runtime, s: Session, user: User, migration: Migration,
                 items: Sequence[MigrationItem], reason: str | None, now: datetime) -> int:
    ids = [i.id for i in items]
    changed = s.execute(guarded(Event.REJECT, Actor.RECEIVER, migration_items.c.id.in_(ids))
                        .values(finished_at=now)).rowcount
    if changed != len(ids):
        raise Refused("the offer changed a moment ago (revoked?): see `basecone-migrate status`")
    for item in items:
        audit.record(s, at=now, actor=user.email, action="reject", administration_id=item.administration_id,
                     migration_id=migration.id, reason=reason)
    return queue_mail(rt, s, mails.reject(
        migration_id=migration.id, sender=party(migration.created_by), receiver=party(user),
        target=env_label(user.environment), admins=lines(items), reason=reason), migration.id)


def reject(rt: Runtime, code_text: str, *, reason: str | None, dry_run: bool = False) -> Outcome:
    _check_reason(reason)
    require_mail_settings(rt)
    now = rt.now()
    migration_id = _find_offer(rt, code_text, rejecting=True)
    with rt.uow(read_only=dry_run) as uow:
        s = uow.session
        user, migration, digest = _receiver(rt, s, code_text, rejecting=True, lock=not dry_run)
        offered = [i for i in items_of(s, migration) if lifecycle.allows(item_status(i, now), Event.REJECT)]
        if dry_run:
            return Outcome({"dry_run": True, "migration_id": migration_id, "status": ItemStatus.OFFERED.value,
                            "items": [{**_item_view(i), "action": "reject"} for i in offered]})
        _spend(s, digest, now)
        migration.redeemed_at = now
        migration.redeemed_by_id = user.id
        migration.target_environment_id = user.environment_id
        migration.reject_reason = reason or ""
        search.refresh(s, migration.id)
        mail_id = _reject_left(rt, s, user, migration, offered, reason, now)
        uow.commit()
    return Outcome(_redeem_payload(rt, migration_id), Postman(rt).deliver([mail_id]))


# -- results and resume --------------------------------------------------------------------------


def _result_items(s: Session, migration: Migration, now: datetime) -> list[dict[str, Any]]:
    rows = []
    for item in items_of(s, migration):
        taken = item.target_accounting_system_id is not None and item.status != ItemStatus.REJECTED
        if taken:
            target = migration.target_environment
            assert target is not None
            documents, size = item.documents_total, item.bytes_total
            where = (item.target_accounting_system_id, item.target_code,
                     item.target_email or administration_email(target.code, item.target_code or ""))
        else:  # not taken: still where it was, with its archive
            documents, size = _documents(s, item.administration_id)
            where = (item.source_accounting_system_id, item.source_code, item.source_email)
        renamed = taken and item.target_name is not None
        rows.append({
            "administration_id": item.administration_id,
            "administration": item.target_name if renamed else item.name,
            "renamed_from": item.name if renamed else None,
            "status": item_status(item, now),
            "accounting_system": where[0],
            "code": where[1],
            "email": where[2],
            "documents": documents,
            "bytes": size,
        })
    return rows


def _redeem_payload(rt: Runtime, migration_id: int) -> dict[str, Any]:
    now = rt.now()
    with rt.uow(read_only=True) as uow:
        migration = lookup.migration(uow.session, migration_id)
        items = _result_items(uow.session, migration, now)
        return {"migration_id": migration.id, "status": migration_status([i["status"] for i in items]),
                "items": items}


def resume(rt: Runtime, migration_id: int, progress: Progress | None = None,
           background: bool = False) -> Outcome:
    """Finish an unfinished transfer: a Superuser of either side may; here, or
    (``background``) by queueing a job for each unfinished item."""
    if background:
        from basecone_migrate.services.background import require_postgres

        require_postgres(rt)
    require_mail_settings(rt)
    now = rt.now()
    with rt.uow(read_only=True) as uow:
        s = uow.session
        user = lookup.acting_user(rt, s)
        migration = lookup.migration(s, migration_id)
        side = lifecycle.party(user.role, user.environment_id, migration.source_environment_id,
                               migration.target_environment_id)
        if side is None or not lifecycle.may(side, Event.RESUME):
            offices = " or ".join(e.code for e in (migration.source_environment,
                                                   migration.target_environment) if e is not None)
            raise NotAllowed(f"{user.email} is not a Superuser of {offices}: only they may resume "
                             f"migration {migration_id}")
        statuses = [item_status(i, now) for i in items_of(s, migration)]
        resumable = lifecycle.sources(Event.RESUME, side)
        if any(state in resumable for state in statuses):
            _check_archives(rt, migration.source_environment, migration.target_environment)
    if not any(state in resumable for state in statuses):
        if ItemStatus.OFFERED in statuses:
            raise Refused(f"migration {migration_id} has not been redeemed yet: there is no "
                          "transfer to resume")
        return Outcome(_redeem_payload(rt, migration_id),
                       warnings=[f"nothing to resume: migration {migration_id} is "
                                 f"{migration_status(statuses)}"])
    if background:
        return Outcome(_redeem_payload(rt, migration_id), warnings=_queue_unfinished(rt, migration_id, side))
    with TransferLock(rt, migration_id):
        delivery = _transfer(rt, migration_id, progress)
    return Outcome(_redeem_payload(rt, migration_id), delivery)


def _queue_unfinished(rt: Runtime, migration_id: int, side: Actor) -> list[str]:
    """Queue a job for each item ``side`` may resume (`resume --background`); a failed one is
    set back in progress, as an inline resume does when it starts it."""
    from basecone_migrate.services.background import enqueue

    with rt.uow() as uow:
        s = uow.session
        migration = lookup.migration(s, migration_id, lock=True)
        items = [i for i in items_of(s, migration) if lifecycle.allows(i.status, Event.RESUME, side)]
        for item in items:
            change(item, Event.RESUME, side)
        queued = enqueue(s, [i.id for i in items], rt.settings.user or audit.SYSTEM, rt)
        uow.commit()
    waiting = len(items) - queued
    return [f"{waiting} of {len(items)} administrations were already waiting in the queue"] if waiting else []
