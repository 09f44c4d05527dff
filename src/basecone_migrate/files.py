"""Input files named by the user (a world, a document, a batch, a config file), checked
before they are read.

Only a regular file is read: a FIFO would block the command forever and ``/dev/zero``
would fill the memory. Every way a name can fail (missing, a folder, too long for the
filesystem, a NUL byte, no permission) becomes one sentence for an ``Error:`` line.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

_KINDS = ((stat.S_ISDIR, "is a folder"), (stat.S_ISFIFO, "is a FIFO (named pipe)"),
          (stat.S_ISCHR, "is a character device"), (stat.S_ISBLK, "is a block device"),
          (stat.S_ISSOCK, "is a socket"))


class UnreadableFile(Exception):
    """The path names nothing that can be read as a file; ``reason`` says why."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(f"{os.fsdecode(path)!s}: {reason}")
        self.path = path
        self.reason = reason


def os_reason(exc: OSError) -> str:
    """The words for an OSError about a name, without the traceback's vocabulary."""
    if isinstance(exc, FileNotFoundError | NotADirectoryError):
        return "no such file"
    if isinstance(exc, IsADirectoryError):
        return "is a folder"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if exc.errno == errno.ENAMETOOLONG:
        return "the name is too long for the filesystem"
    if exc.errno == errno.ELOOP:
        return "too many levels of symbolic links"
    return (exc.strerror or str(exc)).lower()


def _kind(mode: int) -> str | None:
    for check, reason in _KINDS:
        if check(mode):
            return reason
    return None


def check_regular(path: str | os.PathLike[str]) -> os.stat_result:
    """The file's status, or UnreadableFile when it is not a regular file we may open."""
    try:
        status = os.stat(path)
    except ValueError:  # an embedded NUL byte
        raise UnreadableFile(path, "the name contains a NUL byte") from None
    except OSError as exc:
        raise UnreadableFile(path, os_reason(exc)) from None
    kind = _kind(status.st_mode)
    if kind is not None:
        raise UnreadableFile(path, f"{kind}, not a regular file")
    return status


def open_regular(path: str | os.PathLike[str]) -> int:
    """A descriptor open for reading on a regular file. Opened without blocking and checked
    on the descriptor itself, so a FIFO put in the file's place meanwhile cannot hang us."""
    check_regular(path)
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except ValueError:
        raise UnreadableFile(path, "the name contains a NUL byte") from None
    except OSError as exc:
        raise UnreadableFile(path, os_reason(exc)) from None
    kind = _kind(os.fstat(descriptor).st_mode)
    if kind is not None:
        os.close(descriptor)
        raise UnreadableFile(path, f"{kind}, not a regular file")
    os.set_blocking(descriptor, True)
    return descriptor


def read_regular(path: str | os.PathLike[str]) -> bytes:
    descriptor = open_regular(path)
    try:
        with os.fdopen(descriptor, "rb", closefd=True) as handle:
            return handle.read()
    except OSError as exc:
        raise UnreadableFile(path, os_reason(exc)) from None


def is_regular(path: Path) -> bool:
    try:
        check_regular(path)
    except UnreadableFile:
        return False
    return True
