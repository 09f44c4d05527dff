"""Which database a storage root or an outbox belongs to.

Document keys (``<administration id>/<sha256>``) and mail file names start from each
database's own ids: two databases writing one folder would move, and remove, each other's
documents and overwrite each other's mails. So every archive root and outbox the tool uses
holds a marker, ``.basecone-migrate-database``, written on first use with the identity of
the database that uses it (a random UUID the database keeps, `db/identity.py`), and any
other database is refused there before it reads, writes or removes anything.

The marker also names the root itself with a random token: two spellings of one folder or
bucket (a symlink, a bind mount, ``file://`` and a plain path, two endpoint URLs of one
store) read the same marker, so they are known to be one place even where their paths
differ (`storage.Archive.same_place`).

The marker is created atomically: written to a temporary name, then linked into place, which
fails if another process got there first (then its marker is read instead).
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from typing import Any

MARKER = ".basecone-migrate-database"
#: A marker is a few hundred bytes; anything larger is not one.
MARKER_LIMIT = 4096


class ForeignRoot(Exception):
    """The folder belongs to another database (``owner``), or its marker is unreadable."""

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


def _check(place: str, owner: Owner, database: str) -> Owner:
    if owner.database != database:
        raise ForeignRoot(place, owner)
    return owner


def check_folder(folder: str, database: str) -> None:
    """ForeignRoot when a local folder is marked as another database's; nothing is made."""
    try:
        _check(folder, _read_local(folder, os.path.join(folder, MARKER)), database)
    except (FileNotFoundError, NotADirectoryError):
        pass


def claim_folder(folder: str, database: str, url: str, now: str) -> Owner:
    """Claim a local folder for ``database`` (made, private, if missing), or ForeignRoot."""
    from basecone_migrate.storage import private_folders

    private_folders(folder)
    marker = os.path.join(folder, MARKER)
    try:
        return _check(folder, _read_local(folder, marker), database)
    except FileNotFoundError:
        pass
    temporary = os.path.join(folder, f".tmp-{MARKER}-{uuid.uuid4().hex}")
    content = _new_marker(database, url, now)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, marker)  # fails when another process claimed it meanwhile
        except FileExistsError:
            return _check(folder, _read_local(folder, marker), database)
    finally:
        os.unlink(temporary)
    return _parse(folder, content)


def _read_local(folder: str, marker: str) -> Owner:
    try:
        descriptor = os.open(marker, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError | NotADirectoryError):
            raise
        raise ForeignRoot(folder, None, f"its marker {MARKER} cannot be read ({exc.strerror})") from None
    with os.fdopen(descriptor, "rb") as handle:
        return _parse(folder, handle.read(MARKER_LIMIT + 1))


def claim_object_root(fs: Any, root: str, database: str, url: str, now: str,
                      exclusive: bool = False) -> Owner:
    """Claim a root on an fsspec filesystem (on an object store the marker is an object;
    ``exclusive``: the store refuses a second first write, so only one of two claims wins)."""
    marker = f"{root.rstrip('/')}/{MARKER}"
    try:
        return _check(root, _parse(root, fs.cat_file(marker)), database)
    except FileNotFoundError:
        pass
    try:
        fs.pipe_file(marker, _new_marker(database, url, now), **({"mode": "create"} if exclusive else {}))
    except OSError:
        pass  # another claim got there first: what it wrote is read next
    fs.invalidate_cache(marker)
    return _check(root, _parse(root, fs.cat_file(marker)), database)
