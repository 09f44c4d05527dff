"""An object store's side of an archive (S3 through s3fs, the ``s3`` extra).

A document is written with one PUT that carries its SHA-256 (the server keeps it: whether a
document is there intact costs one HEAD), or, when larger than SINGLE_PUT, in parts to a
temporary key, checked, then copied into place on the server. A copy on one endpoint is a
server-side CopyObject, checked against the recorded SHA-256; removals go a thousand keys
a DeleteObjects request. Paths are ``bucket/prefix/...`` as s3fs spells them, already
checked by the archive (`Archive.path`). botocore and aiobotocore are imported only when a
session is made.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import os
import posixpath
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from basecone_migrate.storage.hashing import (
    ChecksumMismatch,
    hash_stream,
    new_buffer,
    require_sha256,
)
from basecone_migrate.storage.keys import TMP_PREFIX, Stored, document_key

#: Objects up to this size go to an object store in one PUT, hashed in memory first.
SINGLE_PUT = 8 * 1024 * 1024
#: Bytes per ranged GET when an object is read (and hashed) from an object store.
OBJECT_READ_BLOCK = 8 * 1024 * 1024
#: Keys per DeleteObjects request (S3's limit).
DELETE_BATCH = 1000


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


def bucket_key(path: str) -> tuple[str, str]:
    bucket, _, name = path.partition("/")
    return bucket, name


class ObjectStore:
    """One archive root on an object store: its s3fs filesystem and ``bucket/prefix``."""

    def __init__(self, fs: Any, root: str) -> None:
        self.fs = fs
        self.root = root

    # -- reading -------------------------------------------------------------

    def open(self, path: str) -> IO[bytes]:
        """One ranged GET per read, nothing cached: memory stays bounded."""
        handle: IO[bytes] = self.fs.open(path, "rb", block_size=OBJECT_READ_BLOCK, cache_type="none")
        return handle

    def read_small(self, path: str, size: int) -> bytes | None:
        """An object expected to hold ``size`` bytes (0 < size < OBJECT_READ_BLOCK), read in
        one ranged GET of one byte more, so a larger object shows without being read whole.
        None when it is larger."""
        try:
            data: bytes = self.fs.cat_file(path, start=0, end=size + 1)
        except OSError as exc:
            if exc.errno != errno.EINVAL:  # 416: the range starts past the end, it is empty
                raise
            data = b""
        return data if len(data) <= size else None

    def pages(self, prefix: str) -> Iterator[list[dict[str, Any]]]:
        """The objects whose keys start with ``prefix`` under the root, a ListObjectsV2 page
        (up to 1,000) at a time, each entry's ``Key`` relative to the root."""
        bucket, start = bucket_key(f"{self.root}/{prefix}")
        root = start[:len(start) - len(prefix)]
        token: dict[str, str] = {}
        while True:
            page = self.fs.call_s3("list_objects_v2", Bucket=bucket, Prefix=start, **token)
            yield [{**entry, "Key": str(entry["Key"])[len(root):]} for entry in page.get("Contents", [])]
            if not page.get("IsTruncated") or not page.get("NextContinuationToken"):
                return
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def head(self, path: str) -> ObjectHead | None:
        """An object's size, ETag and the SHA-256 its server keeps."""
        bucket, name = bucket_key(path)
        try:
            found = self.fs.call_s3("head_object", Bucket=bucket, Key=name, ChecksumMode="ENABLED")
        except FileNotFoundError:
            return None
        return ObjectHead(int(found["ContentLength"]), str(found.get("ETag", "")),
                          whole_object_sha256(found))

    def sha256_at(self, path: str, buffer: bytearray) -> str | None:
        """The SHA-256 of an object's bytes, read back (None: it is not there)."""
        try:
            with self.open(path) as handle:
                return hash_stream(handle, buffer)[1]
        except FileNotFoundError:
            return None

    # -- writing -------------------------------------------------------------

    def write(self, source: IO[bytes], administration_id: int, expect_sha256: str | None,
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
        self.put_checked(posixpath.join(self.root, key), bytes(head), sha256)
        return Stored(key, len(head), sha256)

    def put_checked(self, path: str, data: bytes, sha256: str) -> None:
        """One PUT that carries the SHA-256 just computed: a server that checks and keeps it
        says so in its reply (and botocore need not hash the document again). One that keeps
        none (s3rver, some appliances) is held to the ETag it computed being the MD5 of the
        bytes sent, else the object is read back and hashed: never stored unchecked. Bytes
        other than those sent are removed again: an OSError for the document."""
        bucket, name = bucket_key(path)
        reply = self.fs.call_s3("put_object", Bucket=bucket, Key=name, Body=data,
                                ChecksumAlgorithm="SHA256", ChecksumSHA256=b64_sha256(sha256))
        kept = whole_object_sha256(reply)
        if kept is None:
            etag = str(reply.get("ETag", "")).strip('"')
            proven = etag == hashlib.md5(data, usedforsecurity=False).hexdigest()
            kept = sha256 if proven else self.sha256_at(path, new_buffer())
        if kept != sha256:
            self.discard(path)
            raise OSError(errno.EIO, f"the object store kept other bytes than were sent (sha256 {kept}, "
                                     f"sent {sha256})")

    def _write_parts(self, source: IO[bytes], administration_id: int, expect_sha256: str | None,
                     buffer: bytearray, head: bytearray, digest: Any) -> Stored:
        temporary = posixpath.join(self.root, str(administration_id), TMP_PREFIX + uuid.uuid4().hex)
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
            self.copy(temporary, posixpath.join(self.root, key), None, sha256, buffer)
        finally:
            self.discard(temporary)
        return Stored(key, size, sha256)

    def copy(self, source: str, target: str, etag: str | None, sha256: str,
             buffer: bytearray | None = None) -> None:
        """A copy on the server (same endpoint), checked before it counts: its SHA-256 comes
        back with the copy when asked for (``ChecksumAlgorithm``), so one request does it;
        a server that keeps none has the copy read back and hashed. A copy that is not the
        recorded bytes is removed (ChecksumMismatch); with ``etag`` the server copies only
        while the source is unchanged (If-Match)."""
        bucket, name = bucket_key(target)
        from_bucket, from_name = bucket_key(source)
        condition = {"CopySourceIfMatch": etag} if etag else {}
        copied = self.fs.call_s3("copy_object", Bucket=bucket, Key=name, ChecksumAlgorithm="SHA256",
                                 CopySource={"Bucket": from_bucket, "Key": from_name}, **condition)
        kept = whole_object_sha256(copied.get("CopyObjectResult", {}))
        if kept is None:  # the server computes no checksum: read the copy and hash it
            kept = self.sha256_at(target, buffer or new_buffer())
        if kept != sha256:
            self.discard(target)
            raise ChecksumMismatch(f"the server's copy of {source} is not what was copied "
                                   f"(expected sha256 {sha256}, found {kept})")

    def move(self, source: str, target: str, sha256: str, buffer: bytearray) -> None:
        """A server-side move on one endpoint: the copy checked against the recorded SHA-256
        (`copy`), then the source removed. A damaged source leaves no copy behind."""
        self.copy(source, target, None, sha256, buffer)
        self.fs.rm_file(source)

    # -- removing ------------------------------------------------------------

    def discard(self, path: str) -> None:
        try:
            self.fs.rm_file(path)
        except FileNotFoundError:
            pass

    def delete_paths(self, paths: list[str]) -> None:
        """Remove objects, a thousand a request (DeleteObjects; missing ones are fine). An
        OSError names the first key the server would not remove."""
        for start in range(0, len(paths), DELETE_BATCH):
            chunk = paths[start:start + DELETE_BATCH]
            bucket = bucket_key(chunk[0])[0]
            reply = self.fs.call_s3("delete_objects", Bucket=bucket, Delete={
                "Objects": [{"Key": bucket_key(path)[1]} for path in chunk], "Quiet": True})
            errors = reply.get("Errors") or []
            if errors:
                first = errors[0]
                raise OSError(errno.EIO, f"{len(errors)} of {len(chunk)} objects not removed, "
                              f"{first.get('Key')}: {first.get('Code')} {first.get('Message', '')}".strip())

    def tidy(self, administration_id: int) -> None:
        """Remove the temporary keys of interrupted writes (only those are listed, not every
        document) and abort the uploads they left."""
        for page in self.pages(f"{administration_id}/{TMP_PREFIX}"):
            self.delete_paths([f"{self.root}/{entry['Key']}" for entry in page])
        self.abort_uploads(f"{posixpath.join(self.root, str(administration_id))}/{TMP_PREFIX}")

    def abort_uploads(self, prefix: str) -> None:
        """Abort the multipart uploads a killed run left under ``prefix`` (a store bills
        their parts until then). A store that keeps no list of them (s3rver) has none to
        abort."""
        bucket, start = bucket_key(prefix)
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
