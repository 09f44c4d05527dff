"""Tables as a person sees them in a terminal of 120 columns (a real pseudo-terminal, so Rich
renders them), and as a pipe gets them: nothing that identifies something is ever cut."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.conftest import SUE, TINA, Cli, make_offer
from tests.terminal import at_terminal

ANSI = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)")


def screen(args: list[str], env: dict[str, str], columns: int = 120) -> str:
    """What the program prints to a terminal `columns` wide (colours stripped)."""
    raw = at_terminal(args, {**env, "COLUMNS": str(columns)}, columns=columns)
    return ANSI.sub("", raw.decode()).replace("\r", "")


def table(text: str, title: str, columns: int = 120) -> str:
    """The table under `title` (and what follows it), checked to fit the terminal."""
    shown = text[text.index(title):]
    assert max(len(line) for line in shown.splitlines()) <= columns, shown
    return shown


def whole_on_a_line(text: str, *values: str) -> None:
    """Each value appears unbroken on one line of the screen."""
    for value in values:
        assert any(value in line for line in text.splitlines()), f"{value!r} not whole in:\n{text}"


def rich(text: str) -> None:
    assert "─" in text, f"not a Rich table:\n{text}"


@pytest.fixture
def offered(cli: Cli, loaded: Any) -> dict[str, Any]:
    """An offer of two administrations to two Superusers of BOOK, mailed (outbox files)."""
    return make_offer(cli, "1001", "1002", to=(TINA, "tim@book.example"),
                      extra=("--confirm-checklist",))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_list_at_120_columns_shows_hints_addresses_and_times_whole(
        env_vars: dict[str, str], cli: Cli, offered: dict[str, Any], backend: str) -> None:
    shown = table(screen(["--as", SUE, "list"], env_vars), "Offered")
    rich(shown)
    tail = "…" + offered["transfercode"].rsplit("-", 1)[-1]
    whole_on_a_line(shown, tail, "ACME.1001@mailtobasecone.com", "ACME.1002@mailtobasecone.com",
                    TINA, "tim@book.example", "2026-03-17 09:00", "2026-03-02", "created (UTC)",
                    "expires (UTC)", "Bakkerij Jansen", "Garage Smit")
    assert "****" not in shown  # the hint's fixed prefix says nothing


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_admin_list_env_list_and_archive_list_at_120_columns(
        env_vars: dict[str, str], cli: Cli, loaded: Any, backend: str) -> None:
    admins = table(screen(["admin", "list"], env_vars), "Administrations")
    rich(admins)
    whole_on_a_line(admins, *(a["email"] for a in cli.ok("admin", "list", "--json").json()),
                    "twinfield", "snelstart", "acme-snel")
    documents = cli.ok("archive", "list", "1", "--json").json()
    listed = table(screen(["archive", "list", "1"], env_vars), "id")
    whole_on_a_line(listed, *(d["sha256"] for d in documents), "added (UTC)")
    environments = table(screen(["env", "list"], env_vars), "Environments")
    whole_on_a_line(environments, "ACME", "premium", "Acme Accountants")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_mail_list_at_120_columns_keeps_addresses_whole_and_subjects_short(
        env_vars: dict[str, str], cli: Cli, offered: dict[str, Any], backend: str) -> None:
    shown = table(screen(["mail", "list"], env_vars), "Outbox")
    rich(shown)
    whole_on_a_line(shown, TINA, "tim@book.example", SUE, "2026-03-02 09:00")
    header = shown.index("─")
    body = [line for line in shown[header:].splitlines()[1:] if line.strip()]
    assert len(body) <= 2, shown  # one mail: its subject takes two lines at most
    assert "Transfercode for 2 administrations from" in " ".join(body)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_audit_at_a_terminal_reads_as_key_value_pairs(
        env_vars: dict[str, str], cli: Cli, offered: dict[str, Any], backend: str) -> None:
    shown = table(screen(["audit"], env_vars), "Audit log")
    rich(shown)
    whole_on_a_line(shown, "time (UTC)", f"recipients={TINA},tim@book.example",
                    "checklist_confirmed=true", "summary.environments.created=3")
    assert "{'" not in shown and "['" not in shown and "True" not in shown  # never Python's repr


def test_piped_audit_gives_each_rows_details_whole_as_json(cli: Cli, offered: dict[str, Any]) -> None:
    rows = cli.ok("audit", "--json").json()
    piped = cli.ok("audit").stdout
    lines = piped.splitlines()
    assert lines[0] == "Audit log" and len(lines) == len(rows) + 2
    for row, line in zip(rows, lines[2:], strict=True):
        details = json.dumps(row["details"], separators=(",", ":"), ensure_ascii=False)
        assert line.endswith(details)
        assert json.loads(line[line.index("{"):]) == row["details"]
    assert max(len(line) for line in lines) > 400  # the load's summary: far past 160, not cut


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_table_too_wide_for_the_terminal_becomes_records(
        env_vars: dict[str, str], cli: Cli, loaded: Any, backend: str) -> None:
    shown = screen(["admin", "list"], env_vars, columns=50)
    assert "─" not in shown
    records = [re.sub(" +", " ", line).strip() for line in table(shown, "Administrations", 50).splitlines()]
    for address in ("ACME.1001@mailtobasecone.com", "BOOK.5001@mailtobasecone.com"):
        assert f"e-mail: {address}" in records
    assert "package: twinfield" in records and "code: 1001" in records


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_redeem_and_status_tables_at_120_columns(
        env_vars: dict[str, str], cli: Cli, offered: dict[str, Any], backend: str) -> None:
    redeemed = screen(["--as", TINA, "redeem", offered["transfercode"], "--accept-terms",
                       "--link", "1002=book-tw:1002", "--no-input"], env_vars)
    redeemed = table(redeemed, "Migration 1: completed")
    whole_on_a_line(redeemed, "BOOK.1001@mailtobasecone.com", "BOOK.1002@mailtobasecone.com",
                    "completed")
    status = table(screen(["status", "1"], env_vars), "Migration 1")
    rich(status)
    whole_on_a_line(status, "started (UTC)", "2026-03-02 09:00")


def test_sizes_use_the_progress_bars_decimal_units() -> None:
    from rich.filesize import decimal

    from basecone_migrate.cli.output import human_size

    assert human_size(307_200_000) == "307.2 MB"  # what the bar says of a 293 MiB archive
    for size in (1000, 1234, 56_403, 999_949, 999_950, 1_000_000, 5_500_000_000, 10**12):
        assert human_size(size) == decimal(size)
    assert (human_size(0), human_size(999)) == ("0 bytes", "999 bytes")


def test_resend_quiet_prints_the_new_code(cli: Cli, offered: dict[str, Any]) -> None:
    result = cli.ok("--as", SUE, "resend", "1", "-q")
    [line] = result.stdout.splitlines()
    assert line.startswith("Transfercode: ") and line != f"Transfercode: {offered['transfercode']}"
    assert result.stderr == ""
    assert cli.ok("--as", SUE, "list", "--json").json()["offered"][0]["transfercode_hint"].endswith(
        line.rsplit("-", 1)[-1])


def test_fit_shortens_the_widest_free_text_first_and_never_below_a_minimum() -> None:
    from basecone_migrate.cli.output import fit

    assert fit([(4, 4), (10, 50), (5, 30)], 100) == [4, 50, 30]  # room for everything
    assert fit([(4, 4), (10, 50), (5, 30)], 40) == [4, 18, 18]  # both capped alike
    assert fit([(4, 4), (10, 50), (20, 30)], 40) == [4, 16, 20]  # a minimum holds
    assert fit([(4, 4), (10, 50), (30, 30)], 40) is None  # even the narrowest is too wide
