"""Keyset pages for `list`, `status` and `audit`: every row once, in order, however deep."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import SUE, TINA, Cli, make_offer


@pytest.fixture
def offers(cli: Cli, loaded: dict[str, Any]) -> list[dict[str, Any]]:
    """Three offers of ACME to BOOK, two at the same instant (ties are broken by item):
    one of two administrations, revoked, and two of one each."""
    checked = ("--confirm-checklist",)
    made = [make_offer(cli, "1001", "1002", extra=checked)]
    cli.ok("--as", SUE, "revoke", made[0]["migration_id"])
    made.append(make_offer(cli, "1002", extra=checked))
    made.append(make_offer(cli, "1001", extra=checked, now="2026-03-03T09:00:00Z"))
    return made


def _walk(cli: Cli, section: str, *args: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(every row of one section page by page, the pages' JSON)."""
    rows, pages, after = [], [], None
    while True:
        extra = ["--after", after] if after else [f"--{section}"]
        page = cli.ok("--as", TINA if section == "received" else SUE, "list", "--limit", "1", *extra,
                      *args, "--json", now="2026-03-04T09:00:00Z").json()
        pages.append(page)
        rows += page[section]
        after = page[f"{section}_next"]
        if after is None:
            return rows, pages


@pytest.mark.parametrize("section", ["offered", "received"])
def test_list_pages_by_cursor_through_every_row(cli: Cli, offers: list[dict[str, Any]],
                                                section: str) -> None:
    who = TINA if section == "received" else SUE
    whole = cli.ok("--as", who, "list", "--json", now="2026-03-04T09:00:00Z").json()
    assert whole[f"{section}_total"] == 4 and whole[f"{section}_total_exact"] is True
    assert whole[f"{section}_next"] is None
    rows, pages = _walk(cli, section)
    assert rows == whole[section]
    assert len(pages) == 4 and all(len(p[section]) == 1 for p in pages)
    other = "received" if section == "offered" else "offered"
    assert all(p[other] == [] for p in pages[1:])  # --after continues one section only
    # Newest first; offers made at one instant in the order they were made.
    first, second, later = (o["migration_id"] for o in offers)
    assert [r["migration_id"] for r in rows] == [later, first, first, second]


def test_a_cursor_keeps_the_filters(cli: Cli, offers: Any) -> None:
    rows, _ = _walk(cli, "offered", "--status", "revoked")
    assert [(r["administration"], r["status"]) for r in rows] == [
        ("Bakkerij Jansen", "revoked"), ("Garage Smit", "revoked")]
    rows, _ = _walk(cli, "offered", "--search", "garage")
    assert [(r["administration"], r["status"]) for r in rows] == [
        ("Garage Smit", "revoked"), ("Garage Smit", "offered")]


def test_a_total_past_the_cap_says_so(cli: Cli, offers: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from basecone_migrate.services.migrations import overview

    monkeypatch.setattr(overview, "COUNT_CAP", 2)
    page = cli.ok("--as", SUE, "list", "--limit", "1", "--json").json()
    assert (page["offered_total"], page["offered_total_exact"]) == (2, False)
    table = cli.ok("--as", SUE, "list", "--limit", "1")
    assert f"offered: showing 1 of more than 2; next page: --after {page['offered_next']}" in table.stderr


@pytest.mark.parametrize("cursor", ["nonsense", "WyJvZmZlcmVkIl0", "WyJib3RoIiwgIjIwMjYtMDEtMDEiLCAxXQ"])
def test_a_cursor_that_is_not_one_is_a_usage_error(cli: Cli, offers: Any, cursor: str) -> None:
    result = cli("--as", SUE, "list", "--after", cursor, "--json")
    assert result.exit_code == 2
    assert result.error == (f"Error: --after {cursor!r} is not a cursor from `list --json` "
                            "(offered_next or received_next)")
    assert result.stdout == ""


def test_status_pages_below_a_migration(cli: Cli, offers: list[dict[str, Any]]) -> None:
    everything = [m["migration_id"] for m in cli.ok("status", "--json").json()]
    assert everything == sorted((o["migration_id"] for o in offers), reverse=True)
    first = cli.ok("status", "--limit", "2", "--json").json()
    rest = cli.ok("status", "--limit", "2", "--after", first[-1]["migration_id"], "--json").json()
    assert [m["migration_id"] for m in first + rest] == everything
    both = cli("status", "1", "--after", "2")
    assert (both.exit_code, both.error) == (
        2, "Error: --after pages the list of recent migrations: leave out MIGRATION")


@pytest.mark.parametrize("since", [None, "2026-03-02"])
def test_audit_pages_after_an_id(cli: Cli, offers: Any, since: str | None) -> None:
    base = ["audit", "--json", *(["--since", since] if since else [])]
    whole = cli.ok(*base).json()
    assert len(whole) >= 6
    seen, after = [], None
    while True:
        page = cli.ok(*base, "--limit", "4", *(["--after", after] if after is not None else [])).json()
        if not page:
            break
        seen += page
        after = page[-1]["id"]
    assert seen == whole
    assert cli.ok(*base, "--after", "99999").json() == []
