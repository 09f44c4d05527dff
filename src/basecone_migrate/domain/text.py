"""Text that no database column or file name can hold."""

from __future__ import annotations

import re

#: Every character that may act on a terminal (`_acts` decides): anything but printable
#: ASCII. Text is scanned for these in C and only what is found is looked up, so plain text
#: costs next to nothing however long (the JSON of 100,000 documents is 20 MB).
_SUSPECT = re.compile(r"[^\x20-\x7e]")
#: The same inside JSON text, where a line break is the layout of ``indent``.
_SUSPECT_IN_JSON = re.compile(r"[^\n\x20-\x7e]")


def unstorable(text: str) -> str | None:
    """Why ``text`` cannot be stored (a NUL character, or a lone surrogate: bytes that were
    not UTF-8), else None."""
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8 text"
    return None


def printable(text: str) -> str:
    """``text`` as it can be shown in a message, whatever it holds."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def one_line(text: str) -> str:
    """``text`` safe for one line of a terminal or a log: control characters (C0 and C1,
    ESC among them), format characters (bidirectional overrides), line and paragraph
    separators (which ``splitlines`` and terminals act on) are shown as Python escapes
    (``\\x1b``, ``\\x9b``, ``\\u202e``, ``\\n``), so a terminal shows them and acts on none."""
    if text.isprintable():
        return text
    return _SUSPECT.sub(_python_escape, text)


def _python_escape(found: re.Match[str]) -> str:
    ch = found.group()
    return ch.encode("unicode_escape", "backslashreplace").decode("ascii") if _acts(ch) else ch


def _acts(ch: str) -> bool:
    import unicodedata

    return ch != " " and unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs")


def json_safe(encoded: str) -> str:
    """JSON text (from ``json.dumps(..., ensure_ascii=False)``) with every character a
    terminal acts on written as a ``\\uXXXX`` escape: valid JSON, the same values decoded.
    Such characters can only occur inside strings, where the escape means the same."""
    if encoded.isprintable():
        return encoded
    return _SUSPECT_IN_JSON.sub(_json_escape, encoded)


def _json_escape(found: re.Match[str]) -> str:
    """One character as JSON writes it escaped (above U+FFFF as a surrogate pair), if it acts."""
    ch = found.group()
    if not _acts(ch):
        return ch
    code = ord(ch)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def visible(text: str) -> str:
    """``text`` as a terminal shows it and never acts on it: each of its lines made safe by
    `one_line`, the line breaks kept (a mail's body stays readable)."""
    if text.isprintable():
        return text
    return "\n".join(one_line(line) for line in text.split("\n"))
