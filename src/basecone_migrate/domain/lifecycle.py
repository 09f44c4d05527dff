"""The lifecycle of a migration item: its statuses, the events that change one, and who
may cause each. One table, pure functions over plain values; every status change in the
code goes through `next_status` (an item in hand) or `sources` (a guarded ``UPDATE ...
WHERE status IN sources(event)`` of many, see `db/lifecycle.py`).

An item is created ``offered``. From there (docs/domain.md, "Statuses"):

====================  =====================================  ============  =================
event                 from                                   to            who
====================  =====================================  ============  =================
revoke                offered                                revoked       sender
expire                offered, once past its expiry          expired       cron
resend                expired                                offered       sender
redeem                offered                                in_progress   receiver
schedule              offered                                scheduled     receiver
reject                offered                                rejected      receiver
start                 scheduled                              in_progress   worker
complete              in_progress                            completed     worker
fail                  in_progress                            failed        worker
resume                in_progress, failed, paused            in_progress   sender, receiver,
                                                                           worker (not paused)
pause                 scheduled, in_progress                 paused        receiver
cancel                scheduled, in_progress, paused,        cancelled     sender, receiver
                      failed
undo                  completed                              undone        receiver
====================  =====================================  ============  =================

"Sender" and "receiver" are a Superuser of the sending or the receiving environment; a
"worker" is the transfer engine, inline in the redeeming process or on a background
worker; "cron" is whoever runs `expire` (it changes only what time has already decided).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from basecone_migrate.domain.rules import SUPERUSER, is_past_expiry


class ItemStatus(enum.StrEnum):
    """Where one administration's migration stands (the values are stored as they are)."""

    OFFERED = "offered"
    SCHEDULED = "scheduled"
    IN_PROGRESS = "in_progress"
    PAUSED = "paused"
    FAILED = "failed"
    COMPLETED = "completed"
    REVOKED = "revoked"
    EXPIRED = "expired"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    UNDONE = "undone"


class Event(enum.StrEnum):
    """What changes an item's status."""

    REVOKE = "revoke"
    EXPIRE = "expire"
    RESEND = "resend"
    REDEEM = "redeem"
    SCHEDULE = "schedule"
    REJECT = "reject"
    START = "start"
    COMPLETE = "complete"
    FAIL = "fail"
    RESUME = "resume"
    PAUSE = "pause"
    CANCEL = "cancel"
    UNDO = "undo"


class Actor(enum.StrEnum):
    """Who causes an event."""

    SENDER = "sender"      #: a Superuser of the sending environment
    RECEIVER = "receiver"  #: a Superuser of the receiving environment
    WORKER = "worker"      #: the transfer engine, inline or on a background worker
    CRON = "cron"          #: `expire`, run by anyone (time has decided)


S = ItemStatus


@dataclass(frozen=True)
class Transition:
    source: ItemStatus
    event: Event
    target: ItemStatus
    actors: frozenset[Actor]


def _rows() -> tuple[Transition, ...]:
    users = frozenset({Actor.SENDER, Actor.RECEIVER})
    receiver, sender, worker = (frozenset({a}) for a in (Actor.RECEIVER, Actor.SENDER, Actor.WORKER))
    table: list[tuple[Iterable[ItemStatus], Event, ItemStatus, frozenset[Actor]]] = [
        ((S.OFFERED,), Event.REVOKE, S.REVOKED, sender),
        ((S.OFFERED,), Event.EXPIRE, S.EXPIRED, frozenset({Actor.CRON})),
        ((S.EXPIRED,), Event.RESEND, S.OFFERED, sender),
        ((S.OFFERED,), Event.REDEEM, S.IN_PROGRESS, receiver),
        ((S.OFFERED,), Event.SCHEDULE, S.SCHEDULED, receiver),
        ((S.OFFERED,), Event.REJECT, S.REJECTED, receiver),
        ((S.SCHEDULED,), Event.START, S.IN_PROGRESS, worker),
        ((S.IN_PROGRESS,), Event.COMPLETE, S.COMPLETED, worker),
        ((S.IN_PROGRESS,), Event.FAIL, S.FAILED, worker),
        # An interrupted run (still in progress) or a failed one is taken up again by
        # either side's Superuser or by a worker; a paused one only by a person.
        ((S.IN_PROGRESS, S.FAILED), Event.RESUME, S.IN_PROGRESS, users | worker),
        ((S.PAUSED,), Event.RESUME, S.IN_PROGRESS, users),
        ((S.SCHEDULED, S.IN_PROGRESS), Event.PAUSE, S.PAUSED, receiver),
        ((S.SCHEDULED, S.IN_PROGRESS, S.PAUSED, S.FAILED), Event.CANCEL, S.CANCELLED, users),
        ((S.COMPLETED,), Event.UNDO, S.UNDONE, receiver),
    ]
    return tuple(Transition(source, event, target, actors)
                 for sources, event, target, actors in table for source in sources)


#: Every allowed change; anything not here is forbidden.
TRANSITIONS: Final[tuple[Transition, ...]] = _rows()
_BY_KEY: Final = {(t.source, t.event): t for t in TRANSITIONS}

#: An item is created in this status (`offer`).
INITIAL: Final = ItemStatus.OFFERED
#: Redeemed and not finished: the item holds its target code and its administration.
UNFINISHED: Final[tuple[ItemStatus, ...]] = (S.SCHEDULED, S.IN_PROGRESS, S.PAUSED, S.FAILED)
#: The administration is in this migration and in no other (rule: one open migration).
OPEN: Final[tuple[ItemStatus, ...]] = (S.OFFERED, *UNFINISHED)
#: What a transfer (inline, or a worker's job) may take up.
RUNNABLE: Final[tuple[ItemStatus, ...]] = tuple(
    t.source for t in TRANSITIONS if t.event is Event.RESUME and Actor.WORKER in t.actors)
#: Nothing more happens to the item except by these events (resend, undo).
CLOSED: Final[tuple[ItemStatus, ...]] = tuple(s for s in ItemStatus if s not in OPEN)


class ForbiddenTransition(ValueError):
    """An event the table does not allow from this status, or not by this actor: the
    services check first, so meeting this is a bug, or a race a guarded update settles."""

    def __init__(self, status: str, event: Event, actor: Actor | None = None) -> None:
        self.status, self.event, self.actor = status, event, actor
        by = f" by the {actor.value}" if actor is not None else ""
        super().__init__(f"an item {status} cannot {event.value}{by}")


def transition(status: str, event: Event) -> Transition | None:
    """The table's row for ``event`` from ``status``, or None when it is forbidden."""
    try:
        return _BY_KEY.get((ItemStatus(status), event))
    except ValueError:  # not a status at all
        return None


def allows(status: str, event: Event, actor: Actor | None = None) -> bool:
    """Whether the table lets ``event`` (by ``actor``, if given) change ``status``."""
    row = transition(status, event)
    return row is not None and (actor is None or actor in row.actors)


def next_status(status: str, event: Event, actor: Actor) -> ItemStatus:
    """The status after ``event`` caused by ``actor``: ForbiddenTransition otherwise."""
    row = transition(status, event)
    if row is None:
        raise ForbiddenTransition(status, event)
    if actor not in row.actors:
        raise ForbiddenTransition(status, event, actor)
    return row.target


def sources(event: Event, actor: Actor | None = None) -> tuple[ItemStatus, ...]:
    """The statuses ``event`` may change (by ``actor``, if given), in the enum's order."""
    found = {t.source for t in TRANSITIONS if t.event is event and (actor is None or actor in t.actors)}
    return tuple(s for s in ItemStatus if s in found)


def target(event: Event) -> ItemStatus:
    """The one status ``event`` leads to."""
    [status] = {t.target for t in TRANSITIONS if t.event is event}
    return status


def may(actor: Actor, event: Event) -> bool:
    """Whether ``actor`` may cause ``event`` from some status."""
    return any(actor in t.actors for t in TRANSITIONS if t.event is event)


def party(role: str, environment_id: int | None, sending_id: int | None,
          receiving_id: int | None) -> Actor | None:
    """The side a user acts for in a migration: a Superuser of the sending environment is
    the sender, of the receiving one (once known) the receiver; anyone else neither."""
    if role != SUPERUSER or environment_id is None:
        return None
    if environment_id == sending_id:
        return Actor.SENDER
    if environment_id == receiving_id:
        return Actor.RECEIVER
    return None


def effective(status: str, expires_at: datetime, now: datetime) -> ItemStatus:
    """The status as users see it: an offer past its expiry reads ``expired``."""
    if status == S.OFFERED and is_past_expiry(expires_at, now):
        return S.EXPIRED
    return ItemStatus(status)


#: A migration reads as the first of these its items are in (`summary`).
_SUMMARY_ORDER: Final = (S.IN_PROGRESS, S.PAUSED, S.SCHEDULED, S.FAILED, S.OFFERED, S.COMPLETED,
                         S.UNDONE, S.CANCELLED, S.REJECTED, S.REVOKED, S.EXPIRED)


def summary(statuses: Iterable[str]) -> ItemStatus:
    """One word for a migration from its items' (effective) statuses: anything still moving
    first, then what waits, then how it ended. ValueError for a status that is none of
    ours, or for none at all."""
    present = {ItemStatus(s) for s in statuses}
    for status in _SUMMARY_ORDER:
        if status in present:
            return status
    raise ValueError("a migration without items has no status")
