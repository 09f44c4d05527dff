"""The queries that must stay fast at a million rows use their indexes: proven with EXPLAIN.

The database is the scale benchmark's world (benchmarks/scale.py) at a tenth of an office
count, analysed, so the planner chooses as it would in production: nothing here turns
sequential scans off. Each test runs the real service call, captures every statement it
sends, and reads the plan of each.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIG = "su@big.example"


def _scale() -> Any:
    spec = importlib.util.spec_from_file_location("scale", ROOT / "benchmarks" / "scale.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def big_world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """30,000 items over 200 offices, one of them large; 3,000 stale offers."""
    scale = _scale()
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('plans') / 'scale.db'}"
    else:
        url = request.getfixturevalue("make_pg_database")()
    built = scale.build(url, 30_000, offices=200, big_admins=1000)
    yield {"url": url, "backend": request.param, "now": scale.NOW, **built}


class Plans:
    """Every statement a block of service code sends, and the plan of each."""

    def __init__(self, rt: Any) -> None:
        from sqlalchemy import event

        self.rt = rt
        self.statements: list[tuple[str, Any]] = []
        event.listen(rt.engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any,
              _executemany: bool) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "UPDATE", "WITH")):
            self.statements.append((statement, parameters))

    def explain(self, random_page_cost: float | None = None) -> list[tuple[str, str]]:
        """(statement, plan) for each captured statement, without running any of them;
        on PostgreSQL, with the planner's ``random_page_cost`` when given."""
        postgres = self.rt.engine.dialect.name == "postgresql"
        plans = []
        with self.rt.engine.connect() as c:
            if postgres and random_page_cost is not None:
                c.exec_driver_sql(f"SET LOCAL random_page_cost = {random_page_cost}")
            for statement, parameters in self.statements:
                prefix = "EXPLAIN " if postgres else "EXPLAIN QUERY PLAN "
                rows = c.exec_driver_sql(prefix + statement, parameters).all()
                plans.append((statement, "\n".join(" ".join(str(v) for v in row) for row in rows)))
            c.rollback()
        return plans


def _runtime(url: str, now: datetime, user: str | None = None) -> Any:
    from basecone_migrate.runtime import Runtime
    from basecone_migrate.settings import Settings

    options = {"db": url, "now": now.isoformat(), "user": user}
    return Runtime(Settings.load(options, {}))


def _full_scans(plan: str) -> list[str]:
    """Tables read whole: PostgreSQL's Seq Scan, SQLite's SCAN (without an index)."""
    found = re.findall(r"Seq Scan on (\w+)", plan)
    found += [m for m in re.findall(r"\bSCAN (\w+)\b(?! USING)", plan) if not m.startswith("CONSTANT")]
    return found


BIG_TABLES = {"migration_items", "migrations", "audit_log", "migration_recipients"}


def test_expiry_reads_only_the_open_offers(big_world: dict[str, Any]) -> None:
    from basecone_migrate.services.migrations.common import expire_statement, stale_items

    rt = _runtime(big_world["url"], big_world["now"])
    try:
        plans = Plans(rt)
        with rt.uow() as uow:  # rolled back: the plan is read after
            stale = uow.session.execute(stale_items(big_world["now"])).all()
            group = [item_id for _, item_id in stale[:50]]
            taken = uow.session.execute(expire_statement(uow.session, big_world["now"],
                                                         item_ids=group)).all()
        found = plans.explain()
    finally:
        rt.close()
    assert len(stale) == big_world["stale"] == 3000
    assert stale == sorted(stale) and len(taken) == 50
    expiry = [(s, p) for s, p in found if "migration_items" in s]
    assert len(expiry) == 2, [s for s, _ in found]
    for _statement, plan in expiry:
        # The partial index of open offers (or on SQLite the status index, or the primary
        # key for a group of ids): the history is never read.
        assert re.search(r"ix_migration_items_(offered|status)|pk_migration_items|INTEGER PRIMARY KEY",
                         plan), plan
        assert "migration_items" not in _full_scans(plan), plan


def test_search_uses_the_trigram_indexes_on_postgresql(big_world: dict[str, Any]) -> None:
    if big_world["backend"] != "postgresql":
        pytest.skip("SQLite scans the narrow search column: there is no trigram index there")
    from basecone_migrate.services.migrations.overview import list_migrations

    rt = _runtime(big_world["url"], big_world["now"], BIG)
    try:
        rt.engine  # noqa: B018 - the schema check runs before the listener
        plans = Plans(rt)
        page = list_migrations(rt, search=big_world["needle"])
        # This world has 30,000 items, not a million: with the default cost of a random
        # page (4, for spinning disks) the planner hashes the whole item table rather than
        # look up the ~40 rows found. At 1,000,000 items, or with the SSD setting here, it
        # looks them up by primary key (benchmarks/scale.py measures that world).
        found = plans.explain(random_page_cost=1.1)
    finally:
        rt.close()
    hits = page["offered"] + page["received"]
    assert hits and all(big_world["needle"] == row["administration"] for row in hits)
    searched = [(s, p) for s, p in found if "migration_item_search" in s]
    assert searched
    # The large office has sent a fifth of all offers: the trigram index finds the few rows
    # that match; it has received few, and the planner rightly starts from those.
    assert any("ix_migration_item_search_offered" in p for s, p in searched
               if "migration_item_search.offered" in s)
    for statement, plan in searched:
        assert not BIG_TABLES & set(_full_scans(plan)), f"{statement}\n{plan}"


@pytest.mark.parametrize("what", ["list", "list --status expired", "status", "audit --since"])
def test_overview_pages_read_no_table_whole(big_world: dict[str, Any], what: str) -> None:
    from basecone_migrate.services import audit
    from basecone_migrate.services.migrations.overview import list_migrations, status

    rt = _runtime(big_world["url"], big_world["now"], BIG)
    try:
        rt.engine  # noqa: B018
        plans = Plans(rt)
        if what == "list":
            result = list_migrations(rt)
        elif what == "list --status expired":
            result = list_migrations(rt, status="expired")
        elif what == "status":
            result = status(rt)
        else:
            with rt.uow(read_only=True) as uow:
                result = audit.entries(uow.session, since=datetime.fromisoformat("2026-11-01T00:00:00+00:00"),
                                       limit=100)
        found = plans.explain()
    finally:
        rt.close()
    assert result
    for statement, plan in found:
        assert not BIG_TABLES & set(_full_scans(plan)), f"{statement}\n{plan}"
