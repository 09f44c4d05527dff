"""The archive adapter on real local folders, on fsspec's memory filesystem, and on a real
S3 API (moto's server on loopback, through s3fs)."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from basecone_migrate.storage import (
    TMP_PREFIX,
    Archive,
    ChecksumMismatch,
    copy_hashing,
    document_key,
    environment_root,
)


def s3_archive(s3: Any, prefix: str) -> Archive:
    from basecone_migrate.settings import Settings

    url = s3.url(prefix)
    return Archive(url, Settings.load({}).storage_options(url))


@pytest.fixture(params=["local", "memory", "s3"])
def archive(request: pytest.FixtureRequest, tmp_path: Path) -> Archive:
    if request.param == "local":
        return Archive(str(tmp_path / "root"))
    if request.param == "s3":
        return s3_archive(request.getfixturevalue("s3"), "root")
    import fsspec

    fsspec.filesystem("memory").store.clear()
    return Archive(f"memory://bcm-{tmp_path.name}")


def listing(archive: Archive) -> list[str]:
    found = archive.fs.find(archive.root)
    return sorted(p.split(archive.root.rstrip("/") + "/", 1)[1] for p in found)


def test_write_is_hashed_and_keyed_by_content(archive: Archive) -> None:
    data = b"%PDF-1.4 hello\n" * 1000
    stored = archive.write(io.BytesIO(data), 7)
    sha = hashlib.sha256(data).hexdigest()
    assert stored.key == f"7/{sha}" == document_key(7, sha)
    assert (stored.size, stored.sha256) == (len(data), sha)
    with archive.open(stored.key) as handle:
        assert handle.read() == data
    assert listing(archive) == [f"7/{sha}"]  # no temporary file left behind


def test_checksum_mismatch_leaves_nothing(archive: Archive) -> None:
    with pytest.raises(ChecksumMismatch):
        archive.write(io.BytesIO(b"tampered"), 7, expect_sha256="0" * 64)
    assert listing(archive) == []


def test_failure_while_streaming_leaves_nothing(archive: Archive) -> None:
    class Broken(io.RawIOBase):
        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            raise OSError("disk on fire")

    with pytest.raises(OSError, match="disk on fire"):
        archive.write(Broken(), 7)
    assert listing(archive) == []


@pytest.mark.parametrize("key", ["../../etc/passwd", "7/../../x", "/abs/path", "7/" + "a" * 63,
                                 "7/invoice.pdf", "x/" + "a" * 64, "7/" + "a" * 64 + "\n"])
def test_keys_not_made_by_the_tool_are_refused(archive: Archive, key: str) -> None:
    with pytest.raises(ValueError, match="not a document key"):
        archive.path(key)


def test_checksum_reports_missing_and_different(archive: Archive) -> None:
    stored = archive.write(io.BytesIO(b"abc"), 1)
    assert archive.checksum(stored.key) == (3, hashlib.sha256(b"abc").hexdigest())
    archive.remove(stored.key)
    assert archive.checksum(stored.key) is None


def test_tidy_removes_temporaries_and_empty_folders(tmp_path: Path) -> None:
    archive = Archive(str(tmp_path / "root"))
    stored = archive.write(io.BytesIO(b"abc"), 3)
    (tmp_path / "root" / "3" / (TMP_PREFIX + "left-over")).write_bytes(b"half")
    archive.tidy(3)
    assert sorted(os.listdir(tmp_path / "root" / "3")) == [stored.key.split("/")[1]]
    archive.remove(stored.key)
    archive.tidy(3)
    assert not (tmp_path / "root" / "3").exists()


def test_move_and_copy_between_roots(tmp_path: Path) -> None:
    source, target = Archive(str(tmp_path / "a")), Archive(str(tmp_path / "b"))
    one = source.write(io.BytesIO(b"one"), 5)
    two = source.write(io.BytesIO(b"two"), 5)
    assert source.shares_filesystem_with(target)

    source.move_to(target, one.key, one.sha256, bytearray(8))
    assert not source.exists(one.key) and target.checksum(one.key) == (3, one.sha256)

    buffer = bytearray(2)  # smaller than the document: exercises the streaming loop
    assert source.copy_to(target, two.key, two.sha256, buffer) == 3
    assert source.exists(two.key) and target.checksum(two.key) == (3, two.sha256)
    with pytest.raises(ChecksumMismatch):
        source.copy_to(target, two.key, "f" * 64, buffer)


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs /dev/shm")
def test_a_disk_folder_and_dev_shm_are_different_filesystems(tmp_path: Path) -> None:
    shm = Path("/dev/shm") / f"bcm-{os.getpid()}-{tmp_path.name}"
    try:
        same = os.stat(tmp_path).st_dev == os.stat("/dev/shm").st_dev
        assert Archive(str(tmp_path)).shares_filesystem_with(Archive(str(shm))) is same
    finally:
        if shm.exists():
            shm.rmdir()


def test_environment_roots() -> None:
    assert environment_root("/data/archive", "ACME", None) == "/data/archive/ACME"
    assert environment_root("s3://bucket/archive/", "ACME", None) == "s3://bucket/archive/ACME"
    assert environment_root("/data/archive", "ACME", "s3://other/acme/") == "s3://other/acme"


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=5000), buffer_size=st.integers(min_value=1, max_value=700))
def test_copy_hashing_matches_hashlib(data: bytes, buffer_size: int) -> None:
    target = io.BytesIO()
    size, sha = copy_hashing(io.BytesIO(data), target, bytearray(buffer_size))
    assert (size, sha) == (len(data), hashlib.sha256(data).hexdigest())
    assert target.getvalue() == data


def test_a_refused_rename_between_mounts_streams_instead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bind mounts share a device number but refuse rename(2) with EXDEV."""
    import errno

    source, target = Archive(str(tmp_path / "a")), Archive(str(tmp_path / "b"))
    stored = source.write(io.BytesIO(b"invoice"), 5)

    def refuse(src: str, dst: str) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "rename", refuse)
    source.move_to(target, stored.key, stored.sha256, bytearray(4))
    assert target.checksum(stored.key) == (7, stored.sha256)
    assert source.exists(stored.key)  # removed by the transfer's clean-up, after the switch


def test_sync_folder_commits_a_folder_and_ignores_a_missing_one(archive: Archive) -> None:
    stored = archive.write(io.BytesIO(b"x"), 9)
    archive.sync_folder(9)  # an fsync of the folder (nothing to do on an object store)
    archive.sync_folder(10)  # no folder: nothing to make durable
    assert archive.exists(stored.key)


def test_rename_many_moves_one_administrations_documents(tmp_path: Path) -> None:
    source, target = Archive(str(tmp_path / "a")), Archive(str(tmp_path / "b"))
    one, two = (source.write(io.BytesIO(data), 4) for data in (b"one", b"two"))
    source.remove(two.key)  # gone: reported, not raised

    results = dict(source.rename_many(target, 4, [one.key, two.key]))

    assert results[one.key] is None and target.exists(one.key) and not source.exists(one.key)
    assert isinstance(results[two.key], FileNotFoundError)
    with pytest.raises(ValueError, match="not a document key of administration 4"):
        list(source.rename_many(target, 4, ["5/" + "a" * 64]))
    with pytest.raises(ValueError):
        list(source.rename_many(target, 4, ["4/../../etc"]))


# -- object stores --------------------------------------------------------------------------


def test_an_object_keeps_its_sha256_and_a_head_proves_it_is_intact(s3: Any) -> None:
    archive = s3_archive(s3, "acme")
    data = b"%PDF-1.4 invoice\n" * 500
    stored = archive.write(io.BytesIO(data), 4)
    head = archive.head(stored.key)
    assert head is not None and (head.size, head.sha256) == (len(data), stored.sha256)
    assert archive.holds(stored.key, len(data), stored.sha256)
    assert not archive.holds(stored.key, len(data), "0" * 64)
    s3.client.put_object(Bucket=s3.bucket, Key=f"acme/{stored.key}", Body=b"x" * len(data))
    assert not archive.holds(stored.key, len(data), stored.sha256)  # no SHA-256 kept: read and hashed


def test_a_large_object_goes_up_in_parts_and_is_checked(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from basecone_migrate import storage

    monkeypatch.setattr(storage.objects, "SINGLE_PUT", 5 * 1024 * 1024)  # S3's smallest part
    archive = s3_archive(s3, "big")
    data = os.urandom(12 * 1024 * 1024)
    stored = archive.write(io.BytesIO(data), 9, buffer=bytearray(1024 * 1024))
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert s3.keys("big") == [stored.key]  # the temporary key is gone
    assert hashlib.sha256(s3.read(f"big/{stored.key}")).hexdigest() == stored.sha256
    with pytest.raises(ChecksumMismatch):
        archive.write(io.BytesIO(data), 9, expect_sha256="f" * 64, buffer=bytearray(1024 * 1024))
    assert s3.keys("big") == [stored.key]


def test_a_move_on_one_endpoint_is_a_checked_server_side_copy(s3: Any) -> None:
    source, target = s3_archive(s3, "a"), s3_archive(s3, "b")
    assert source.shares_filesystem_with(target)
    one = source.write(io.BytesIO(b"one" * 100), 5)
    source.move_to(target, one.key, one.sha256, bytearray(16))
    assert s3.keys("a") == [] and s3.keys("b") == [one.key]
    assert target.holds(one.key, 300, one.sha256)

    two = source.write(io.BytesIO(b"two" * 100), 5)
    s3.client.put_object(Bucket=s3.bucket, Key=f"a/{two.key}", Body=b"TWO" * 100)  # damaged
    with pytest.raises(ChecksumMismatch):
        source.move_to(target, two.key, two.sha256, bytearray(16))
    assert s3.keys("a") == [two.key] and s3.keys("b") == [one.key]  # nothing copied, nothing lost


def test_streams_between_a_folder_and_an_object_store_are_verified(s3: Any, tmp_path: Path) -> None:
    disk, bucket = Archive(str(tmp_path / "disk")), s3_archive(s3, "remote")
    assert not disk.shares_filesystem_with(bucket)
    up = disk.write(io.BytesIO(b"up" * 1000), 3)
    assert disk.copy_to(bucket, up.key, up.sha256, bytearray(64)) == 2000
    assert bucket.holds(up.key, 2000, up.sha256)
    down = bucket.write(io.BytesIO(b"down" * 1000), 3)
    assert bucket.copy_to(disk, down.key, down.sha256, bytearray(64)) == 4000
    assert disk.checksum(down.key) == (4000, down.sha256)
    s3.client.put_object(Bucket=s3.bucket, Key=f"remote/{down.key}", Body=b"DOWN" * 1000)
    (tmp_path / "disk" / down.key).unlink()
    with pytest.raises(ChecksumMismatch):
        bucket.copy_to(disk, down.key, down.sha256, bytearray(64))
    assert not (tmp_path / "disk" / down.key).exists()
