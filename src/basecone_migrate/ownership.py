"""Which database a storage root or an outbox belongs to.

Document keys (``<administration id>/<sha256>``) and mail file names start from each
database's own ids: two databases writing one folder would move, and remove, each other's
documents and overwrite each other's mails. So every archive root and outbox the tool uses
holds a marker, ``.basecone-migrate-database``, written on first use with the identity of
the database that uses it (a random UUID the database keeps, `db/identity.py`), and any
other database is refused there before it reads, writes or removes anything. A folder
inside another database's root (found by the nearest marker above it) is refused too.

The marker also names the root itself with a random token: two spellings of one folder or
bucket (a symlink, a bind mount, ``file://`` and a plain path, two endpoint URLs of one
store) read the same marker, so they are known to be one place even where their paths
differ (`storage.Archive.same_place`).

A local marker is created atomically: written to a temporary name, then linked into place,
which fails if another process got there first (then its marker is read instead); where the
filesystem has no hard links, it is created exclusively instead. On S3 the first write is
conditional (``If-None-Match``). Any other failure to read or write a marker is a
`ForeignRoot` with a problem, never a crash.
"""

from __future__ import annotations

import errno
import json
import os
import posixpath
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

MARKER = ".basecone-migrate-database"
#: A marker is a few hundred bytes; anything larger is not one.
MARKER_LIMIT = 4096


class ForeignRoot(Exception):
    """The folder belongs to another database (``owner``: found at ``place``), or it cannot be
    used (``problem``)."""

    def __init__(self, place: str, owner: Owner | None, problem: str | None = None) -> None:
        super().__init__(place)
        self.place = place
        self.owner = owner
        self.problem = problem


@dataclass(frozen=True)
class Owner:
    database: str  # the identity of the database that uses the root
    root: str  # the root's own token: one per place, whatever its spelling
    url: str  # the database's URL when it claimed the root, without a password
    claimed_at: str

    def describe(self) -> str:
        return f"{self.url}, since {self.claimed_at[:10]}" if self.url else f"database {self.database}"


def _new_marker(database: str, url: str, now: str) -> bytes:
    return json.dumps({"database": database, "root": uuid.uuid4().hex, "url": url,
                       "claimed_at": now}, indent=1).encode() + b"\n"


def _parse(place: str, raw: bytes) -> Owner:
    try:
        data = json.loads(raw.decode("utf-8")) if len(raw) <= MARKER_LIMIT else None
        owner = Owner(str(data["database"]), str(data["root"]), str(data.get("url") or ""),
                      str(data.get("claimed_at") or ""))
    except (ValueError, TypeError, KeyError):
        raise ForeignRoot(place, None, f"its marker {MARKER} is not one this tool wrote") from None
    return owner


def _ours(place: str, owner: Owner | None, database: str) -> Owner | None:
    if owner is not None and owner.database != database:
        raise ForeignRoot(place, owner)
    return owner


# -- local folders -------------------------------------------------------------------------


def _read_local(folder: str) -> Owner | None:
    """The folder's marker, or None when it has none (or the folder is not there)."""
    try:
        descriptor = os.open(os.path.join(folder, MARKER), os.O_RDONLY | os.O_NOFOLLOW)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise ForeignRoot(folder, None, f"its marker {MARKER} cannot be read ({exc.strerror})") from None
    with os.fdopen(descriptor, "rb") as handle:
        return _parse(folder, handle.read(MARKER_LIMIT + 1))


def _parents(folder: str) -> Iterator[str]:
    path = os.path.abspath(folder)
    while (parent := os.path.dirname(path)) != path:
        yield parent
        path = parent


def _check_local_ancestors(folder: str, database: str) -> None:
    """A folder inside another database's root (a marked folder above it) is that one's."""
    for parent in _parents(folder):
        _ours(parent, _read_local(parent), database)


def check_folder(folder: str, database: str) -> Owner | None:
    """The folder's owner when it is this database's (None: not marked yet); ForeignRoot when
    it, or a folder above it, is another's. Nothing is made."""
    owner = _ours(folder, _read_local(folder), database)
    _check_local_ancestors(folder, database)
    return owner


def claim_folder(folder: str, database: str, url: str, now: str) -> Owner:
    """Claim a local folder for ``database`` (made, private, if missing), or ForeignRoot."""
    from basecone_migrate.storage import private_folders

    owner = check_folder(folder, database)
    if owner is not None:
        return owner
    content = _new_marker(database, url, now)
    try:
        private_folders(folder)
        _create(folder, content)
    except FileExistsError:  # another process claimed it meanwhile: its marker decides
        pass
    except OSError as exc:
        raise ForeignRoot(folder, None, f"its marker {MARKER} cannot be written "
                                        f"({exc.strerror or exc})") from None
    found = _ours(folder, _read_local(folder), database)
    if found is None:
        raise ForeignRoot(folder, None, f"its marker {MARKER} vanished as it was written")
    return found


def _create(folder: str, content: bytes) -> None:
    """The marker, whole or not at all: FileExistsError when one is there already."""
    marker = os.path.join(folder, MARKER)
    temporary = os.path.join(folder, f".tmp-{MARKER}-{uuid.uuid4().hex}")
    _write_new(temporary, content)
    try:
        os.link(temporary, marker)
    except OSError as exc:
        if isinstance(exc, FileExistsError) or exc.errno not in (errno.EPERM, errno.ENOTSUP,
                                                                 errno.EOPNOTSUPP, errno.EXDEV,
                                                                 errno.ENOSYS):
            raise
        _write_new(marker, content)  # no hard links here: an exclusive create instead
    finally:
        os.unlink(temporary)


def _write_new(path: str, content: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())


# -- object stores ---------------------------------------------------------------------------


def _read_object(fs: Any, root: str) -> Owner | None:
    """The marker object under ``root``: one ranged GET (a plain read would ask its size
    first, and a missing key would be listed as a folder too)."""
    try:
        return _parse(root, fs.cat_file(posixpath.join(root, MARKER), start=0, end=MARKER_LIMIT + 1))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ForeignRoot(root, None, f"its marker {MARKER} cannot be read ({exc})") from None


def check_object_root(fs: Any, root: str, database: str) -> Owner | None:
    """As `check_folder`, for a root on an fsspec filesystem (an object store: the marker is an
    object; the prefixes above it, down to the bucket, are checked too)."""
    from basecone_migrate.inflight import in_flight

    places = [root]
    while (parent := posixpath.dirname(places[-1])) and parent != places[-1]:
        places.append(parent)
    # Read at once: each is a request of tens of milliseconds to a store far away.
    found = dict(in_flight(lambda place: _read_object(fs, place), places, len(places), "marker"))
    for place in places:
        _ours(place, found[place], database)
    return found[root]


def claim_object_root(fs: Any, root: str, database: str, url: str, now: str,
                      exclusive: bool = False) -> Owner:
    """Claim a root on an fsspec filesystem (``exclusive``: the store refuses a second first
    write, so only one of two claims at once wins)."""
    owner = check_object_root(fs, root, database)
    if owner is not None:
        return owner
    marker = posixpath.join(root, MARKER)
    problem = "it vanished as it was written"
    try:
        fs.pipe_file(marker, _new_marker(database, url, now), **({"mode": "create"} if exclusive else {}))
    except OSError as exc:  # another claim got there first, or the store refused the write
        problem = f"{exc}"
    fs.invalidate_cache(marker)
    found = _ours(root, _read_object(fs, root), database)
    if found is None:
        raise ForeignRoot(root, None, f"its marker {MARKER} cannot be written ({problem})")
    return found
