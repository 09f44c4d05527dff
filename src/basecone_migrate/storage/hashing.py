"""SHA-256 on the way through: copies hashed in one pass, in constant memory (one buffer
a thread), and the check against the recorded digest."""

from __future__ import annotations

import hashlib
import threading
from typing import IO

CHUNK_SIZE = 1024 * 1024
#: A thread's buffer where documents are in flight to or from an object store.
IN_FLIGHT_CHUNK = 256 * 1024


class ChecksumMismatch(Exception):
    """The bytes read do not have the SHA-256 recorded for the document."""


def require_sha256(expected: str | None, read: str) -> None:
    """ChecksumMismatch unless the bytes read have the expected SHA-256 (None: any)."""
    if expected is not None and read != expected:
        raise ChecksumMismatch(f"expected sha256 {expected}, read {read}")


def copy_hashing(source: IO[bytes], target: IO[bytes], buffer: bytearray) -> tuple[int, str]:
    """Copy in one pass, hashing what is written, in constant memory (one buffer)."""
    digest = hashlib.sha256()
    view = memoryview(buffer)
    size = 0
    readinto = getattr(source, "readinto", None)
    while True:
        if readinto is not None:
            count = readinto(view)
            chunk = view[:count] if count else b""
        else:
            chunk = source.read(len(buffer))
            count = len(chunk)
        if not count:
            break
        digest.update(chunk)
        written = target.write(chunk) or 0
        while written < count:  # a raw file may take part of a chunk
            written += target.write(chunk[written:]) or 0
        size += count
    return size, digest.hexdigest()


def hash_stream(source: IO[bytes], buffer: bytearray) -> tuple[int, str]:
    digest = hashlib.sha256()
    view = memoryview(buffer)
    size = 0
    while count := source.readinto(view):  # type: ignore[attr-defined]
        digest.update(view[:count])
        size += count
    return size, digest.hexdigest()


def new_buffer() -> bytearray:
    return bytearray(CHUNK_SIZE)


class ThreadBuffers(threading.local):
    """One reusable buffer a thread, made on the thread's first use. Where many documents
    are in flight to or from an object store the wait is the network's, not the copy's:
    ``for_store`` gives each thread a smaller one (IN_FLIGHT_CHUNK)."""

    def __init__(self, for_store: bool = False) -> None:
        self.size = IN_FLIGHT_CHUNK if for_store else CHUNK_SIZE
        self.buffer: bytearray | None = None

    def get(self) -> bytearray:
        if self.buffer is None:
            self.buffer = bytearray(self.size)
        return self.buffer
