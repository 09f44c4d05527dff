"""Text on its way to a terminal: shown, never acted on."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from basecone_migrate.domain.text import _acts, json_safe, one_line


@given(st.dictionaries(st.text(max_size=5), st.text()))
def test_json_safe_is_the_same_json_and_holds_nothing_a_terminal_acts_on(value: dict[str, str]) -> None:
    for indent in (None, 2):
        encoded = json_safe(json.dumps(value, ensure_ascii=False, indent=indent))
        assert json.loads(encoded) == value
        assert not [ch for ch in encoded if ch != "\n" and _acts(ch)]


def test_json_safe_writes_a_character_above_the_basic_plane_as_a_surrogate_pair() -> None:
    assert json_safe(json.dumps("a\U000e0001b", ensure_ascii=False)) == '"a\\udb40\\udc01b"'


# What each function is defined to do, character by character (the code scans for candidates
# with a regular expression instead: the same result, in C, for text of any length).
def _json_reference(encoded: str) -> str:
    def escape(ch: str) -> str:
        code = ord(ch)
        if code <= 0xFFFF:
            return f"\\u{code:04x}"
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return "".join(escape(ch) if ch != "\n" and _acts(ch) else ch for ch in encoded)


def _one_line_reference(text: str) -> str:
    return "".join(ch.encode("unicode_escape", "backslashreplace").decode("ascii") if _acts(ch)
                   else ch for ch in text)


# Every category a terminal may act on, and their neighbours, drawn often.
_NASTY = st.sampled_from("\x00\x07\n\r\t\x1b\x7f\x85\x9b\xa0\xad\u061c\u200b\u200e\u2028\u2029"
                         "\u202e\u2066\ufeff\ud800\U000e0001\U0001f600é ")
_TEXT = st.text(st.one_of(st.characters(), _NASTY))


@given(_TEXT, st.sampled_from([None, 2]))
def test_json_safe_escapes_exactly_what_acts(text: str, indent: int | None) -> None:
    encoded = json.dumps({"k": text, text: [text]}, ensure_ascii=False, indent=indent)
    assert json_safe(encoded) == _json_reference(encoded)


@given(_TEXT)
def test_one_line_escapes_exactly_what_acts(text: str) -> None:
    assert one_line(text) == _one_line_reference(text)


@given(st.text())
def test_one_line_is_one_line_a_terminal_never_acts_on(text: str) -> None:
    shown = one_line(text)
    assert "\n" not in shown and not [ch for ch in shown if _acts(ch)]
