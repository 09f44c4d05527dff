"""Where an archive's root is: one place, whatever its spelling. A local folder is its
resolved path (or, through a bind mount, its device and inode); an object store is its
protocol, endpoint, bucket and the key's parts; any alias shows by the ownership marker
read through both names (`ownership.py`)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from basecone_migrate.storage.local import private_folders
from basecone_migrate.storage.objects import s3_session

if TYPE_CHECKING:
    from basecone_migrate.storage import Archive


class ArchiveUnavailable(Exception):
    """The archive's storage cannot be used as configured (a missing driver, for one)."""


def endpoint(storage_options: dict[str, Any] | None) -> str:
    """The object store's endpoint a root's options name ("" for none)."""
    options = storage_options or {}
    return str(options.get("endpoint_url")
               or options.get("client_kwargs", {}).get("endpoint_url") or "")


def resolve(url: str, storage_options: dict[str, Any] | None) -> tuple[Any, str, bool, bool]:
    """A root's URL as (fsspec filesystem, root, is local, is an object store). A plain path
    or ``file://`` URL is a local folder and needs no filesystem (None): fsspec is not
    even imported for it."""
    if "://" not in url or url.startswith("file://"):
        return None, os.path.abspath(url.removeprefix("file://")), True, False
    from fsspec.core import url_to_fs
    from fsspec.implementations.local import LocalFileSystem

    try:
        if url.startswith(("s3://", "s3a://")):
            storage_options = {"session": s3_session(), **(storage_options or {})}
        fs, root = url_to_fs(url, **(storage_options or {}))
    except ValueError as exc:  # fsspec knows no such protocol
        raise ArchiveUnavailable(f"the archive {url} names a storage no driver knows ({exc})") from None
    except ImportError as exc:
        raise ArchiveUnavailable(
            f"the archive {url} needs a driver that is not installed ({exc}); for s3:// "
            "install the s3 extra: pip install 'basecone-migrate[s3]'") from None
    is_local = isinstance(fs, LocalFileSystem)
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return (fs, os.path.abspath(root) if is_local else root.rstrip("/"), is_local,
            bool({"s3", "s3a"} & set(protocols)))


def environment_root(storage_root: str, office_code: str, explicit: str | None) -> str:
    if explicit:
        return explicit.rstrip("/") if "://" in explicit else os.path.abspath(explicit)
    if "://" in storage_root:
        return f"{storage_root.rstrip('/')}/{office_code}"
    return os.path.join(storage_root, office_code)


def place(archive: Archive) -> tuple[str, ...]:
    """The root, canonically: a local folder as its resolved path (symlinks followed); an
    object store as protocol, endpoint, bucket and the key's parts. Keys are taken
    literally, as the store does: ``a//b`` is not ``a/b`` there (only a trailing slash,
    which no key of ours follows, is dropped)."""
    if archive.is_local:
        return ("file", *os.path.realpath(archive.root).strip(os.sep).split(os.sep))
    fs = archive.fs
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return (protocol, archive.endpoint.rstrip("/").lower(), *archive.root.rstrip("/").split("/"))


def device_inode(path: str) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def same_place(one: Archive, other: Archive) -> bool:
    """One root under two names: the same canonical place, the same folder (device and
    inode: a bind mount), or the same ownership marker read through both (any alias)."""
    if one.place() == other.place():
        return True
    if one.token is not None and one.token == other.token:
        return True
    if one.is_local and other.is_local:
        mine = one.device_inode()
        return mine is not None and mine == other.device_inode()
    return False


def same_file(one: Archive, other: Archive, key: str) -> bool:
    """Whether ``key`` in both archives is one file (two names of one folder)."""
    if not (one.is_local and other.is_local):
        return False
    try:
        mine, theirs = os.stat(one.path(key)), os.stat(other.path(key))
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)


def overlaps(one: Archive, other: Archive) -> bool:
    """The same root, or one inside the other: the two would share documents' folders."""
    if one.same_place(other):
        return True
    mine, theirs = one.place(), other.place()
    shorter = min(len(mine), len(theirs))
    return mine[:shorter] == theirs[:shorter] and (one.is_local or shorter > 2)


def shares_filesystem(one: Archive, other: Archive) -> bool:
    """True when a document can go from one root to the other by rename (one local
    filesystem) or server-side copy (one object store's filesystem instance)."""
    if one.is_local and other.is_local:
        private_folders(one.root)
        private_folders(other.root)
        return os.stat(one.root).st_dev == os.stat(other.root).st_dev
    return one.fs is other.fs
