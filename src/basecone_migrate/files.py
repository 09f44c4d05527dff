"""Input files named by the user (a world, a document, a batch, a config file), checked
before they are read.

Only a regular file is read: a FIFO would block the command forever and ``/dev/zero``
would fill the memory. Every way a name can fail (missing, a folder, too long for the
filesystem, a NUL byte, no permission) becomes one sentence for an ``Error:`` line.

A name read within a `Folder` (a world file's documents) must lie inside that folder, and
no symbolic link is followed on the way: each folder below it is opened with
``O_NOFOLLOW`` relative to the one before, so a link swapped in meanwhile cannot lead out.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Self

_KINDS = ((stat.S_ISDIR, "is a folder"), (stat.S_ISFIFO, "is a FIFO (named pipe)"),
          (stat.S_ISCHR, "is a character device"), (stat.S_ISBLK, "is a block device"),
          (stat.S_ISSOCK, "is a socket"))


class UnreadableFile(Exception):
    """The path names nothing that can be read as a file; ``reason`` says why."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(f"{os.fsdecode(path)!s}: {reason}")
        self.path = path
        self.reason = reason


class TooLarge(UnreadableFile):
    """The file holds more bytes than it may (``limit``)."""

    def __init__(self, path: str | os.PathLike[str], limit: int) -> None:
        super().__init__(path, f"larger than {limit // (1024 * 1024)} MiB" if limit >= 1024 * 1024
                         else f"larger than {limit // 1024} KiB")
        self.limit = limit


class OutsideFolder(UnreadableFile):
    """The name lies outside the folder it must stay within."""


class SymbolicLink(UnreadableFile):
    """The name is, or leads through, a symbolic link, which is not followed."""


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


def inside(folder: str | os.PathLike[str], path: str | os.PathLike[str]) -> str | None:
    """``path`` (relative to ``folder``, or absolute) as a name relative to ``folder``, its
    ``..`` resolved by the name alone; None when it lies outside ``folder``."""
    name = os.path.relpath(os.path.normpath(os.path.join(folder, path)), folder)
    if name == os.curdir or name == os.pardir or name.startswith(os.pardir + os.sep):
        return None
    return name


class Folder:
    """Files read within one folder: each name must lie inside it, and is reached one
    folder at a time, each opened with ``O_NOFOLLOW`` relative to the one above it, so no
    symbolic link is followed, not even one swapped in meanwhile (OutsideFolder,
    SymbolicLink). The last folder reached stays open for the next name: a world's documents
    mostly share one. Close it when done (or use it as a context manager)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._last: tuple[list[str], int] | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._last is not None:
            os.close(self._last[1])
            self._last = None

    def _parent(self, path: str | os.PathLike[str]) -> tuple[int, str]:
        """(descriptor of the folder that holds ``path``, its last name)."""
        name = inside(self.path, path)
        if name is None:
            raise OutsideFolder(path, f"is outside {self.path}")
        *folders, last = name.split(os.sep)
        if self._last is not None and self._last[0] == folders:
            return self._last[1], last
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
        try:
            descriptor = os.open(self.path, flags)
        except OSError as exc:
            raise UnreadableFile(path, os_reason(exc)) from None
        for depth, folder in enumerate(folders):
            try:
                below = os.open(folder, flags | os.O_NOFOLLOW, dir_fd=descriptor)
            except OSError as exc:
                link = exc.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(folder, descriptor)
                os.close(descriptor)
                if link:  # O_DIRECTORY with O_NOFOLLOW says ENOTDIR for a link to a folder
                    through = os.path.join(*folders[:depth + 1])
                    raise SymbolicLink(path, f"leads through the symbolic link {through}") from None
                raise UnreadableFile(path, os_reason(exc)) from None
            os.close(descriptor)
            descriptor = below
        self.close()
        self._last = (folders, descriptor)
        return descriptor, last

    def check(self, path: str | os.PathLike[str]) -> os.stat_result:
        """As `check_regular`, within this folder."""
        folder, name = self._parent(path)
        status = _status(path, name, folder)
        _may_open(path, name, folder)
        return status

    def open(self, path: str | os.PathLike[str]) -> int:
        """As `open_regular`, within this folder: the file too is opened with ``O_NOFOLLOW``."""
        folder, name = self._parent(path)
        _status(path, name, folder)
        try:
            descriptor = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW,
                                 dir_fd=folder)
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # made a link since the check
                raise SymbolicLink(path, "is a symbolic link") from None
            raise UnreadableFile(path, os_reason(exc)) from None
        return _regular(path, descriptor)


def _is_link(name: str, folder: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _checked(path: str | os.PathLike[str], status: os.stat_result) -> os.stat_result:
    if stat.S_ISLNK(status.st_mode):
        raise SymbolicLink(path, "is a symbolic link")
    kind = _kind(status.st_mode)
    if kind is not None:
        raise UnreadableFile(path, f"{kind}, not a regular file")
    return status


def _status(path: str | os.PathLike[str], name: str, folder: int) -> os.stat_result:
    try:
        return _checked(path, os.stat(name, dir_fd=folder, follow_symlinks=False))
    except ValueError:
        raise UnreadableFile(path, "the name contains a NUL byte") from None
    except OSError as exc:
        raise UnreadableFile(path, os_reason(exc)) from None


def _regular(path: str | os.PathLike[str], descriptor: int) -> int:
    """The descriptor, set blocking, once it is known to be a regular file (else closed)."""
    kind = _kind(os.fstat(descriptor).st_mode)
    if kind is not None:
        os.close(descriptor)
        raise UnreadableFile(path, f"{kind}, not a regular file")
    os.set_blocking(descriptor, True)
    return descriptor


def _may_open(path: str | os.PathLike[str], name: str | os.PathLike[str], folder: int | None = None) -> None:
    """UnreadableFile unless the (checked, regular) file opens for reading: its permissions
    are found out before anything changes, not when it is copied."""
    try:
        os.close(os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder))
    except OSError as exc:
        raise UnreadableFile(path, os_reason(exc)) from None


def check_regular(path: str | os.PathLike[str]) -> os.stat_result:
    """The file's status, or UnreadableFile when it is not a regular file we may open (within
    a folder that it must not leave: `Folder.check`)."""
    try:
        status = _checked(path, os.stat(path))
    except ValueError:  # an embedded NUL byte
        raise UnreadableFile(path, "the name contains a NUL byte") from None
    except OSError as exc:
        raise UnreadableFile(path, os_reason(exc)) from None
    _may_open(path, path)
    return status


def open_regular(path: str | os.PathLike[str]) -> int:
    """A descriptor open for reading on a regular file, checked before it is opened (a FIFO
    or a device never is). Opened without blocking and checked on the descriptor itself, so
    a FIFO put in the file's place meanwhile cannot hang us (within a folder that it must
    not leave: `Folder.open`)."""
    check_regular(path)
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except ValueError:
        raise UnreadableFile(path, "the name contains a NUL byte") from None
    except OSError as exc:
        raise UnreadableFile(path, os_reason(exc)) from None
    return _regular(path, descriptor)


def read_regular(path: str | os.PathLike[str], limit: int | None = None) -> bytes:
    """The whole file; with ``limit``, TooLarge for a file of more bytes, refused by its
    size before a byte is read (and never read past the limit, should it grow meanwhile)."""
    descriptor = open_regular(path)
    try:
        with os.fdopen(descriptor, "rb", closefd=True) as handle:
            if limit is None:
                return handle.read()
            if os.fstat(descriptor).st_size > limit:
                raise TooLarge(path, limit)
            data = handle.read(limit + 1)
            if len(data) > limit:
                raise TooLarge(path, limit)
            return data
    except OSError as exc:
        raise UnreadableFile(path, os_reason(exc)) from None


def is_regular(path: Path) -> bool:
    try:
        check_regular(path)
    except UnreadableFile:
        return False
    return True
