"""No sequence of commands changes an item's status in a way the lifecycle's table forbids.

A hypothesis state machine drives the real commands (in-process, on SQLite and
PostgreSQL): offers, revokes, resends, redeems, rejects, resumes and `expire`, as the
sender, the receivers, a user who is no Superuser, with the clock moved on and documents
taken away from the archive (so that transfers fail) and put back. After every command it
reads each item's status from the database and checks that the change, if any, is one the
table allows to whoever acted, followed only by the worker's own steps (a redeem's
transfer runs in the same command). More examples: BASECONE_MIGRATE_TEST_LIFECYCLE=200.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from basecone_migrate.domain import lifecycle
from basecone_migrate.domain.lifecycle import Actor, ItemStatus
from tests.conftest import CARL, SUE, TINA, Cli, _truncate, sample_world, write_world

EXAMPLES = int(os.environ.get("BASECONE_MIGRATE_TEST_LIFECYCLE", "0"))
TIM = "tim@book.example"
#: Who each user is to an offer from ACME to BOOK.
SIDES = {SUE: Actor.SENDER, TINA: Actor.RECEIVER, TIM: Actor.RECEIVER, CARL: None}
ADMINS = st.sampled_from([("1001",), ("1002",), ("1001", "1002")])


def users(usual: str) -> st.SearchStrategy[str]:
    """Mostly the user who would run the command, sometimes anyone (refusals change nothing)."""
    return st.sampled_from([usual] * 4 + sorted(SIDES))
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
#: Exit codes of the contract: ok, refused, usage, not found, not allowed, incomplete.
CONTRACT_EXITS = {0, 1, 2, 3, 4, 5}


def reachable(old: str, new: str, actor: Actor | None) -> bool:
    """``new`` is ``old``, or one transition ``actor`` may make from ``old`` followed by
    any number the worker makes."""
    if new == old:
        return True
    if actor is None:
        return False
    frontier = {t.target for t in lifecycle.TRANSITIONS if t.source == old and actor in t.actors}
    seen: set[ItemStatus] = set()
    while frontier:
        status = frontier.pop()
        if status == new:
            return True
        seen.add(status)
        frontier |= {t.target for t in lifecycle.TRANSITIONS
                     if t.source == status and Actor.WORKER in t.actors} - seen
    return False


class Commands(RuleBasedStateMachine):
    #: Every (old, new) change seen, over all examples: the test shows it saw the table's paths.
    observed: ClassVar[set[tuple[str, str]]] = set()

    def __init__(self, db_url: str, template: Path | None, folder: Path) -> None:
        super().__init__()
        work = Path(tempfile.mkdtemp(dir=folder))
        if template is not None:  # SQLite: a new file at the current schema
            shutil.copyfile(template, work / "db.sqlite")
            db_url = f"sqlite:///{work / 'db.sqlite'}"
        else:
            _truncate(db_url)
        self.db_url, self.storage, self.now = db_url, work / "archive", START
        self.storage.mkdir()
        self.cli = Cli({"BASECONE_MIGRATE_DB": db_url, "BASECONE_MIGRATE_STORAGE": str(self.storage)})
        (work / "world").mkdir()
        self.statuses: dict[int, str] = {}
        self.run(None, "load", write_world(work / "world", sample_world(work / "world")))
        self.codes: dict[int, str] = {}
        self.away: list[Path] = []
        self.statuses = self.read()

    # -- helpers ---------------------------------------------------------------------

    def read(self) -> dict[int, str]:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.db_url)
        try:
            with engine.connect() as connection:
                return dict(connection.execute(text("SELECT id, status FROM migration_items")).all())
        finally:
            engine.dispose()

    def run(self, user: str | None, *args: Any) -> Any:
        who = ("--as", user) if user else ()
        result = self.cli(*who, *args, now=self.now.isoformat())
        assert result.exit_code in CONTRACT_EXITS, (args, result.exit_code, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        self.check(SIDES.get(user) if user else Actor.CRON)
        return result

    def check(self, actor: Actor | None) -> None:
        """Every item's change since the last command is one ``actor`` may cause."""
        now = self.read()
        for item, status in now.items():
            assert status in {s.value for s in ItemStatus}, status
            old = self.statuses.get(item)
            if old is None:
                assert status == lifecycle.INITIAL, (item, status)
                assert actor is Actor.SENDER
            else:
                assert reachable(old, status, actor), (item, old, status, actor)
                if status != old:
                    self.observed.add((old, status))
        assert set(self.statuses) <= set(now)  # items are never deleted
        self.statuses = now

    def migrations(self) -> list[int]:
        return sorted(self.codes) or [1]

    # -- the commands ---------------------------------------------------------------

    @initialize(admins=ADMINS, data=st.data(), away=st.booleans())
    def first_offer(self, admins: tuple[str, ...], data: st.DataObject, away: bool) -> None:
        """An offer to start from, and in half the runs an archive missing a document (its
        transfer fails until it is put back)."""
        self.offer(SUE, admins)
        if away:
            self.take_a_document_away(data)

    @rule(user=users(SUE), admins=ADMINS)
    def offer(self, user: str, admins: tuple[str, ...]) -> None:
        result = self.run(user, "offer", *admins, "--to", TINA, "--accept-terms", "--confirm-checklist",
                          "--json")
        if result.exit_code == 0:
            offer = json.loads(result.stdout)
            self.codes[offer["migration_id"]] = offer["transfercode"]

    @rule(user=users(SUE), data=st.data())
    def revoke(self, user: str, data: st.DataObject) -> None:
        self.run(user, "revoke", str(data.draw(st.sampled_from(self.migrations()))))

    @rule(user=users(SUE), data=st.data())
    def resend(self, user: str, data: st.DataObject) -> None:
        mid = data.draw(st.sampled_from(self.migrations()))
        result = self.run(user, "resend", str(mid), "--json")
        if result.exit_code == 0:
            self.codes[mid] = json.loads(result.stdout)["transfercode"]

    @rule(user=users(TINA), data=st.data(),
          how=st.sampled_from(["redeem", "redeem", "redeem unlinked", "reject"]))
    def answer(self, user: str, data: st.DataObject, how: str) -> None:
        """Redeem (linking 1001, which has two catalogue entries of its name, or not), or reject."""
        code = self.codes.get(data.draw(st.sampled_from(self.migrations())), "AAAA-BBBB")
        if how == "reject":
            self.run(user, "redeem", code, "--reject", "--reason", "not ours")
        else:
            links = ("--link", "1001=book-tw:7001") if how == "redeem" else ()
            self.run(user, "redeem", code, "--accept-terms", *links)

    @rule(user=users(TINA), data=st.data(),
          command=st.sampled_from(["resume", "resume", "resume", "cancel", "undo", "pause"]))
    def resume(self, user: str, data: st.DataObject, command: str) -> None:
        """Go on with a transfer, or the way back: cancel (either side), undo, pause."""
        self.run(user, command, str(data.draw(st.sampled_from(self.migrations()))))

    @rule(days=st.sampled_from([1, 7, 16]))
    def expire(self, days: int) -> None:
        self.now += timedelta(days=days)
        self.run(None, "expire")

    @rule(data=st.data())
    def take_a_document_away(self, data: st.DataObject) -> None:
        documents = sorted(p for p in self.storage.rglob("*")
                           if p.is_file() and len(p.name) == 64 and p not in self.away)
        if documents:
            document = data.draw(st.sampled_from(documents))
            document.rename(document.with_name(document.name + ".away"))
            self.away.append(document)

    @rule()
    def put_the_documents_back(self) -> None:
        for document in self.away:
            document.with_name(document.name + ".away").rename(document)
        self.away.clear()

    @invariant()
    def statuses_are_the_databases(self) -> None:
        assert self.read() == self.statuses


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_no_sequence_of_commands_makes_a_change_the_table_forbids(
        backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    template = request.getfixturevalue("sqlite_template") if backend == "sqlite" else None
    db_url = "" if template is not None else request.getfixturevalue("pg_schema_url")
    # PostgreSQL's commands cost more: fewer runs there (the table is the same for both).
    budget = settings(max_examples=EXAMPLES or (25 if template is not None else 8), stateful_step_count=15, deadline=None,
                      derandomize=not EXAMPLES, database=None,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    Commands.observed = set()
    run_state_machine_as_test(lambda: Commands(db_url, template, tmp_path), settings=budget)
    # Not vacuous: the drawn sequences got past the commands' own checks...
    assert len(Commands.observed) >= 3, Commands.observed
    # ... and every path today's commands take is walked once on purpose, under the same checks.
    walk = Commands(db_url, template, tmp_path)
    walk.offer(SUE, ("1002",))
    walk.run(SUE, "revoke", "1")
    walk.offer(SUE, ("1002",))
    walk.now += timedelta(days=16)
    walk.run(None, "expire")
    walk.resend(SUE, _Fixed(2))
    walk.run(TINA, "redeem", walk.codes[2], "--accept-terms")
    walk.offer(SUE, ("1001",))
    document = next(p for p in sorted(walk.storage.rglob("*")) if p.is_file() and len(p.name) == 64)
    document.rename(document.with_name(document.name + ".away"))
    walk.away.append(document)
    walk.run(TINA, "redeem", walk.codes[3], "--accept-terms", "--link", "1001=book-tw:7001")
    walk.put_the_documents_back()
    walk.run(TINA, "resume", "3")
    assert walk.statuses == {1: "revoked", 2: "completed", 3: "completed"}
    walk.run(TINA, "undo", "3")  # the way back, under the same checks
    walk.offer(SUE, ("1001",))
    walk.run(TINA, "redeem", walk.codes[4], "--accept-terms", "--link", "1001=book-tw:7001", "--select", "1001")
    walk.run(SUE, "cancel", "4")  # nothing left to cancel: refused, nothing changed
    assert walk.statuses == {1: "revoked", 2: "completed", 3: "undone", 4: "completed"}
    assert Commands.observed >= {
        ("offered", "revoked"), ("offered", "expired"), ("expired", "offered"),
        ("offered", "completed"), ("offered", "failed"), ("failed", "completed")}


class _Fixed:
    """A `data` argument that draws one given value (for calling a rule by hand)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def draw(self, strategy: Any) -> Any:
        return self.value
