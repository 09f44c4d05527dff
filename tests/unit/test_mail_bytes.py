"""Mails are written as bytes with the standard library's encoders; the standard parser
reads back exactly what was meant, whatever the text."""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from basecone_migrate.mail import message_bytes

AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


@dataclass
class Row:
    subject: str
    body: str | None
    to: list[str] = field(default_factory=lambda: ["tina@book.example"])
    cc: list[str] = field(default_factory=list)
    sender: str = "migrations@basecone.invalid"
    id: int = 7


def _plain(message: email.message.EmailMessage) -> str:
    """The plain-text part; text travels with CRLF line ends, read back as newlines."""
    return message.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")


def _read(row: Row) -> email.message.EmailMessage:
    raw = message_bytes(row, AT)
    assert b"\n" not in raw.replace(b"\r\n", b""), "every line ends in CRLF"
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def test_headers_and_both_parts_read_back() -> None:
    row = Row("Migration offer expired: 2 administrations", "Hello Sue,\n\n  - Bakkerij (code 1001)\n",
              to=["tina@book.example", "uma@book.example"], cc=["sue@acme.example"])
    message = _read(row)
    assert message["From"] == "migrations@basecone.invalid"
    assert message["To"] == "tina@book.example, uma@book.example"
    assert message["Cc"] == "sue@acme.example"
    assert message["Subject"] == row.subject
    assert message["Date"] == "Tue, 01 Dec 2026 09:30:00 +0000"
    assert message["Message-ID"].endswith("@basecone.invalid>") and "bcm-7" in message["Message-ID"]
    assert message.get_content_type() == "multipart/alternative"
    assert _plain(message) == row.body
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "  - Bakkerij (code 1001)" in html and html.startswith("<html>")
    assert message.defects == []


def test_non_ascii_subject_long_lines_and_many_recipients() -> None:
    many = [f"person{n}@very-long-office-domain-name.example" for n in range(40)]
    body = "Bakkerij Ümit & Zonen — ≥ 5 = vijf\n" + "x" * 300 + " \ntrailing space \n.\nFrom here\n"
    message = _read(Row("Übernahme: Bäckerei Müller (Zürich) " * 4, body, to=many))
    assert message["Subject"] == "Übernahme: Bäckerei Müller (Zürich) " * 4
    assert [a.strip() for a in message["To"].split(",")] == many
    assert _plain(message) == body


def test_a_line_break_in_a_subject_never_starts_a_header() -> None:
    message = _read(Row("Offer\r\nBcc: eve@evil.example", "x"))
    assert message["Bcc"] is None
    assert message["Subject"] == "Offer Bcc: eve@evil.example"


def test_no_body() -> None:
    assert _plain(_read(Row("s", None))) == ""


@settings(max_examples=100, deadline=None)
@given(subject=st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=200)
       .filter(lambda s: s.strip() == s and "  " not in s),
       body=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"), max_size=2000))
def test_any_text_reads_back(subject: str, body: str) -> None:
    message = _read(Row(subject, body))
    assert message["Subject"] == subject
    assert _plain(message) == body
