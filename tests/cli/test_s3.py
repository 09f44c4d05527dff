"""Archives on S3: a real S3 API over HTTP on loopback (moto's server), through the CLI.

Moves between two prefixes of one endpoint are server-side copies (a byte-counting proxy
between the tool and the server shows that the documents never pass through); moves
between a folder and S3 stream and verify every byte; a damaged source is refused in every
direction and nothing is lost.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import S3, SUE, TINA, Cli, make_offer, sample_world, write_world
from tests.netproxy import LatencyProxy

BIG = 400_000  # bytes per document of 1001 here: large enough to see them travel


def _world(world_dir: Path, acme: str | None, book: str | None) -> dict[str, Any]:
    world = sample_world(world_dir)
    for n in (1, 2, 3):  # 1001's documents, made larger
        (world_dir / "docs" / f"invoice-{n}.pdf").write_bytes(bytes([n]) * BIG)
    for environment, storage in zip(world["environments"][:2], (acme, book), strict=True):
        if storage:
            environment["storage"] = storage
    return world


def _move(cli: Cli, world_dir: Path, acme: str | None, book: str | None) -> dict[str, Any]:
    cli.ok("load", write_world(world_dir, _world(world_dir, acme, book)))
    before = cli.ok("archive", "list", "1", "--json").json()
    code = make_offer(cli, "1001")["transfercode"]
    return {"before": before, "code": code}


def _expected(before: list[dict[str, Any]]) -> dict[str, int]:
    return {d["sha256"]: d["size"] for d in before}


def test_load_list_and_verify_on_s3(cli: Cli, world_dir: Path, s3: S3) -> None:
    cli.ok("load", write_world(world_dir, _world(world_dir, s3.url("acme"), None)))
    documents = cli.ok("archive", "list", "1", "--json").json()
    assert s3.keys("acme/1") == sorted(d["sha256"] for d in documents)
    for d in documents:  # the server keeps each document's SHA-256
        head = s3.head(f"acme/{d['storage_key']}")
        assert head["ContentLength"] == d["size"]
        assert head["ChecksumSHA256"] == __import__("base64").b64encode(bytes.fromhex(d["sha256"])).decode()
    assert cli.ok("archive", "verify", "1", "--json").json()["ok"] == 3

    damaged = documents[1]
    s3.client.put_object(Bucket=s3.bucket, Key=f"acme/{damaged['storage_key']}", Body=b"ransomware")
    result = cli("archive", "verify", "1", "--json")
    assert result.exit_code == 1
    assert [d["id"] for d in result.json()["different"]] == [damaged["id"]]


@pytest.fixture
def proxy(s3: S3, monkeypatch: pytest.MonkeyPatch) -> Iterator[LatencyProxy]:
    """Counts the bytes between the tool and the server (no delay)."""
    with LatencyProxy(s3.endpoint, delay=0) as counting:
        monkeypatch.setenv("BASECONE_MIGRATE_S3_ENDPOINT_URL", counting.url)
        yield counting


def test_a_move_between_two_prefixes_of_one_endpoint_stays_on_the_server(
        cli: Cli, world_dir: Path, s3: S3, proxy: LatencyProxy) -> None:
    setup = _move(cli, world_dir, s3.url("acme"), s3.url("book"))
    expected = _expected(setup["before"])
    assert sum(expected.values()) == 3 * BIG
    sent, received = proxy.sent, proxy.received
    result = cli.ok("--as", TINA, "redeem", setup["code"], "--accept-terms", "--json").json()
    assert result["items"][0]["status"] == "completed"
    moved = proxy.sent - sent + proxy.received - received
    assert moved < BIG, f"{moved} bytes went through the machine for a server-side move"
    status = cli.ok("status", str(result["migration_id"]), "--json").json()
    assert status["items"][0]["mode"] == "rename"
    assert s3.keys("acme/1") == [] and s3.keys("book/1") == sorted(expected)
    for sha, size in expected.items():
        head = s3.head(f"book/1/{sha}")
        assert head["ContentLength"] == size
        assert hashlib.sha256(s3.read(f"book/1/{sha}")).hexdigest() == sha
    assert cli.ok("--as", TINA, "archive", "verify", "1", "--json").json()["ok"] == len(expected)


@pytest.mark.parametrize("direction", ["disk to s3", "s3 to disk"])
def test_a_move_between_a_folder_and_s3_streams_every_byte_verified(
        cli: Cli, world_dir: Path, s3: S3, storage: Path, direction: str) -> None:
    acme, book = (None, s3.url("book")) if direction == "disk to s3" else (s3.url("acme"), None)
    setup = _move(cli, world_dir, acme, book)
    expected = _expected(setup["before"])
    result = cli.ok("--as", TINA, "redeem", setup["code"], "--accept-terms", "--json").json()
    assert result["items"][0]["status"] == "completed"
    status = cli.ok("status", str(result["migration_id"]), "--json").json()
    assert status["items"][0]["mode"] == "stream"
    if direction == "disk to s3":
        assert not (storage / "ACME" / "1").exists()
        assert s3.keys("book/1") == sorted(expected)
        found = {sha: s3.read(f"book/1/{sha}") for sha in expected}
    else:
        assert s3.keys("acme/1") == []
        found = {sha: (storage / "BOOK" / "1" / sha).read_bytes() for sha in expected}
        assert sorted(p.name for p in (storage / "BOOK" / "1").iterdir()) == sorted(expected)
    assert {sha: (len(b), hashlib.sha256(b).hexdigest()) for sha, b in found.items()} == {
        sha: (size, sha) for sha, size in expected.items()}


@pytest.mark.parametrize("direction", ["s3 to s3", "disk to s3", "s3 to disk"])
def test_a_damaged_source_is_refused_and_nothing_is_lost(
        cli: Cli, world_dir: Path, s3: S3, storage: Path, direction: str) -> None:
    acme = None if direction == "disk to s3" else s3.url("acme")
    book = None if direction == "s3 to disk" else s3.url("book")
    setup = _move(cli, world_dir, acme, book)
    damaged = setup["before"][0]
    good = b"\x01" * BIG
    assert hashlib.sha256(good).hexdigest() == damaged["sha256"]
    if acme:
        s3.client.put_object(Bucket=s3.bucket, Key=f"acme/{damaged['storage_key']}", Body=b"\x09" * BIG)
    else:
        (storage / "ACME" / damaged["storage_key"]).write_bytes(b"\x09" * BIG)

    result = cli("--as", TINA, "redeem", setup["code"], "--accept-terms", "--json")
    assert result.exit_code == 5
    item = result.json()["items"][0]
    assert item["status"] == "failed"
    status = cli.ok("status", str(result.json()["migration_id"]), "--json").json()
    assert f"document {damaged['id']}: the source bytes do not match the recorded SHA-256" in (
        status["items"][0]["error"])
    at_target = s3.keys("book/1") if book else sorted(
        p.name for p in (storage / "BOOK" / "1").iterdir()) if (storage / "BOOK" / "1").exists() else []
    assert damaged["sha256"] not in at_target  # never copied
    if acme:
        assert damaged["sha256"] in s3.keys("acme/1")  # the source keeps it, for repair
        s3.client.put_object(Bucket=s3.bucket, Key=f"acme/{damaged['storage_key']}", Body=good)
    else:
        assert (storage / "ACME" / damaged["storage_key"]).exists()
        (storage / "ACME" / damaged["storage_key"]).write_bytes(good)

    resumed = cli.ok("--as", TINA, "resume", str(result.json()["migration_id"]), "--json").json()
    assert resumed["items"][0]["status"] == "completed"
    assert cli.ok("--as", TINA, "archive", "verify", "1", "--json").json()["ok"] == 3
    assert cli.ok("--as", SUE, "audit", "--json").json()[-1]["action"] == "transfer_complete"


def test_s3_settings_that_cannot_work_refuse_the_redeem_before_any_change(
        cli: Cli, world_dir: Path, s3: S3, db_url: str, storage: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import snapshot_database

    setup = _move(cli, world_dir, None, s3.url("book"))
    before = snapshot_database(db_url)
    result = cli("--as", TINA, "redeem", setup["code"], "--accept-terms", s3_access_key_id="AKIA-NO-SECRET")
    assert result.exit_code == 2
    assert result.error == ("Error: no S3 secret for access key AKIA-NO-SECRET: store it in the keyring "
                            "(service 'basecone-migrate') or set BASECONE_MIGRATE_S3_SECRET_ACCESS_KEY")
    monkeypatch.setenv("BASECONE_MIGRATE_S3_ENDPOINT_URL", "ftp://127.0.0.1:1")
    result = cli("--as", TINA, "redeem", setup["code"], "--accept-terms")
    assert result.exit_code == 2 and "S3 endpoint (for s3:// archives) 'ftp://127.0.0.1:1'" in result.error
    assert snapshot_database(db_url) == before
    assert (storage / "ACME" / "1").is_dir() and s3.keys("book/1") == []


class RequestLog(logging.Handler):
    """The requests moto's server (in this process) answers, as its log shows them."""

    LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<target>\S+) HTTP/1\.1" (?P<status>\d+)')

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.requests: list[tuple[str, str, int]] = []

    def emit(self, record: logging.LogRecord) -> None:
        found = self.LINE.search(record.getMessage())
        if found:
            self.requests.append((found["method"], found["target"], int(found["status"])))

    @contextlib.contextmanager
    def watching(self) -> Iterator[RequestLog]:
        logger = logging.getLogger("werkzeug")
        level = logger.level
        logger.setLevel(logging.INFO)
        logger.addHandler(self)
        try:
            yield self
        finally:
            logger.removeHandler(self)
            logger.setLevel(level)

    def count(self, method: str, fragment: str = "") -> int:
        return sum(1 for m, target, _ in self.requests if m == method and fragment in target)


def test_a_server_side_move_costs_one_request_a_document_many_in_flight(
        cli: Cli, world_dir: Path, s3: S3) -> None:
    """Each document: one CopyObject that returns the copy's SHA-256 (no HEAD before or
    after, no GET); the sources go a thousand a DeleteObjects; the source is read from a
    listing."""
    world = sample_world(world_dir, documents=0)
    folder = world_dir / "many"
    folder.mkdir()
    paths = []
    for n in range(120):
        (folder / f"doc-{n:03d}.pdf").write_bytes(n.to_bytes(2, "big") * (1000 + n))
        paths.append(f"many/doc-{n:03d}.pdf")
    world["environments"][0]["administrations"][0]["documents"] = paths
    world["environments"][0]["storage"] = s3.url("acme")
    world["environments"][1]["storage"] = s3.url("book")
    cli.ok("load", write_world(world_dir, world), s3_transfers="8")
    before = cli.ok("archive", "list", "1", "--json").json()
    code = make_offer(cli, "1001")["transfercode"]

    with RequestLog().watching() as log:
        result = cli.ok("--as", TINA, "redeem", code, "--accept-terms", "--json", s3_transfers="8")
    assert result.json()["items"][0]["status"] == "completed"
    assert log.count("PUT", f"/{s3.bucket}/book/1/") == 120  # the copies, one each
    documents_read = [r for r in log.requests if r[0] in ("GET", "HEAD") and "/1/" in r[1].split("?")[0]]
    assert documents_read == []
    deletes = log.count("POST", "?delete")
    # Batches of what was recorded, not one a document: one a BATCH_SECONDS of copying (or
    # BATCH_DOCUMENTS), so a loaded machine makes a few more (6 seen at four test processes).
    assert 1 <= deletes <= len(paths) // 10
    assert log.count("DELETE") == 0
    listings = log.count("GET", "list-type=2&prefix=acme/1/")
    assert 1 <= listings <= 4  # the move's, and the clean-up's
    assert s3.keys("acme/1") == []
    assert s3.keys("book/1") == sorted(d["sha256"] for d in before)
    for d in before:  # each copy carries the SHA-256 its server computed
        assert s3.head(f"book/{d['storage_key']}")["ChecksumSHA256"] == base64.b64encode(
            bytes.fromhex(d["sha256"])).decode()


def test_a_load_onto_s3_that_fails_half_way_leaves_no_object_without_its_row(
        cli: Cli, world_dir: Path, s3: S3, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many documents in flight: those that finish after the one that failed are removed
    too, and loading the same file again finishes the job."""
    import errno
    import threading

    from basecone_migrate.services.world import copying as world_copying
    from basecone_migrate.storage import Archive

    world = sample_world(world_dir, documents=0)
    folder = world_dir / "many"
    folder.mkdir()
    paths = []
    for n in range(30):
        (folder / f"doc-{n:02d}.pdf").write_bytes(f"invoice {n}\n".encode() * 100)
        paths.append(f"many/doc-{n:02d}.pdf")
    world["environments"][0]["administrations"][0]["documents"] = paths
    world["environments"][0]["storage"] = s3.url("acme")
    path = write_world(world_dir, world)
    monkeypatch.setattr(world_copying, "DOCUMENT_BATCH", 4)
    write = Archive.write
    calls = {"n": 0}
    lock = threading.Lock()

    def full_store(self: Archive, *args: Any, **kwargs: Any) -> Any:
        with lock:
            calls["n"] += 1
            n = calls["n"]
        if n == 14:
            raise OSError(errno.ENOSPC, "No space left on device")
        return write(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(Archive, "write", full_store)
        stopped = cli("load", path, s3_transfers="6")

    assert stopped.exit_code == 1
    assert ": cannot write to the archive s3://" in stopped.error
    assert "no space left on device" in stopped.error
    listed = cli.ok("archive", "list", "1001", "--json").json()
    assert 0 < len(listed) < 30 and len(listed) % 4 == 0  # whole batches, in the file's order
    assert [d["filename"] for d in listed] == [f"doc-{n:02d}.pdf" for n in range(len(listed))]
    assert calls["n"] > 14  # others were in flight when it failed, and finished
    assert s3.keys("acme/1") == sorted(d["sha256"] for d in listed)  # no object without its row

    report = cli.ok("load", path, "--json", s3_transfers="6").json()
    # The rest of 1001, and a document of an administration the first run never reached.
    assert report["documents"] == {"added": 30 - len(listed) + 1, "already_present": len(listed)}
    assert cli.ok("archive", "verify", "1001", "--json").json()["ok"] == 30
    assert len(s3.keys("acme/1")) == 30


@pytest.mark.parametrize("direction", ["s3 to s3", "disk to s3"])
def test_a_throttling_store_is_waited_for_not_failed(
        cli: Cli, world_dir: Path, s3: S3, storage: Path, proxy: LatencyProxy, direction: str) -> None:
    """S3's ``503 SlowDown`` on copies, uploads and bulk deletes: backed off and retried, the
    move completes with every document once at the target and none left at the source."""
    acme = s3.url("acme") if direction == "s3 to s3" else None
    setup = _move(cli, world_dir, acme, s3.url("book"))
    bucket = s3.bucket

    def copies_uploads_and_deletes(method: str, target: str) -> bool:
        return (method == "PUT" and target.startswith(f"/{bucket}/book/1/")) or (
            method == "POST" and "delete" in target)

    proxy.throttle(4, copies_uploads_and_deletes)
    result = cli("--as", TINA, "redeem", setup["code"], "--accept-terms", "--json", s3_transfers="4")
    assert result.exit_code == 0, result.stderr
    assert result.json()["items"][0]["status"] == "completed"
    assert sum(proxy.counts()["throttled"].values()) == 4  # they were answered SlowDown, and retried
    assert s3.keys("book/1") == sorted(_expected(setup["before"]))
    if acme:
        assert s3.keys("acme/1") == []
    else:
        assert not (storage / "ACME" / "1").exists()
    assert cli.ok("archive", "verify", "1", "--json").json()["ok"] == 3


@pytest.mark.parametrize("direction", ["s3 to s3", "disk to s3", "s3 to disk"])
def test_an_undo_brings_every_object_back_verified(
        cli: Cli, world_dir: Path, s3: S3, storage: Path, direction: str) -> None:
    """The way back on a real S3 API: server-side between prefixes, streamed to and from a
    folder; every document back at ACME with its SHA-256, nothing left at BOOK."""
    acme = None if direction == "disk to s3" else s3.url("acme")
    book = None if direction == "s3 to disk" else s3.url("book")
    setup = _move(cli, world_dir, acme, book)
    expected = _expected(setup["before"])
    cli.ok("--as", TINA, "redeem", setup["code"], "--accept-terms")

    assert cli.ok("--as", TINA, "undo", "1", "--json").json()["items"] == [
        {"administration_id": 1, "status": "undone"}]
    if acme is None:
        found = {p.name: p.read_bytes() for p in (storage / "ACME" / "1").iterdir()}
    else:
        found = {key: s3.read(f"acme/1/{key}") for key in s3.keys("acme/1")}
    assert {sha: (len(b), hashlib.sha256(b).hexdigest()) for sha, b in found.items()} == {
        sha: (size, sha) for sha, size in expected.items()}
    if book is None:
        assert not (storage / "BOOK" / "1").exists()
    else:
        assert s3.keys("book/1") == []
    assert cli.ok("--as", SUE, "archive", "verify", "1", "--json").json()["ok"] == len(expected)
