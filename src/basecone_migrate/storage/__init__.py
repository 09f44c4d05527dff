"""The archive: documents under an environment's root, behind fsspec.

An environment's root is its own ``storage`` URL, or ``<storage root>/<office code>``. A
document lives at ``<root>/<administration id>/<sha256>`` (`keys`: made from the content,
never from a user's file name, so no name can escape the root). Every write goes to a
temporary name in the same folder and is renamed into place once complete, so a reader never
sees half a document; locally what the tool makes is its owner's alone (0700, 0600).

A plain path (or ``file://``) takes a fast path through ``os`` and never imports fsspec
(`local`); an ``s3://`` root makes S3's requests itself, each write and copy checked against
its SHA-256 (`objects.ObjectStore`); any other URL (``memory://`` ...) goes through its fsspec
filesystem, here. `hashing` hashes documents on the way, `places` tells where a root is.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import posixpath
import uuid
from collections.abc import Iterator
from typing import IO, Any

from basecone_migrate.storage import local, places
from basecone_migrate.storage.hashing import (
    ChecksumMismatch,
    ThreadBuffers,
    copy_hashing,
    hash_stream,
    new_buffer,
    require_sha256,
)
from basecone_migrate.storage.keys import KEY, TMP_PREFIX, Stored, document_key, is_document_key
from basecone_migrate.storage.local import private_folders
from basecone_migrate.storage.objects import (
    OBJECT_READ_BLOCK,
    SINGLE_PUT,
    ObjectHead,
    ObjectStore,
    _sessions,
    s3_session,
)
from basecone_migrate.storage.places import ArchiveUnavailable, environment_root

__all__ = [  # what the rest of the code imports from here
    "OBJECT_READ_BLOCK", "SINGLE_PUT", "TMP_PREFIX", "Archive", "ArchiveUnavailable",
    "ChecksumMismatch", "ObjectHead", "Stored", "ThreadBuffers", "_sessions", "copy_hashing",
    "document_key", "environment_root", "hash_stream", "is_document_key", "new_buffer",
    "private_folders", "require_sha256", "s3_session",
]


class Archive:
    """One environment's archive root."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None,
                 transfers: int = 4) -> None:
        self.url = url
        #: Documents in flight at once on an object store (the ``s3_transfers`` setting).
        self.transfers = transfers
        self._objects: ObjectStore | None = None
        #: The root's own token, from its ownership marker (`ownership.py`), once claimed.
        self.token: str | None = None
        self.endpoint = places.endpoint(storage_options)
        self._fs, self.root, self.is_local, self.object_store = places.resolve(url, storage_options)
        self._made: set[str] = set()

    @property
    def fs(self) -> Any:
        """The fsspec filesystem (for a local root, made only when asked for)."""
        if self._fs is None:
            from fsspec.implementations.local import LocalFileSystem

            self._fs = LocalFileSystem()
        return self._fs

    @property
    def objects(self) -> ObjectStore:
        """The object store's side of this root (``s3://``)."""
        if self._objects is None:
            self._objects = ObjectStore(self.fs, self.root)
        return self._objects

    def __repr__(self) -> str:
        return f"Archive({self.url!r})"

    # -- paths ---------------------------------------------------------------

    def path(self, key: str) -> str:
        if not KEY.fullmatch(key):
            raise ValueError(f"not a document key: {key!r}")
        return self._join(key)

    def _join(self, *parts: str) -> str:
        if self.is_local:
            return os.path.join(self.root, *parts)
        return posixpath.join(self.root, *parts)

    def _folder(self, administration_id: int) -> str:
        folder = self._join(str(administration_id))
        if folder not in self._made and not self.object_store:  # an object store has no folders
            if self.is_local:
                private_folders(folder)
            else:
                self.fs.makedirs(folder, exist_ok=True)
            self._made.add(folder)
        return folder

    def _names(self, folder: str) -> list[str]:
        if self.is_local:
            return os.listdir(folder)
        return [posixpath.basename(p) for p in self.fs.ls(folder, detail=False)]

    # -- reading -------------------------------------------------------------

    def exists(self, key: str) -> bool:
        path = self.path(key)
        return os.path.isfile(path) if self.is_local else self.fs.isfile(path)

    def size(self, key: str) -> int | None:
        path = self.path(key)
        try:
            return os.stat(path).st_size if self.is_local else int(self.fs.size(path))
        except FileNotFoundError:
            return None

    def open(self, key: str) -> IO[bytes]:
        path = self.path(key)
        if self.is_local:
            return open(path, "rb", buffering=0)  # noqa: SIM115 - the caller closes it
        if self.object_store:
            return self.objects.open(path)
        return self.fs.open(path, "rb")

    def checksum(self, key: str, buffer: bytearray | None = None,
                 size: int | None = None) -> tuple[int, str] | None:
        """(size, sha256) of the stored bytes, read and hashed; None when it is missing.
        Given the size it should have, a small object on an object store costs one GET."""
        if self.object_store and size is not None:
            try:
                data = self.read_small(key, size)
            except FileNotFoundError:
                return None
            if data is not None:
                return len(data), hashlib.sha256(data).hexdigest()
        try:
            with self.open(key) as handle:
                return hash_stream(handle, buffer or new_buffer())
        except FileNotFoundError:
            return None

    def holds(self, key: str, size: int, sha256: str, buffer: bytearray | None = None) -> bool:
        """Whether the document is here with exactly these bytes: on an object store that
        kept its SHA-256, one HEAD; anywhere else, the bytes read and hashed."""
        if self.object_store:
            head = self.head(key)
            if head is None or head.size != size:
                return False
            if head.sha256 is not None:
                return head.sha256 == sha256
        return self.checksum(key, buffer, size) == (size, sha256)

    def read_small(self, key: str, size: int) -> bytes | None:
        """An object of ``size`` bytes in one GET (`ObjectStore.read_small`); None when it is
        larger, or too large to read this way (then read it as a stream)."""
        if not 0 < size < OBJECT_READ_BLOCK:
            return None
        return self.objects.read_small(self.path(key), size)

    def object_pages(self, prefix: str) -> Iterator[list[dict[str, Any]]]:
        """ListObjectsV2 pages under the root, keys relative to it (`ObjectStore.pages`)."""
        return self.objects.pages(prefix)

    def head(self, key: str) -> ObjectHead | None:
        """An object's size, ETag and the SHA-256 its server keeps (object stores only)."""
        return self.objects.head(self.path(key))

    def keys(self, administration_id: int) -> Iterator[str]:
        try:
            names = self._names(self._join(str(administration_id)))
        except FileNotFoundError:
            return
        for name in names:
            key = f"{administration_id}/{name}"
            if KEY.fullmatch(key):
                yield key

    # -- writing -------------------------------------------------------------

    def write(
        self,
        source: IO[bytes],
        administration_id: int,
        *,
        expect_sha256: str | None = None,
        buffer: bytearray | None = None,
    ) -> Stored:
        """Stream ``source`` into the archive; atomic, hashed on the way.

        With ``expect_sha256`` the document is only put in place when its bytes
        match; otherwise :class:`ChecksumMismatch` is raised and nothing is left.
        """
        if self.object_store:
            return self.objects.write(source, administration_id, expect_sha256, buffer or new_buffer())
        if self.is_local:
            return local.write(source, self._folder(administration_id), administration_id,
                               expect_sha256, buffer or new_buffer())
        temporary = posixpath.join(self._folder(administration_id), TMP_PREFIX + uuid.uuid4().hex)
        buffer = buffer or new_buffer()
        try:
            with self.fs.open(temporary, "wb") as target:
                size, sha256 = copy_hashing(source, target, buffer)
            require_sha256(expect_sha256, sha256)
            key = document_key(administration_id, sha256)
            self.fs.mv(temporary, self.path(key))
        except BaseException:
            self._discard(temporary)
            raise
        return Stored(key, size, sha256)

    def put_file(self, local_path: str | os.PathLike[str], administration_id: int,
                 buffer: bytearray | None = None) -> Stored:
        """Copy a regular file in (``UnreadableFile`` for anything else); an OSError from
        here on is the archive's side. Pass a ``buffer`` to reuse one across many files."""
        from basecone_migrate.files import open_regular

        with open(open_regular(local_path), "rb", buffering=0) as source:
            return self.write(source, administration_id, buffer=buffer)

    def remove_all(self, keys: list[str], threads: int = 4) -> None:
        """Remove many documents (missing ones are fine): in parallel locally, in bulk remotely."""
        if not keys:
            return
        if self.is_local:
            local.remove_all(self.remove, keys, threads)
            return
        if self.object_store:
            self.delete_objects(keys)
            return
        paths = [self.path(k) for k in keys]
        try:
            self.fs.rm(paths)
        except FileNotFoundError:
            for key in keys:
                self.remove(key)

    def delete_objects(self, keys: list[str]) -> None:
        """Remove documents from an object store (`ObjectStore.delete_paths`)."""
        self.objects.delete_paths([self.path(key) for key in keys])

    def remove(self, key: str) -> bool:
        path = self.path(key)
        try:
            if self.is_local:
                os.unlink(path)
            else:
                self.fs.rm_file(path)
        except FileNotFoundError:
            return False
        return True

    def _discard(self, path: str) -> None:
        if self.is_local:
            local.discard(path)
            return
        try:
            self.fs.rm_file(path)
        except FileNotFoundError:
            pass

    def tidy(self, administration_id: int) -> None:
        """Remove leftovers of interrupted writes, and the folder if it is empty."""
        if self.object_store:
            self.objects.tidy(administration_id)
            return
        folder = self._join(str(administration_id))
        try:
            names = self._names(folder)
        except FileNotFoundError:
            return
        for name in names:
            if name.startswith(TMP_PREFIX):
                self._discard(self._join(str(administration_id), name))
        if self.is_local:
            local.remove_empty_folder(folder)
        elif not self.fs.ls(folder, detail=False):
            try:
                self.fs.rmdir(folder)
            except (FileNotFoundError, NotImplementedError, OSError):
                pass
        self._made.discard(folder)

    # -- where it is: one place, whatever its spelling (`places`) ---------------

    def place(self) -> tuple[str, ...]:
        return places.place(self)

    def device_inode(self) -> tuple[int, int] | None:
        return places.device_inode(self.root)

    def same_place(self, other: Archive) -> bool:
        return places.same_place(self, other)

    def same_file(self, other: Archive, key: str) -> bool:
        return places.same_file(self, other, key)

    def overlaps(self, other: Archive) -> bool:
        return places.overlaps(self, other)

    # -- moving between roots --------------------------------------------------

    def shares_filesystem_with(self, other: Archive) -> bool:
        """True when a document can go from here to ``other`` by rename or server-side copy."""
        return places.shares_filesystem(self, other)

    def move_folder(self, other: Archive, administration_id: int) -> bool:
        """Rename one administration's whole folder into ``other`` (both local, one filesystem,
        the target's absent or empty): one system call, made durable by an fsync of both
        roots. False when it cannot be done that way (then each document is renamed)."""
        if not (self.is_local and other.is_local):
            return False
        source, target = self._join(str(administration_id)), other._join(str(administration_id))
        if not local.rename_folder(source, target):
            return False
        self._made.discard(source)
        other._made.add(target)
        for root in (other.root, self.root):
            local.fsync_folder(root)
        return True

    def sizes_of(self, administration_id: int, keys: list[str]) -> Iterator[int | None]:
        return local.sizes_of(self._join(str(administration_id)), keys)

    def rename_many(self, other: Archive, administration_id: int,
                    keys: list[str]) -> Iterator[tuple[str, OSError | None]]:
        """Rename one administration's documents into ``other`` (both local, one filesystem):
        the folders are resolved once, each key is checked, one system call per document."""
        return local.rename_many(self._join(str(administration_id)),
                                 lambda: other._folder(administration_id), administration_id, keys)

    def move_to(self, other: Archive, key: str, sha256: str, buffer: bytearray) -> None:
        """Rename (local) or server-side move (one object store) into ``other``.

        Two mounts of one filesystem share a device number but refuse a rename
        (EXDEV): then the document is streamed and verified instead; the source copy
        goes with the clean-up.
        """
        other._folder(int(key.split("/", 1)[0]))
        if self.object_store:
            self.objects.move(self.path(key), other.path(key), sha256, buffer)
            return
        if not self.is_local:
            self.fs.mv(self.path(key), other.path(key))
            return
        try:
            os.rename(self.path(key), other.path(key))
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            self.copy_to(other, key, sha256, buffer)

    def copy_object_to(self, other: Archive, key: str, sha256: str, etag: str | None,
                       buffer: bytearray | None = None) -> None:
        """A server-side copy into ``other`` on one endpoint, verified; the source stays."""
        self.objects.copy(self.path(key), other.path(key), etag, sha256, buffer)

    def copy_to(self, other: Archive, key: str, sha256: str, buffer: bytearray,
                size: int | None = None) -> int:
        """Stream into ``other``, verifying the recorded checksum before it counts (given
        the recorded size, a small object on an object store is read in one GET)."""
        if self.is_local and other.is_local:  # raw descriptors, one buffer, one pass
            return local.copy(self.path(key), lambda: other._folder(int(key.split("/", 1)[0])),
                              other.path(key), sha256, buffer)
        data = self.read_small(key, size) if self.object_store and size is not None else None
        if data is not None:
            stored = other.write(io.BytesIO(data), int(key.split("/", 1)[0]),
                                 expect_sha256=sha256, buffer=buffer)
            return stored.size
        with self.open(key) as source:
            stored = other.write(
                source, int(key.split("/", 1)[0]), expect_sha256=sha256, buffer=buffer
            )
        return stored.size

    def make_durable(self) -> None:
        """Flush written documents to stable storage before anything relies on them."""
        if not self.is_local:
            return  # an object store's PUT and copy are durable when they return
        local.syncfs(self.root)

    def sync_folder(self, administration_id: int) -> None:
        """Make renames into or out of an administration's folder durable: an fsync of the
        folder commits them, without flushing everything else on the filesystem."""
        if self.is_local:
            local.fsync_folder(self._join(str(administration_id)))
