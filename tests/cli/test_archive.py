"""`archive add / list / verify` on real files."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import MARKER, Cli, State


def admin_id(cli: Cli, code: str) -> str:
    return str(next(a["id"] for a in cli.ok("admin", "list", "--json").json() if a["code"] == code))


def test_add_hashes_stores_and_keeps_identical_content_once(
    cli: Cli, loaded: dict[str, Any], tmp_path: Path, storage: Path
) -> None:
    ident = admin_id(cli, "3001")
    one, two = tmp_path / "one.pdf", tmp_path / "two.pdf"
    one.write_bytes(b"%PDF one" * 10_000)
    two.write_bytes(b"%PDF two")

    added = cli.ok("archive", "add", ident, one, two, "--json").json()
    again = cli.ok("archive", "add", ident, one, "--json").json()

    assert [(d["filename"], d["size"], d["added"]) for d in added] == [
        ("one.pdf", 80_000, True), ("two.pdf", 8, True)]
    assert again[0]["added"] is False and again[0]["id"] == added[0]["id"]
    listed = cli.ok("archive", "list", ident, "--json").json()
    assert [(d["id"], d["filename"], d["size"], d["sha256"]) for d in listed] == [
        (d["id"], d["filename"], d["size"], d["sha256"]) for d in added]
    for doc, source in zip(listed, (one, two), strict=True):
        assert doc["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
        assert (storage / "ACME" / ident / doc["sha256"]).read_bytes() == source.read_bytes()


def test_add_by_code_within_the_acting_users_environment(
    cli: Cli, loaded: dict[str, Any], tmp_path: Path
) -> None:
    (tmp_path / "x.pdf").write_bytes(b"x")
    result = cli.ok("--as", "sue@acme.example", "archive", "add", "3001", tmp_path / "x.pdf", "--json")
    assert result.json()[0]["filename"] == "x.pdf"


def test_a_file_name_cannot_steer_where_a_document_is_stored(
    cli: Cli, loaded: dict[str, Any], tmp_path: Path, storage: Path
) -> None:
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    (tmp_path / "a" / "..%2F..%2Fescape.pdf").write_bytes(b"sneaky")
    ident = admin_id(cli, "3001")

    [doc] = cli.ok("archive", "add", ident, nested / ".." / "..%2F..%2Fescape.pdf", "--json").json()

    assert doc["filename"] == "..%2F..%2Fescape.pdf"
    stored = [p.relative_to(storage) for p in storage.rglob("*") if p.is_file() and p.name != MARKER]
    assert Path("ACME", ident, doc["sha256"]) in stored
    assert all(p.parts[0] in ("ACME", "BOOK") for p in stored)


def test_add_refuses_before_writing_anything(
    cli: Cli, loaded: dict[str, Any], tmp_path: Path, state: State
) -> None:
    (tmp_path / "real.pdf").write_bytes(b"real")
    before = state.take()

    missing = cli("archive", "add", admin_id(cli, "3001"), tmp_path / "real.pdf", tmp_path / "gone.pdf")
    unknown = cli("archive", "add", "999", tmp_path / "real.pdf")

    assert (missing.exit_code, missing.error) == (2, f"Error: {tmp_path / 'gone.pdf'}: no such file")
    assert (unknown.exit_code, unknown.error) == (
        3, "Error: no administration '999': give its id or its code (see `basecone-migrate admin list`)")
    assert state.take() == before


def test_verify_intact_archive(cli: Cli, loaded: dict[str, Any]) -> None:
    result = cli.ok("archive", "verify", admin_id(cli, "1001"), "--json").json()
    assert (result["checked"], result["ok"], result["missing"], result["different"]) == (3, 3, [], [])


@pytest.mark.parametrize("batch", [2000, 2], ids=["one round", "rounds of two"])
def test_verify_reports_missing_and_corrupted_documents(
    cli: Cli, loaded: dict[str, Any], storage: Path, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    from basecone_migrate.services import archive

    monkeypatch.setattr(archive, "VERIFY_BATCH", batch)  # the rows come from the database in rounds
    ident = admin_id(cli, "1001")
    docs = cli.ok("archive", "list", ident, "--json").json()
    (storage / "ACME" / docs[0]["storage_key"]).write_bytes(b"bit rot")
    (storage / "ACME" / docs[2]["storage_key"]).unlink()

    result = cli("archive", "verify", ident, "--json")

    assert result.exit_code == 1
    assert result.error == (
        "Error: archive of ACME/1001 is damaged: 1 missing and 1 different of 3 documents "
        "(restore them from a backup; `archive list` shows the expected SHA-256)")
    report = result.json()
    assert report["ok"] == 1
    assert [d["id"] for d in report["missing"]] == [docs[2]["id"]]
    assert [(d["id"], d["found_size"], d["found_sha256"]) for d in report["different"]] == [
        (docs[0]["id"], 7, hashlib.sha256(b"bit rot").hexdigest())]

    human = cli("archive", "verify", ident)
    assert human.exit_code == 1
    assert "invoice-1.pdf  different bytes" in human.stdout
    assert "invoice-3.pdf  missing" in human.stdout
    assert "1 of 3 documents intact" in human.stdout
