"""What a document is called in an archive: ``<administration id>/<sha256>``, made by the
tool from the content, checked against a pattern before any path is built."""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Temporary names (writes in progress) start with this; no document key does.
TMP_PREFIX = ".tmp-"
KEY = re.compile(r"[0-9]+/[0-9a-f]{64}")  # used with fullmatch: no trailing newline slips by


@dataclass(frozen=True)
class Stored:
    key: str
    size: int
    sha256: str


def document_key(administration_id: int, sha256: str) -> str:
    return f"{administration_id}/{sha256}"


def is_document_key(key: str) -> bool:
    return KEY.fullmatch(key) is not None
