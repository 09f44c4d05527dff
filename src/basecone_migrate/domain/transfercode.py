"""Transfercodes: 100 random bits, Crockford base32 in groups of four, stored only as a hash.

``K7QF-9XMB-2R4D-HT0C-W8NS``: typed back in any case, with or without spaces and dashes;
the letters Crockford reads as digits (O as 0, I and L as 1) are accepted too.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Final

ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
BITS: Final = 100
LENGTH: Final = BITS // 5  # 20 characters
GROUP: Final = 4
VALIDITY: Final = timedelta(days=15)
_ALIASES = str.maketrans({"O": "0", "I": "1", "L": "1"})


def generate() -> str:
    number = secrets.randbits(BITS)
    chars = [ALPHABET[(number >> (5 * i)) & 31] for i in reversed(range(LENGTH))]
    return "-".join("".join(chars[i : i + GROUP]) for i in range(0, LENGTH, GROUP))


def normalise(text: str) -> str | None:
    """The canonical 20 characters, or None when the text cannot be a code."""
    cleaned = "".join(text.split()).replace("-", "").upper().translate(_ALIASES)
    if len(cleaned) != LENGTH or any(c not in ALPHABET for c in cleaned):
        return None
    return cleaned


def digest(text: str) -> str | None:
    """The SHA-256 under which a code is stored (the code itself never is)."""
    canonical = normalise(text)
    if canonical is None:
        return None
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def hint(code: str) -> str:
    """The last group, for overviews that must never show the whole code."""
    canonical = normalise(code)
    assert canonical is not None
    return canonical[-GROUP:]


def masked(last_group: str) -> str:
    return "-".join(["****"] * (LENGTH // GROUP - 1) + [last_group])
