"""The migration item's state machine (domain/lifecycle.py), on its own: no database."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from basecone_migrate.domain import lifecycle, rules
from basecone_migrate.domain.lifecycle import Actor, Event, ForbiddenTransition, ItemStatus

SENDER, RECEIVER, WORKER, CRON = Actor.SENDER, Actor.RECEIVER, Actor.WORKER, Actor.CRON

#: The contract's lifecycle, written out again by hand (../shared/spec/cli.md and
#: docs/domain.md): (from, event) -> (to, who). Everything else is forbidden.
SPEC: dict[tuple[str, str], tuple[str, set[Actor]]] = {
    ("offered", "revoke"): ("revoked", {SENDER}),
    ("offered", "expire"): ("expired", {CRON}),
    ("expired", "resend"): ("offered", {SENDER}),
    ("offered", "redeem"): ("in_progress", {RECEIVER}),
    ("offered", "schedule"): ("scheduled", {RECEIVER}),
    ("offered", "reject"): ("rejected", {RECEIVER}),
    ("scheduled", "start"): ("in_progress", {WORKER}),
    ("in_progress", "complete"): ("completed", {WORKER}),
    ("in_progress", "fail"): ("failed", {WORKER}),
    ("in_progress", "resume"): ("in_progress", {SENDER, RECEIVER, WORKER}),
    ("failed", "resume"): ("in_progress", {SENDER, RECEIVER, WORKER}),
    ("paused", "resume"): ("in_progress", {SENDER, RECEIVER}),
    ("scheduled", "pause"): ("paused", {RECEIVER}),
    ("in_progress", "pause"): ("paused", {RECEIVER}),
    ("scheduled", "cancel"): ("cancelled", {SENDER, RECEIVER}),
    ("in_progress", "cancel"): ("cancelled", {SENDER, RECEIVER}),
    ("paused", "cancel"): ("cancelled", {SENDER, RECEIVER}),
    ("failed", "cancel"): ("cancelled", {SENDER, RECEIVER}),
    ("completed", "undo"): ("undone", {RECEIVER}),
}


def test_the_statuses_are_todays_seven_and_the_four_the_control_commands_need() -> None:
    assert {s.value for s in ItemStatus} == {
        "offered", "revoked", "expired", "rejected", "in_progress", "completed", "failed",
        "scheduled", "paused", "cancelled", "undone"}


@pytest.mark.parametrize(("status", "event", "actor"),
                         list(itertools.product(ItemStatus, Event, Actor)),
                         ids=lambda v: v.value)
def test_every_status_event_and_actor_is_allowed_exactly_as_the_contract_says(
        status: ItemStatus, event: Event, actor: Actor) -> None:
    allowed = SPEC.get((status.value, event.value))
    if allowed is not None and actor in allowed[1]:
        assert lifecycle.next_status(status, event, actor) == allowed[0]
        assert lifecycle.allows(status, event, actor)
    else:
        with pytest.raises(ForbiddenTransition) as refused:
            lifecycle.next_status(status, event, actor)
        assert refused.value.status == status and refused.value.event is event
        assert not lifecycle.allows(status, event, actor)
    assert lifecycle.allows(status, event) == (allowed is not None)


def test_the_table_holds_nothing_the_contract_does_not() -> None:
    table = {(t.source.value, t.event.value): (t.target.value, set(t.actors)) for t in lifecycle.TRANSITIONS}
    assert table == SPEC
    assert len(lifecycle.TRANSITIONS) == len(SPEC)  # no row twice


def test_each_event_leads_to_one_status_and_sources_list_where_it_may_start() -> None:
    for event in Event:
        assert {lifecycle.target(event).value} == {to for (_, e), (to, _) in SPEC.items() if e == event}
        assert {s.value for s in lifecycle.sources(event)} == {f for (f, e) in SPEC if e == event}
    assert lifecycle.sources(Event.RESUME, WORKER) == (ItemStatus.IN_PROGRESS, ItemStatus.FAILED)
    assert lifecycle.sources(Event.RESUME, RECEIVER) == (
        ItemStatus.IN_PROGRESS, ItemStatus.PAUSED, ItemStatus.FAILED)
    assert lifecycle.may(CRON, Event.EXPIRE) and not lifecycle.may(SENDER, Event.EXPIRE)
    assert not lifecycle.may(WORKER, Event.REDEEM) and not lifecycle.may(SENDER, Event.PAUSE)


def test_open_unfinished_and_closed_split_the_statuses() -> None:
    assert lifecycle.UNFINISHED == (ItemStatus.SCHEDULED, ItemStatus.IN_PROGRESS, ItemStatus.PAUSED,
                                    ItemStatus.FAILED)
    assert lifecycle.OPEN == (ItemStatus.OFFERED, *lifecycle.UNFINISHED)
    assert set(lifecycle.OPEN) | set(lifecycle.CLOSED) == set(ItemStatus)
    assert not set(lifecycle.OPEN) & set(lifecycle.CLOSED)
    assert lifecycle.RUNNABLE == (ItemStatus.IN_PROGRESS, ItemStatus.FAILED)
    assert lifecycle.INITIAL is ItemStatus.OFFERED
    # A closed item changes only by resend (expired) or undo (completed).
    for status in lifecycle.CLOSED:
        leaving = {e for (f, e) in SPEC if f == status.value}
        assert leaving <= {"resend", "undo"}, status


def test_an_offer_reads_expired_from_its_expiry_on() -> None:
    expiry = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    before, after = expiry - timedelta(microseconds=1), expiry + timedelta(days=1)
    assert lifecycle.effective("offered", expiry, before) is ItemStatus.OFFERED
    assert lifecycle.effective("offered", expiry, expiry) is ItemStatus.EXPIRED
    assert rules.is_past_expiry(expiry, expiry) and not rules.is_past_expiry(expiry, before)
    for status in ItemStatus:  # only an offer expires
        if status is not ItemStatus.OFFERED:
            assert lifecycle.effective(status, expiry, after) is status


def test_a_migration_reads_as_what_still_moves_then_what_waits_then_how_it_ended() -> None:
    summary = lifecycle.summary
    assert summary(["completed", "in_progress", "offered"]) == "in_progress"
    assert summary(["completed", "failed"]) == "failed"
    assert summary(["revoked", "offered"]) == "offered"
    assert summary(["revoked", "completed"]) == "completed"
    assert summary(["expired", "rejected"]) == "rejected"
    assert summary(["expired"]) == "expired"
    for status in ItemStatus:  # every status has a place
        assert summary([status]) is status
    with pytest.raises(ValueError):
        summary(["bogus"])
    with pytest.raises(ValueError):
        summary([])


def test_who_acts_for_which_side() -> None:
    party = lifecycle.party
    assert party("superuser", 1, 1, 2) is SENDER
    assert party("superuser", 2, 1, 2) is RECEIVER
    assert party("superuser", 3, 1, 2) is None
    assert party("superuser", 2, 1, None) is None  # not redeemed: no receiving side yet
    assert party("accountant", 1, 1, 2) is None
    assert party("superuser", None, 1, 2) is None


def test_the_database_and_the_cli_take_their_statuses_from_the_enum() -> None:
    from basecone_migrate.cli.complete import STATUSES, statuses
    from basecone_migrate.db import tables

    values = tuple(s.value for s in ItemStatus)
    assert tables.ITEM_STATUSES == values and STATUSES == values
    assert tables.OPEN_STATUSES == ("offered", "scheduled", "in_progress", "paused", "failed")
    assert tables.UNFINISHED_STATUSES == ("scheduled", "in_progress", "paused", "failed")
    assert all(type(s) is str for s in (*tables.ITEM_STATUSES, *tables.OPEN_STATUSES))
    assert statuses("p") == ["paused"] and statuses("c") == ["completed", "cancelled"]
