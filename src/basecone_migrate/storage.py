"""The archive: documents under an environment's root, behind fsspec.

An environment's root is its own ``storage`` URL, or ``<storage root>/<office code>``.
A document lives at ``<root>/<administration id>/<sha256>``: the key is made by the
tool from the content, never from the user's file name, so no name can escape the
root. Every write goes to a temporary name in the same folder and is renamed into
place once complete, so a reader never sees half a document. Locally the folders the tool
makes (the roots among them) are private to their owner (0700) and so are the documents
(0600): scanned invoices are for nobody else on the machine.

A plain path (or ``file://``) takes a fast path through ``os``: a rename is one system
call, a copy reads and writes raw file descriptors, and fsspec is not even imported.
Any other URL (``s3://``, ``memory://`` ...) goes through its fsspec filesystem.

On S3 (``s3fs``, the ``s3`` extra) a document is written with one PUT that carries its
SHA-256 (the server keeps it: whether a document is there intact costs one HEAD), or, when
larger than SINGLE_PUT, in parts to a temporary key, checked, then copied into place on the
server. A move between two roots of one endpoint is a server-side copy, checked against the
source's size and SHA-256, then the source's delete: no byte passes through this machine.
A source whose bytes no longer match the recorded SHA-256 is never copied.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import io
import itertools
import os
import posixpath
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

CHUNK_SIZE = 1024 * 1024
#: A thread's buffer where documents are in flight to or from an object store.
IN_FLIGHT_CHUNK = 256 * 1024
#: Objects up to this size go to an object store in one PUT, hashed in memory first.
SINGLE_PUT = 8 * 1024 * 1024
#: Bytes per ranged GET when an object is read (and hashed) from an object store.
OBJECT_READ_BLOCK = 8 * 1024 * 1024
TMP_PREFIX = ".tmp-"
#: Keys per DeleteObjects request (S3's limit).
DELETE_BATCH = 1000
#: Modes of what the archive makes on a local disk: its owner's alone.
FOLDER_MODE = 0o700
FILE_MODE = 0o600
_names = itertools.count()
_KEY = re.compile(r"[0-9]+/[0-9a-f]{64}")  # used with fullmatch: no trailing newline slips by


class ChecksumMismatch(Exception):
    """The bytes read do not have the SHA-256 recorded for the document."""


def require_sha256(expected: str | None, read: str) -> None:
    """ChecksumMismatch unless the bytes read have the expected SHA-256 (None: any)."""
    if expected is not None and read != expected:
        raise ChecksumMismatch(f"expected sha256 {expected}, read {read}")


@dataclass(frozen=True)
class Stored:
    key: str
    size: int
    sha256: str


def document_key(administration_id: int, sha256: str) -> str:
    return f"{administration_id}/{sha256}"


def is_document_key(key: str) -> bool:
    return _KEY.fullmatch(key) is not None


def environment_root(storage_root: str, office_code: str, explicit: str | None) -> str:
    if explicit:
        return explicit.rstrip("/") if "://" in explicit else os.path.abspath(explicit)
    if "://" in storage_root:
        return f"{storage_root.rstrip('/')}/{office_code}"
    return os.path.join(storage_root, office_code)


def private_folders(path: str) -> None:
    """``os.makedirs(path, exist_ok=True)``, each folder it makes private (FOLDER_MODE):
    ``makedirs`` gives its mode to the last folder only. Folders already there are left as
    they are."""
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path)
    if parent and parent != path:
        private_folders(parent)
    try:
        os.mkdir(path, FOLDER_MODE)
    except FileExistsError:
        if not os.path.isdir(path):
            raise


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


def b64_sha256(hex_digest: str) -> str:
    """A SHA-256 as S3 reports it (``ChecksumSHA256``: base64 of the digest)."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


@dataclass(frozen=True)
class ObjectHead:
    size: int
    etag: str
    sha256: str | None  # the hex SHA-256 the server keeps for the whole object, if any


def whole_object_sha256(reply: dict[str, Any]) -> str | None:
    """The hex SHA-256 of a whole object from a reply that carries ``ChecksumSHA256``
    (HEAD, CopyObject); None when there is none, or only a composite one of parts."""
    checksum = reply.get("ChecksumSHA256")
    if not checksum or "-" in checksum or reply.get("ChecksumType", "FULL_OBJECT") != "FULL_OBJECT":
        return None
    try:
        return base64.b64decode(checksum, validate=True).hex()
    except ValueError:
        return None


def _no_expect(params: dict[str, Any], **_: Any) -> None:
    """botocore asks every upload to wait for ``100 Continue`` before its body: a second round
    trip a document, to spare sending a body the server might refuse. Ours are small and
    signed; the server hears them out."""
    params.get("headers", {}).pop("Expect", None)


_sessions: dict[int, Any] = {}


def s3_session() -> Any:
    """This process's botocore session for s3fs (one per process: a forked worker must not
    share its parent's), uploads sent without waiting for ``100 Continue``. One session
    object means one s3fs instance per endpoint and credentials (fsspec caches them by their
    options), which a server-side move between two roots relies on."""
    session = _sessions.get(os.getpid())
    if session is None:
        from aiobotocore.session import AioSession

        session = _sessions[os.getpid()] = AioSession()
        session.register("before-call.s3", _no_expect)  # after botocore's own: it takes it out
    return session


class ArchiveUnavailable(Exception):
    """The archive's storage cannot be used as configured (a missing driver, for one)."""


class Archive:
    """One environment's archive root."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None,
                 transfers: int = 4) -> None:
        self.url = url
        #: Documents in flight at once on an object store (the ``s3_transfers`` setting).
        self.transfers = transfers
        self._fs: Any = None
        self.object_store = False
        #: The root's own token, from its ownership marker (`ownership.py`), once claimed.
        self.token: str | None = None
        options = storage_options or {}
        self._endpoint = str(options.get("endpoint_url")
                             or options.get("client_kwargs", {}).get("endpoint_url") or "")
        if "://" not in url or url.startswith("file://"):
            self.is_local = True
            self.root = os.path.abspath(url.removeprefix("file://"))
        else:
            from fsspec.core import url_to_fs
            from fsspec.implementations.local import LocalFileSystem

            try:
                if url.startswith(("s3://", "s3a://")):
                    storage_options = {"session": s3_session(), **(storage_options or {})}
                self._fs, root = url_to_fs(url, **(storage_options or {}))
            except ValueError as exc:  # fsspec knows no such protocol
                raise ArchiveUnavailable(f"the archive {url} names a storage no driver knows ({exc})") from None
            except ImportError as exc:
                raise ArchiveUnavailable(
                    f"the archive {url} needs a driver that is not installed ({exc}); for s3:// "
                    "install the s3 extra: pip install 'basecone-migrate[s3]'") from None
            self.is_local = isinstance(self._fs, LocalFileSystem)
            self.root = os.path.abspath(root) if self.is_local else root.rstrip("/")
            protocols = self._fs.protocol if isinstance(self._fs.protocol, tuple) else (self._fs.protocol,)
            self.object_store = bool({"s3", "s3a"} & set(protocols))
        self._made: set[str] = set()

    @property
    def fs(self) -> Any:
        """The fsspec filesystem (for a local root, made only when asked for)."""
        if self._fs is None:
            from fsspec.implementations.local import LocalFileSystem

            self._fs = LocalFileSystem()
        return self._fs

    def __repr__(self) -> str:
        return f"Archive({self.url!r})"

    # -- paths ---------------------------------------------------------------

    def path(self, key: str) -> str:
        if not _KEY.fullmatch(key):
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

    def _temporary(self, administration_id: int) -> str:
        folder = self._folder(administration_id)
        name = TMP_PREFIX + uuid.uuid4().hex
        return os.path.join(folder, name) if self.is_local else posixpath.join(folder, name)

    def _create_temporary(self, administration_id: int) -> tuple[str, int]:
        """A new, exclusively created local temporary file: (path, descriptor)."""
        folder = self._folder(administration_id)
        name = f"{TMP_PREFIX}{os.getpid()}-{next(_names)}"
        while True:
            path = os.path.join(folder, name)
            try:
                return path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                                     FILE_MODE)
            except FileExistsError:  # left by a dead process with the same pid
                name = TMP_PREFIX + uuid.uuid4().hex

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
        if self.object_store:  # one ranged GET per read, nothing cached: memory stays bounded
            return self.fs.open(path, "rb", block_size=OBJECT_READ_BLOCK, cache_type="none")
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
        """An object expected to hold ``size`` bytes (at most OBJECT_READ_BLOCK), read in one
        ranged GET of one byte more, so a larger object shows without being read whole. None
        when it is larger, or too large to read this way (then read it as a stream)."""
        if not 0 < size < OBJECT_READ_BLOCK:
            return None
        try:
            data: bytes = self.fs.cat_file(self.path(key), start=0, end=size + 1)
        except OSError as exc:
            if exc.errno != errno.EINVAL:  # 416: the range starts past the end, it is empty
                raise
            data = b""
        return data if len(data) <= size else None

    def object_pages(self, prefix: str) -> Iterator[list[dict[str, Any]]]:
        """The objects whose keys start with ``prefix`` under the root, a ListObjectsV2 page
        (up to 1,000) at a time, each entry's ``Key`` relative to the root."""
        bucket, start = self.bucket_key(f"{self.root}/{prefix}")
        root = start[:len(start) - len(prefix)]
        token: dict[str, str] = {}
        while True:
            page = self.fs.call_s3("list_objects_v2", Bucket=bucket, Prefix=start, **token)
            yield [{**entry, "Key": str(entry["Key"])[len(root):]} for entry in page.get("Contents", [])]
            if not page.get("IsTruncated") or not page.get("NextContinuationToken"):
                return
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def bucket_key(self, path: str) -> tuple[str, str]:
        bucket, _, name = path.partition("/")
        return bucket, name

    def head(self, key: str) -> ObjectHead | None:
        """An object's size, ETag and the SHA-256 its server keeps (object stores only)."""
        return self._head(self.path(key))

    def _head(self, path: str) -> ObjectHead | None:
        bucket, name = self.bucket_key(path)
        try:
            found = self.fs.call_s3("head_object", Bucket=bucket, Key=name, ChecksumMode="ENABLED")
        except FileNotFoundError:
            return None
        return ObjectHead(int(found["ContentLength"]), str(found.get("ETag", "")),
                          whole_object_sha256(found))

    def keys(self, administration_id: int) -> Iterator[str]:
        folder = self._join(str(administration_id))
        try:
            names = os.listdir(folder) if self.is_local else [
                posixpath.basename(p) for p in self.fs.ls(folder, detail=False)
            ]
        except FileNotFoundError:
            return
        for name in names:
            key = f"{administration_id}/{name}"
            if _KEY.fullmatch(key):
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
            return self._write_object(source, administration_id, expect_sha256, buffer or new_buffer())
        # Locally a raw, exclusively created, private file: no buffering between us and the disk.
        temporary, descriptor = (self._create_temporary(administration_id) if self.is_local
                                 else (self._temporary(administration_id), None))
        buffer = buffer or new_buffer()
        try:
            target_file = (open(descriptor, "wb", buffering=0) if descriptor is not None  # noqa: SIM115
                           else self.fs.open(temporary, "wb"))
            with target_file as target:
                size, sha256 = copy_hashing(source, target, buffer)
            require_sha256(expect_sha256, sha256)
            key = document_key(administration_id, sha256)
            if self.is_local:
                os.replace(temporary, self.path(key))
            else:
                self.fs.mv(temporary, self.path(key))
        except BaseException:
            self._discard(temporary)
            raise
        return Stored(key, size, sha256)

    def _write_object(self, source: IO[bytes], administration_id: int, expect_sha256: str | None,
                      buffer: bytearray) -> Stored:
        """Up to SINGLE_PUT: read whole, hashed, checked, then one PUT that carries the
        SHA-256 (the server keeps it). Larger: in parts to a temporary key, hashed on the way,
        checked, copied into place on the server, the temporary key removed."""
        digest = hashlib.sha256()
        head = bytearray()
        view = memoryview(buffer)
        while len(head) <= SINGLE_PUT:
            count = source.readinto(view)  # type: ignore[attr-defined]
            if not count:
                break
            head += view[:count]
            digest.update(view[:count])
        else:
            return self._write_parts(source, administration_id, expect_sha256, buffer, head, digest)
        sha256 = digest.hexdigest()
        require_sha256(expect_sha256, sha256)
        key = document_key(administration_id, sha256)
        self._put_checked(self.path(key), bytes(head), sha256)
        return Stored(key, len(head), sha256)

    def _put_checked(self, path: str, data: bytes, sha256: str) -> None:
        """One PUT that carries the SHA-256 just computed: a server that checks and keeps it
        says so in its reply (and botocore need not hash the document again). One that keeps
        none (s3rver, some appliances) is held to the ETag it computed being the MD5 of the
        bytes sent, else the object is read back and hashed: never stored unchecked. Bytes
        other than those sent are removed again: an OSError for the document."""
        bucket, name = self.bucket_key(path)
        reply = self.fs.call_s3("put_object", Bucket=bucket, Key=name, Body=data,
                                ChecksumAlgorithm="SHA256", ChecksumSHA256=b64_sha256(sha256))
        kept = whole_object_sha256(reply)
        if kept is None:
            etag = str(reply.get("ETag", "")).strip('"')
            proven = etag == hashlib.md5(data, usedforsecurity=False).hexdigest()
            kept = sha256 if proven else self._sha256_at(path, new_buffer())
        if kept != sha256:
            self._discard(path)
            raise OSError(errno.EIO, f"the object store kept other bytes than were sent (sha256 {kept}, "
                                     f"sent {sha256})")

    def _write_parts(self, source: IO[bytes], administration_id: int, expect_sha256: str | None,
                     buffer: bytearray, head: bytearray, digest: Any) -> Stored:
        temporary = self._temporary(administration_id)
        try:
            with self.fs.open(temporary, "wb", block_size=SINGLE_PUT) as target:
                target.write(head)
                size, view = len(head), memoryview(buffer)
                del head
                while count := source.readinto(view):  # type: ignore[attr-defined]
                    digest.update(view[:count])
                    target.write(view[:count])
                    size += count
            sha256 = digest.hexdigest()
            require_sha256(expect_sha256, sha256)
            key = document_key(administration_id, sha256)
            self._copy_object(temporary, self.path(key), None, sha256, buffer)
        finally:
            self._discard(temporary)
        return Stored(key, size, sha256)

    def _copy_object(self, source: str, target: str, etag: str | None, sha256: str,
                     buffer: bytearray | None = None) -> None:
        """A copy on the server (same endpoint), checked before it counts: its SHA-256 comes
        back with the copy when asked for (``ChecksumAlgorithm``), so one request does it;
        a server that keeps none has the copy read back and hashed. A copy that is not the
        recorded bytes is removed (ChecksumMismatch); with ``etag`` the server copies only
        while the source is unchanged (If-Match)."""
        bucket, name = self.bucket_key(target)
        from_bucket, from_name = self.bucket_key(source)
        condition = {"CopySourceIfMatch": etag} if etag else {}
        copied = self.fs.call_s3("copy_object", Bucket=bucket, Key=name, ChecksumAlgorithm="SHA256",
                                 CopySource={"Bucket": from_bucket, "Key": from_name}, **condition)
        kept = whole_object_sha256(copied.get("CopyObjectResult", {}))
        if kept is None:  # the server computes no checksum: read the copy and hash it
            kept = self._sha256_at(target, buffer or new_buffer())
        if kept != sha256:
            self._discard(target)
            raise ChecksumMismatch(f"the server's copy of {source} is not what was copied "
                                   f"(expected sha256 {sha256}, found {kept})")

    def _sha256_at(self, path: str, buffer: bytearray) -> str | None:
        """The SHA-256 of an object's bytes, read back (None: it is not there)."""
        try:
            with self.fs.open(path, "rb", block_size=OBJECT_READ_BLOCK, cache_type="none") as handle:
                return hash_stream(handle, buffer)[1]
        except FileNotFoundError:
            return None

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
            from concurrent.futures import ThreadPoolExecutor

            def remove(chunk: list[str]) -> None:
                for key in chunk:
                    self.remove(key)

            # A thread pool ignores map's chunksize: hand each thread a slice, not a key.
            size = max(1, -(-len(keys) // threads))
            with ThreadPoolExecutor(max_workers=threads) as pool:
                list(pool.map(remove, [keys[i:i + size] for i in range(0, len(keys), size)]))
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
        """Remove documents from an object store, a thousand a request (DeleteObjects;
        missing ones are fine). An OSError names the first key the server would not remove."""
        self._delete_paths([self.path(key) for key in keys])

    def _abort_uploads(self, prefix: str) -> None:
        """Abort the multipart uploads a killed run left under ``prefix`` (a store bills
        their parts until then). A store that keeps no list of them (s3rver) has none to
        abort."""
        bucket, start = self.bucket_key(prefix)
        try:
            listed = self.fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=start)
        except (OSError, NotImplementedError):
            return
        except Exception as exc:  # botocore's ClientError for an unknown operation  # noqa: BLE001
            if "NotImplemented" in str(exc):
                return
            raise
        for upload in listed.get("Uploads", []):
            try:
                self.fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=upload["Key"],
                                UploadId=upload["UploadId"])
            except FileNotFoundError:  # finished or aborted meanwhile
                pass

    def _delete_paths(self, paths: list[str]) -> None:
        for start in range(0, len(paths), DELETE_BATCH):
            chunk = paths[start:start + DELETE_BATCH]
            bucket = self.bucket_key(chunk[0])[0]
            reply = self.fs.call_s3("delete_objects", Bucket=bucket, Delete={
                "Objects": [{"Key": self.bucket_key(path)[1]} for path in chunk], "Quiet": True})
            errors = reply.get("Errors") or []
            if errors:
                first = errors[0]
                raise OSError(errno.EIO, f"{len(errors)} of {len(chunk)} objects not removed, "
                              f"{first.get('Key')}: {first.get('Code')} {first.get('Message', '')}".strip())

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
        try:
            if self.is_local:
                os.unlink(path)
            else:
                self.fs.rm_file(path)
        except FileNotFoundError:
            pass

    def tidy(self, administration_id: int) -> None:
        """Remove leftovers of interrupted writes, and the folder if it is empty."""
        folder = self._join(str(administration_id))
        if self.object_store:  # only the temporary keys are listed, not every document
            for page in self.object_pages(f"{administration_id}/{TMP_PREFIX}"):
                self._delete_paths([f"{self.root}/{entry['Key']}" for entry in page])
            self._abort_uploads(f"{folder}/{TMP_PREFIX}")
            return
        try:
            names = os.listdir(folder) if self.is_local else [
                posixpath.basename(p) for p in self.fs.ls(folder, detail=False)
            ]
        except FileNotFoundError:
            return
        for name in names:
            if name.startswith(TMP_PREFIX):
                self._discard(os.path.join(folder, name) if self.is_local else posixpath.join(folder, name))
        if self.is_local:
            try:
                os.rmdir(folder)
            except OSError:
                pass  # not empty: it still holds documents
        elif not self.object_store and not self.fs.ls(folder, detail=False):
            try:
                self.fs.rmdir(folder)
            except (FileNotFoundError, NotImplementedError, OSError):
                pass
        self._made.discard(folder)

    # -- where it is: one place, whatever its spelling ---------------------------

    def place(self) -> tuple[str, ...]:
        """The root, canonically: a local folder as its resolved path (symlinks followed); an
        object store as protocol, endpoint, bucket and the key's parts. Keys are taken
        literally, as the store does: ``a//b`` is not ``a/b`` there (only a trailing slash,
        which no key of ours follows, is dropped)."""
        if self.is_local:
            return ("file", *os.path.realpath(self.root).strip(os.sep).split(os.sep))
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return (protocol, self._endpoint.rstrip("/").lower(), *self.root.rstrip("/").split("/"))

    def device_inode(self) -> tuple[int, int] | None:
        try:
            status = os.stat(self.root)
        except OSError:
            return None
        return status.st_dev, status.st_ino

    def same_place(self, other: Archive) -> bool:
        """One root under two names: the same canonical place, the same folder (device and
        inode: a bind mount), or the same ownership marker read through both (any alias)."""
        if self.place() == other.place():
            return True
        if self.token is not None and self.token == other.token:
            return True
        if self.is_local and other.is_local:
            mine = self.device_inode()
            return mine is not None and mine == other.device_inode()
        return False

    def same_file(self, other: Archive, key: str) -> bool:
        """Whether ``key`` here and in ``other`` is one file (two names of one folder)."""
        if not (self.is_local and other.is_local):
            return False
        try:
            mine, theirs = os.stat(self.path(key)), os.stat(other.path(key))
        except OSError:
            return False
        return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)

    def overlaps(self, other: Archive) -> bool:
        """The same root, or one inside the other: the two would share documents' folders."""
        if self.same_place(other):
            return True
        mine, theirs = self.place(), other.place()
        shorter = min(len(mine), len(theirs))
        return mine[:shorter] == theirs[:shorter] and (self.is_local or shorter > 2)

    # -- moving between roots --------------------------------------------------

    def shares_filesystem_with(self, other: Archive) -> bool:
        """True when a document can go from here to ``other`` by rename or server-side copy."""
        if self.is_local and other.is_local:
            private_folders(self.root)
            private_folders(other.root)
            return os.stat(self.root).st_dev == os.stat(other.root).st_dev
        return self.fs is other.fs

    def move_folder(self, other: Archive, administration_id: int) -> bool:
        """Rename one administration's whole folder into ``other`` (both local, one
        filesystem), when the target has none or an empty one: one system call for the
        whole archive, made durable by an fsync of both roots. False when it cannot be
        done that way (then each document is renamed)."""
        if not (self.is_local and other.is_local):
            return False
        source, target = self._join(str(administration_id)), other._join(str(administration_id))
        try:
            os.rename(source, target)
        except OSError:  # no folder here, a non-empty one there, another filesystem...
            return False
        try:  # a folder an earlier version made open to all is private from here on
            os.chmod(target, FOLDER_MODE)
        except PermissionError:  # another user's folder: its owner decides
            pass
        self._made.discard(source)
        other._made.add(target)
        for root in (other.root, self.root):
            _fsync_folder(root)
        return True

    def sizes_of(self, administration_id: int, keys: list[str]) -> Iterator[int | None]:
        """The size of each document of one administration's folder (None when absent),
        each looked up relative to the folder, opened once."""
        try:
            folder = os.open(self._join(str(administration_id)), os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            for _ in keys:
                yield None
            return
        try:
            for key in keys:
                try:
                    yield os.stat(key.rsplit("/", 1)[1], dir_fd=folder).st_size
                except FileNotFoundError:
                    yield None
        finally:
            os.close(folder)

    def rename_many(self, other: Archive, administration_id: int,
                    keys: list[str]) -> Iterator[tuple[str, OSError | None]]:
        """Rename one administration's documents into ``other`` (both local, one filesystem):
        the folders are resolved once, each key is checked, one system call per document."""
        prefix = f"{administration_id}/"
        for key in keys:
            if not (key.startswith(prefix) and _KEY.fullmatch(key)):
                raise ValueError(f"not a document key of administration {administration_id}: {key!r}")
        # Names relative to the two folders, opened once: the kernel resolves no path per
        # document (a third faster than full paths).
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
        try:
            source = os.open(self._join(str(administration_id)), flags)
        except OSError as exc:
            for key in keys:
                yield key, exc
            return
        try:
            target = os.open(other._folder(administration_id), flags)
            try:
                for key in keys:
                    name = key[len(prefix):]
                    try:
                        os.rename(name, name, src_dir_fd=source, dst_dir_fd=target)
                    except OSError as exc:
                        yield key, exc
                    else:
                        yield key, None
            finally:
                os.close(target)
        finally:
            os.close(source)

    def move_to(self, other: Archive, key: str, sha256: str, buffer: bytearray) -> None:
        """Rename (local) or server-side move (one object store) into ``other``.

        Two mounts of one filesystem share a device number but refuse a rename
        (EXDEV): then the document is streamed and verified instead; the source copy
        goes with the clean-up.
        """
        other._folder(int(key.split("/", 1)[0]))
        if self.object_store:
            self._move_object(other, key, sha256, buffer)
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
        """A server-side copy into ``other`` on one endpoint, verified (`_copy_object`);
        the source stays."""
        self._copy_object(self.path(key), other.path(key), etag, sha256, buffer)

    def _move_object(self, other: Archive, key: str, sha256: str, buffer: bytearray) -> None:
        """A server-side move on one endpoint: the copy checked against the recorded SHA-256
        (`_copy_object`), then the source removed. A damaged source leaves no copy behind."""
        path = self.path(key)
        self._copy_object(path, other.path(key), None, sha256, buffer)
        self.fs.rm_file(path)

    def copy_to(self, other: Archive, key: str, sha256: str, buffer: bytearray,
                size: int | None = None) -> int:
        """Stream into ``other``, verifying the recorded checksum before it counts (given
        the recorded size, a small object on an object store is read in one GET)."""
        if self.is_local and other.is_local:
            return self._copy_local(other, key, sha256, buffer)
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

    def _copy_local(self, other: Archive, key: str, sha256: str, buffer: bytearray) -> int:
        """The hot path between two local roots: raw descriptors, one buffer, one pass."""
        source = os.open(self.path(key), os.O_RDONLY)
        temporary: str | None = None
        try:
            temporary, target = other._create_temporary(int(key.split("/", 1)[0]))
            try:  # raw, unbuffered wrappers: each read and write is one system call
                size, digest = copy_hashing(io.FileIO(source, closefd=False),
                                            io.FileIO(target, "w", closefd=False), buffer)
            finally:
                os.close(target)
            require_sha256(sha256, digest)
            os.replace(temporary, other.path(key))
            return size
        except BaseException:
            if temporary is not None:
                self._discard(temporary)
            raise
        finally:
            os.close(source)

    def make_durable(self) -> None:
        """Flush written documents to stable storage before anything relies on them."""
        if not self.is_local:
            return  # an object store's PUT and copy are durable when they return
        _syncfs(self.root)

    def sync_folder(self, administration_id: int) -> None:
        """Make renames into or out of an administration's folder durable: an fsync of the
        folder commits them, without flushing everything else on the filesystem."""
        if self.is_local:
            _fsync_folder(self._join(str(administration_id)))


def _fsync_folder(path: str) -> None:
    """Commit a folder's entries (renames into or out of it); a missing folder has none."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _syncfs(path: str) -> None:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        descriptor = os.open(path, os.O_RDONLY)
        try:
            if libc.syncfs(descriptor) == 0:
                return
        finally:
            os.close(descriptor)
    except (OSError, AttributeError):
        pass
    os.sync()
