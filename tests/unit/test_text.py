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


@given(st.text())
def test_one_line_is_one_line_a_terminal_never_acts_on(text: str) -> None:
    shown = one_line(text)
    assert "\n" not in shown and not [ch for ch in shown if _acts(ch)]
