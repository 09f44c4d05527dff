"""An archive's receipt: what a move delivered, in a form either office can check later.

The ``digest`` of an archive is the SHA-256 (lower-case hex) of the lines
``<document sha256 in lower-case hex>\\n`` of all its documents, sorted ascending; an empty
archive's is the SHA-256 of nothing. With the number of documents and their bytes it is the
receipt of a completed move (`status --json`, the completion mail) and of an archive as it
is now (`archive verify --json`): the same documents give the same digest wherever they
are stored, and any document added, lost or changed gives another.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

_SHA256 = re.compile(r"[0-9a-f]{64}")


class Digest:
    """The digest of documents given in ascending order of their SHA-256, one at a time (an
    archive of 100,000 is read as a stream, never held)."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._last = ""
        self.documents = 0
        self.bytes = 0

    def add(self, sha256: str, size: int = 0) -> None:
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"not a lower-case hex SHA-256: {sha256!r}")
        if sha256 <= self._last:  # a document's content appears once in an archive
            raise ValueError(f"SHA-256 {sha256} does not come after {self._last}")
        self._hash.update(f"{sha256}\n".encode("ascii"))
        self._last = sha256
        self.documents += 1
        self.bytes += size

    def receipt(self) -> Receipt:
        return Receipt(self._hash.hexdigest(), self.documents, self.bytes)


@dataclass(frozen=True)
class Receipt:
    digest: str
    documents: int
    bytes: int

    def as_dict(self) -> dict[str, str | int]:
        return {"digest": self.digest, "documents": self.documents, "bytes": self.bytes}


def digest(sha256s: Iterable[str]) -> str:
    """The digest of documents in any order (`Digest` for a stream already sorted)."""
    running = Digest()
    for sha in sorted(sha256s):
        running.add(sha)
    return running.receipt().digest
