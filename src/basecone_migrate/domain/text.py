"""Text that no database column or file name can hold."""

from __future__ import annotations


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
    return "".join(ch.encode("unicode_escape", "backslashreplace").decode("ascii") if _acts(ch)
                   else ch for ch in text)


def _acts(ch: str) -> bool:
    import unicodedata

    return ch != " " and unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs")


def json_safe(encoded: str) -> str:
    """JSON text (from ``json.dumps(..., ensure_ascii=False)``) with every character a
    terminal acts on written as a ``\\uXXXX`` escape: valid JSON, the same values decoded.
    Such characters can only occur inside strings, where the escape means the same."""
    if encoded.isprintable():
        return encoded
    return "".join(_json_escape(ch) if ch != "\n" and _acts(ch) else ch for ch in encoded)


def _json_escape(ch: str) -> str:
    """One character as JSON writes it escaped: above U+FFFF as a surrogate pair."""
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
