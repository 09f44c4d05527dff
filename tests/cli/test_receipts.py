"""Receipts: what a move delivered, which either office can check later (`status --json`,
the completion mail), and the archive as it is now (`archive verify --json`)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from tests.conftest import TINA, Cli, SmtpServer, make_offer


def _digest(shas: list[str]) -> str:
    return hashlib.sha256("".join(f"{sha}\n" for sha in sorted(shas)).encode()).hexdigest()


def test_a_completed_move_carries_its_receipt_and_verify_tells_the_archive_now(
        mailing_cli: Cli, loaded: dict[str, Any], smtp: SmtpServer, tmp_path: Path) -> None:
    cli = mailing_cli
    code = make_offer(cli, "1001", "1002", extra=("--confirm-checklist",))["transfercode"]
    arrived = cli.ok("archive", "list", "1", "--json").json()
    garage = cli.ok("archive", "list", "2", "--json").json()
    cli.ok("--as", TINA, "redeem", code, "--accept-terms", "--link", "1002=book-tw:1002")

    items = cli.ok("status", "1", "--json").json()["items"]
    expected = {"digest": _digest([d["sha256"] for d in arrived]), "documents": len(arrived),
                "bytes": sum(d["size"] for d in arrived)}
    assert {k: items[0][k] for k in expected} == expected
    assert len(arrived) == 3
    other = {"digest": _digest([garage[0]["sha256"]]), "documents": 1, "bytes": garage[0]["size"]}
    assert {k: items[1][k] for k in other} == other

    [completed] = [m for m in smtp.take() if m.subject.startswith("Migration complete")]
    assert (f"archive as it arrived: 3 documents, {expected['bytes']} bytes, digest "
            f"{expected['digest']}") in completed.text
    assert (f"archive as it arrived: 1 document, {other['bytes']} bytes, digest {other['digest']}"
            in completed.text)

    verified = cli.ok("--as", TINA, "archive", "verify", "1", "--json").json()
    assert {k: verified[k] for k in expected} == expected
    extra = tmp_path / "later.pdf"
    extra.write_bytes(b"%PDF-1.4 a document added after the move\n")
    cli.ok("--as", TINA, "archive", "add", "1", str(extra))
    now = cli.ok("--as", TINA, "archive", "verify", "1", "--json").json()
    shas = [d["sha256"] for d in arrived] + [hashlib.sha256(extra.read_bytes()).hexdigest()]
    assert (now["digest"], now["documents"]) == (_digest(shas), 4)
    # the receipt of the move stays what arrived
    assert cli.ok("status", "1", "--json").json()["items"][0]["digest"] == expected["digest"]


def test_no_receipt_before_the_archive_arrived(cli: Cli, loaded: dict[str, Any]) -> None:
    make_offer(cli, "1001")
    [item] = cli.ok("status", "1", "--json").json()["items"]
    assert "digest" not in item and "documents" not in item
