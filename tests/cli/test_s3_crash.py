"""Killed at any moment on a real S3 API, then resumed: nothing lost, nothing doubled.

An administration of a few hundred small documents moves to an S3 target, on moto's server
and on s3rver (which keeps no checksums: the engine must read and hash there), both over HTTP
on loopback, with the database on SQLite and on PostgreSQL: between two prefixes of one
endpoint (server-side copies) and from a folder (streamed), BASECONE_MIGRATE_S3_TRANSFERS
documents in flight. The tool reaches the server through a proxy on loopback that can stop
answering at a chosen moment (the process then waits on S3 as if the network had gone), so
that a SIGKILL lands exactly there: once a fifth of the documents arrived, just before the
sources are deleted, just after; and at a random moment (BASECONE_MIGRATE_TEST_SEED replays
one). After each kill every document is at the source, or intact at the target with its copy
recorded; `resume` (or two at once) ends with every document once at the target with its
SHA-256, none left at the source, no temporary key (nor, for documents sent in parts, an
unfinished multipart upload).

Also: bad settings (an unreachable endpoint, an unknown access key, a missing bucket) refuse
with one `Error:` line and change nothing; a server that says SlowDown slows the move down
but fails nothing; a document that s3rver stores with other bytes than were sent keeps its
source.
"""

from __future__ import annotations

import hashlib
import http.client
import http.server
import itertools
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from basecone_migrate.db.models import MigrationItem, TransferProgress
from tests.conftest import (
    S3,
    TINA,
    Cli,
    forget_s3_clients,
    make_offer,
    snapshot_database,
    snapshot_files,
    without_clock_warning,
    write_world,
)
from tests.integration.test_transfer import many_documents
from tests.netproxy import LatencyProxy

pytestmark = pytest.mark.slow

DOCUMENTS = 120
SIZE = 2_000
#: Documents in flight, the setting the engine reads (one at a time before it existed).
IN_FLIGHT = "16"
SEED = os.environ.get("BASECONE_MIGRATE_TEST_SEED")  # replays the random kills of a failed run
PATHS = ("s3 to s3", "folder to s3")
ANOTHER_PROCESS = ("Error: migration 1 is being transferred by another process right now: wait "
                   "for it, or follow it with `basecone-migrate status 1 --watch`")


# -- the way to the server ---------------------------------------------------------------------

#: Tells a request by its method and path (with the query).
Request = Callable[[str, str], bool]


def DELETE(command: str, path: str) -> bool:
    """A DeleteObjects (the sources' removal, a thousand keys a request)."""
    return command == "POST" and "?delete" in path


def PART(command: str, path: str) -> bool:
    """A part of a multipart upload (a large document on its way, the upload begun)."""
    return command == "PUT" and "uploadId=" in path


class S3Proxy:
    """An HTTP proxy on loopback in front of an S3 server, for the tool's processes.

    It counts the documents that arrive at the target prefix (PUT and CopyObject answered
    2xx). From a chosen moment on it *holds* every request: none is forwarded or answered
    until `release`, and then each is dropped (its connection closed), as if the network
    had gone, so a process waiting on S3 can be killed at exactly that point. The moment:
    ``hold(after_arrivals=N)`` (N documents arrived), ``hold(before=DELETE)`` (the first
    DeleteObjects, itself held), ``hold(after=DELETE)`` (once one was answered).
    While ``damaging`` it changes a byte of documents on their way. (Latency and SlowDown
    are `tests.netproxy.LatencyProxy`'s.)
    """

    def __init__(self, target: str, bucket: str, target_prefix: str) -> None:
        host, port = target.removeprefix("http://").split(":")
        self.arrival = f"/{bucket}/{target_prefix}/"
        self.lock = threading.Lock()
        self.holding = threading.Event()
        self.released = threading.Event()
        self.damaging = 0  # documents PUT to the target whose bytes are changed on the way
        self.arrived = 0
        self.hold()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else each answer waits for a delayed ACK
            upstream: http.client.HTTPConnection | None = None

            def log_message(self, *_: Any) -> None:
                pass

            def _relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if proxy.held(self.command, self.path):
                    proxy.released.wait(timeout=120)
                    self.close_connection = True  # dropped, unanswered
                    return
                body = proxy.damage(self.command, self.path, body)
                if self.upstream is None:  # one upstream connection per client connection
                    self.upstream = http.client.HTTPConnection(host, int(port), timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "expect"}
                try:
                    self.upstream.request(self.command, self.path, body=body or None,
                                          headers=headers)
                    answer = self.upstream.getresponse()
                    data = answer.read()
                except BaseException:
                    self.upstream.close()
                    self.upstream = None
                    raise
                length = answer.getheader("Content-Length") if self.command == "HEAD" else None
                self._answer(answer.status, answer.reason, answer.getheaders(), data, length)
                proxy.answered(self.command, self.path, answer.status)

            def _answer(self, status: int, reason: str, headers: list[tuple[str, str]],
                        data: bytes, length: str | None = None) -> None:
                self.send_response(status, reason)
                for name, value in headers:
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", length or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, *_: Any) -> None:
                pass  # a client killed mid-request: nothing to report

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def hold(self, after_arrivals: int | None = None, before: Request | None = None,
             after: Request | None = None) -> None:
        """Forward everything until the moment given (none: never hold): ``before`` and
        ``after`` tell a request (method, path and query) by which to hold."""
        with self.lock:
            self.arrived = 0
            self.after_arrivals, self.before, self.after = after_arrivals, before, after
            self.released.clear()
            self.holding.clear()

    def release(self) -> None:
        """Drop what is held and forward again (until `hold` sets a new moment)."""
        self.hold()
        self.released.set()

    def held(self, command: str, path: str) -> bool:
        with self.lock:
            if self.before is not None and self.before(command, path):
                self.holding.set()
            return self.holding.is_set()

    def answered(self, command: str, path: str, status: int) -> None:
        with self.lock:
            if command == "PUT" and path.startswith(self.arrival) and 200 <= status < 300:
                self.arrived += 1
                if self.after_arrivals is not None and self.arrived >= self.after_arrivals:
                    self.holding.set()
            if self.after is not None and self.after(command, path):
                self.holding.set()

    def wait_held(self, process: subprocess.Popen[str], timeout: float = 90) -> bool:
        """Wait until requests are held (the process is stuck at the moment chosen); False
        when the process ended first."""
        deadline = time.monotonic() + timeout
        while not self.holding.wait(0.02):
            if process.poll() is not None:
                return False
            assert time.monotonic() < deadline, f"the moment did not come in {timeout} s"
        return True

    def damage(self, command: str, path: str, body: bytes) -> bytes:
        """One byte of a document's body changed on its way to the target (its headers, the
        SHA-256 the tool sent among them, unchanged), while ``damaging`` says how many more."""
        with self.lock:
            if not (self.damaging and command == "PUT" and path.startswith(self.arrival)
                    and "?" not in path and body):
                return body
            self.damaging -= 1
        return bytes([body[0] ^ 0xFF]) + body[1:]

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


# -- an administration on its way ------------------------------------------------------------


@dataclass
class Move:
    """One administration (id 1) of DOCUMENTS documents offered from ACME to BOOK, whose
    archive is on S3; ACME's is under the same bucket (``s3 to s3``) or a folder."""

    cli: Cli
    env: dict[str, str]  # what a process of the tool gets, besides the AWS_* variables
    s3: S3
    path: str
    source_folder: Path
    db_url: str
    tmp: Path
    proxy: S3Proxy
    code: str = ""
    before: list[dict[str, Any]] | None = None
    runs: int = 0

    @property
    def documents(self) -> list[dict[str, Any]]:
        assert self.before is not None
        return self.before

    def start(self, *args: str) -> subprocess.Popen[str]:
        """The tool in its own process, its output in files (read with `output`)."""
        self.runs += 1
        full = {k: v for k, v in os.environ.items() if not k.startswith("BASECONE_MIGRATE_")}
        full.update(self.env)
        out = open(self.tmp / f"run-{self.runs}.out", "w")  # noqa: SIM115 - closed by the child's end
        err = open(self.tmp / f"run-{self.runs}.err", "w")  # noqa: SIM115
        process = subprocess.Popen([sys.executable, "-m", "basecone_migrate", *args], env=full,
                                   stdout=out, stderr=err, text=True)
        out.close()
        err.close()
        process.run = self.runs  # type: ignore[attr-defined]
        return process

    def output(self, process: subprocess.Popen[str]) -> tuple[str, str]:
        run = process.run  # type: ignore[attr-defined]
        return ((self.tmp / f"run-{run}.out").read_text(),
                without_clock_warning((self.tmp / f"run-{run}.err").read_text()))

    def redeem(self) -> subprocess.Popen[str]:
        return self.start("--as", TINA, "redeem", self.code, "--accept-terms")

    def resume(self) -> subprocess.Popen[str]:
        return self.start("--as", TINA, "resume", "1")

    def at_target(self) -> list[str]:
        return self.s3.keys("book/1")

    def at_source(self) -> list[str]:
        if self.path == "s3 to s3":
            return self.s3.keys("acme/1")
        folder = self.source_folder / "1"
        return sorted(os.listdir(folder)) if folder.exists() else []


def make_move(cli: Cli, env_vars: dict[str, str], s3: S3, world_dir: Path, storage: Path,
              db_url: str, tmp_path: Path, path: str, documents: int = DOCUMENTS,
              size: int = SIZE) -> Move:
    world = many_documents(world_dir, documents, size=size)
    if path == "s3 to s3":
        world["environments"][0]["storage"] = s3.url("acme")
    world["environments"][1]["storage"] = s3.url("book")
    cli.ok("load", write_world(world_dir, world))
    proxy = S3Proxy(s3.endpoint, s3.bucket, "book/1")
    env = {**env_vars, "BASECONE_MIGRATE_S3_ENDPOINT_URL": proxy.url,
           "BASECONE_MIGRATE_S3_TRANSFERS": IN_FLIGHT}
    moving = Move(cli, env, s3, path, storage / "ACME", db_url, tmp_path, proxy)
    moving.before = cli.ok("archive", "list", "1", "--json").json()
    assert len(moving.documents) == documents
    assert sorted(moving.at_source()) == sorted(d["sha256"] for d in moving.documents)
    moving.code = make_offer(cli, "1001")["transfercode"]
    return moving


@pytest.fixture
def move(cli: Cli, env_vars: dict[str, str], s3_on: S3, world_dir: Path, storage: Path,
         db_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Move]:
    """DOCUMENTS documents offered, along the path of the test's parameter (else s3 to s3)."""
    path = request.param if hasattr(request, "param") else "s3 to s3"
    moving = make_move(cli, env_vars, s3_on, world_dir, storage, db_url, tmp_path, path)
    yield moving
    moving.proxy.close()


def with_paths(test: Any) -> Any:
    """Run ``test`` with a `move` along each path (server-side copies, streamed)."""
    return pytest.mark.parametrize("move", PATHS, indirect=True)(test)


# -- observing it ------------------------------------------------------------------------------


def wait_until(process: subprocess.Popen[str], seen: Any, timeout: float = 90) -> bool:
    """Wait until ``seen()`` holds, polled often; False when the process ended first."""
    deadline = time.monotonic() + timeout
    while not seen():
        if process.poll() is not None:
            return False
        assert time.monotonic() < deadline, f"not seen in {timeout} s"
        time.sleep(0.002)
    return True


def kill(process: subprocess.Popen[str], proxy: S3Proxy) -> bool:
    """SIGKILL, as a machine that dies, then what it left waiting at the proxy is dropped;
    False when the process had already ended."""
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    proxy.release()
    return process.returncode == -signal.SIGKILL


def progress_rows(db_url: str) -> tuple[Any, set[int]]:
    engine = create_engine(db_url)
    with engine.connect() as connection:
        item = connection.execute(select(MigrationItem.__table__)).one()
        done = set(connection.scalars(select(TransferProgress.document_id)))
    engine.dispose()
    return item, done


def read_all(s3: S3, keys: list[str]) -> dict[str, bytes]:
    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(zip(keys, pool.map(s3.read, keys), strict=True))


def assert_nothing_lost(move: Move, moment: str) -> None:
    """Every document is at the source, or at the target with its bytes and recorded as such
    (a progress row, or the item switched over): no later run needs a source that is gone."""
    source, target = set(move.at_source()), set(move.at_target())
    gone = [d for d in move.documents if d["sha256"] not in source]
    lost = [d["id"] for d in gone if d["sha256"] not in target]
    assert not lost, f"{moment}: documents {lost} are neither at the source nor at the target"
    found = read_all(move.s3, [f"book/1/{d['sha256']}" for d in gone])
    damaged = [d["id"] for d in gone
               if hashlib.sha256(found[f"book/1/{d['sha256']}"]).hexdigest() != d["sha256"]]
    assert not damaged, f"{moment}: the sources of {damaged} are gone and their copies differ"
    item, recorded = progress_rows(move.db_url)
    if item.status != "completed" and item.phase == "copying":
        unrecorded = sorted(d["id"] for d in gone if d["id"] not in recorded)
        assert not unrecorded, (f"{moment}: {len(unrecorded)} of {len(gone)} sources removed before "
                                f"their copy was recorded (documents {unrecorded[:10]}...)")


def assert_moved_once(move: Move) -> None:
    """The migration completed; every document once at the target with its SHA-256 (read
    back), nothing else there, nothing left at the source; `archive verify` agrees."""
    cli = move.cli
    status = cli.ok("status", "1", "--json").json()
    assert (status["status"], [i["status"] for i in status["items"]]) == ("completed", ["completed"])
    shas = sorted(d["sha256"] for d in move.documents)
    assert move.at_target() == shas  # once each, no temporary or stray key
    found = read_all(move.s3, [f"book/1/{sha}" for sha in shas])
    assert {k.rsplit("/", 1)[1]: hashlib.sha256(v).hexdigest() for k, v in found.items()} == {
        sha: sha for sha in shas}
    assert move.at_source() == []  # no leftover, temporary keys included
    after = cli.ok("archive", "list", "1", "--json").json()
    assert [(d["id"], d["sha256"], d["size"]) for d in after] == [
        (d["id"], d["sha256"], d["size"]) for d in move.documents]
    assert cli.ok("--as", TINA, "archive", "verify", "1", "--json").json()["ok"] == len(shas)


def finish(move: Move) -> None:
    """A last `resume`, left to finish: exit 0 (with a warning when nothing was left)."""
    last = move.resume()
    last.wait(timeout=120)
    _, err = move.output(last)
    assert last.returncode == 0, err


def rng_for(request: pytest.FixtureRequest) -> tuple[random.Random, str]:
    seed = SEED or str(zlib.crc32(request.node.nodeid.encode()))
    return random.Random(int(seed)), f"BASECONE_MIGRATE_TEST_SEED={seed}"


# -- killed, resumed -------------------------------------------------------------------------


@with_paths
def test_killed_at_any_moment_then_resumed_every_document_arrives_once(
        move: Move, request: pytest.FixtureRequest) -> None:
    rng, replay = rng_for(request)
    proxy = move.proxy

    proxy.hold(after_arrivals=DOCUMENTS // 5)  # 1. copying, a fifth of the documents there
    redeem = move.redeem()
    assert proxy.wait_held(redeem), move.output(redeem)
    assert kill(redeem, proxy), "killed mid-way"
    item, _ = progress_rows(move.db_url)
    assert (item.status, item.phase) == ("in_progress", "copying")
    assert_nothing_lost(move, "killed with a fifth of the documents copied")

    # 2. the crash between copy and delete: every copy there, the sources not yet deleted
    if move.path == "s3 to s3":
        proxy.hold(before=DELETE)  # the DeleteObjects of the sources is held, never sent
        resumed = move.resume()
        reached = proxy.wait_held(resumed)
    else:  # the source is a folder: watched as it empties
        resumed = move.resume()
        reached = wait_until(resumed, lambda: len(move.at_source()) < DOCUMENTS)
    if kill(resumed, proxy) and reached:
        assert_nothing_lost(move, "killed as the sources were to go")
    else:
        assert resumed.returncode == 0, move.output(resumed)

    if move.path == "s3 to s3":  # 3. the sources deleted, the item not yet completed
        proxy.hold(after=DELETE)
        resumed = move.resume()
        reached = proxy.wait_held(resumed)
        if kill(resumed, proxy) and reached:
            assert_nothing_lost(move, "killed after the sources were deleted")
        else:
            assert resumed.returncode == 0, move.output(resumed)

    delay = rng.uniform(0.2, 1.5)  # 4. killed at a random moment
    resumed = move.resume()
    time.sleep(delay)
    if kill(resumed, proxy):
        assert_nothing_lost(move, f"a resume killed after {delay:.2f} s ({replay})")
    else:
        assert resumed.returncode == 0, (replay, move.output(resumed))

    finish(move)
    assert_moved_once(move)


@pytest.mark.parametrize(("s3_server", "backend"), [("moto", "postgresql"), ("s3rver", "sqlite")],
                         indirect=["s3_server"])
def test_another_process_finishes_what_a_killed_one_left(move: Move) -> None:
    """Two resumes at once right after a kill (two workers taking the same migration): one
    finishes it, the other is refused or finds nothing left; the end is the same."""
    move.proxy.hold(after_arrivals=DOCUMENTS // 3)
    redeem = move.redeem()
    assert move.proxy.wait_held(redeem), move.output(redeem)
    assert kill(redeem, move.proxy)
    assert_nothing_lost(move, "killed with a third of the documents copied")
    both = [move.resume(), move.resume()]
    for process in both:
        process.wait(timeout=120)
    results = [(p.returncode, *move.output(p)) for p in both]
    assert min(code for code, _, _ in results) == 0, results
    for code, _, err in results:
        if code != 0:
            assert (code, err.strip()) == (1, ANOTHER_PROCESS), results
    assert_moved_once(move)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_large_documents_killed_mid_upload_leave_no_part_behind(
        cli: Cli, env_vars: dict[str, str], s3_on: S3, world_dir: Path, storage: Path, db_url: str,
        tmp_path: Path) -> None:
    """Documents above SINGLE_PUT go up in parts to a temporary key: killed once the upload
    has begun, the resume leaves neither the temporary key nor the unfinished multipart
    upload (which no listing shows, and which AWS bills until it is aborted)."""
    from basecone_migrate.storage import SINGLE_PUT

    move = make_move(cli, env_vars, s3_on, world_dir, storage, db_url, tmp_path, "folder to s3",
                     documents=2, size=SINGLE_PUT + 4 * 1024 * 1024)
    try:
        move.proxy.hold(before=PART)
        redeem = move.redeem()
        assert move.proxy.wait_held(redeem), move.output(redeem)
        assert kill(redeem, move.proxy)
        assert_nothing_lost(move, "killed as the parts went up")
        finish(move)
    finally:
        move.proxy.close()
    assert_moved_once(move)
    if s3_on.server == "moto":  # s3rver does not list multipart uploads (NotImplemented)
        uploads = s3_on.client.list_multipart_uploads(Bucket=s3_on.bucket).get("Uploads", [])
        assert [u["Key"] for u in uploads] == [], "unfinished multipart uploads left behind"


# -- bad settings: one line, the contract's exit code, nothing changed --------------------------


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Refusal:
    """A redeem into an S3 archive that cannot be used, checked to change nothing."""

    cli: Cli
    s3: S3
    db_url: str
    storage: Path
    code: str

    def state(self) -> tuple[Any, ...]:
        """The database, the bucket's keys (None: no bucket) and the source folder."""
        try:
            keys: list[str] | None = self.s3.keys("book")
        except self.s3.client.exceptions.NoSuchBucket:
            keys = None
        return (snapshot_database(self.db_url), keys,
                snapshot_files(self.storage / "ACME"))

    def redeem(self, exit_code: int) -> str:
        before = self.state()
        result = self.cli("--as", TINA, "redeem", self.code, "--accept-terms")
        assert result.exit_code == exit_code, result.stderr
        assert result.error.startswith("Error: ") and "Traceback" not in result.stderr
        assert self.state() == before
        return result.error


@pytest.fixture
def refusal(cli: Cli, world_dir: Path, s3_on: S3, db_url: str, storage: Path) -> Refusal:
    world = many_documents(world_dir, 5, size=SIZE)
    world["environments"][1]["storage"] = s3_on.url("book")
    cli.ok("load", write_world(world_dir, world))
    return Refusal(cli, s3_on, db_url, storage, make_offer(cli, "1001")["transfercode"])


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
def test_an_unreachable_endpoint_is_one_error_line_and_changes_nothing(
        refusal: Refusal, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("BASECONE_MIGRATE_S3_ENDPOINT_URL", endpoint)
    error = refusal.redeem(70)  # as for an unreachable database
    assert endpoint in error


@pytest.mark.parametrize("s3_server", ["s3rver"], indirect=True)  # moto takes any credentials
def test_an_unknown_access_key_is_one_error_line_and_changes_nothing(
        refusal: Refusal, monkeypatch: pytest.MonkeyPatch) -> None:
    forget_s3_clients()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA-NOBODY-KNOWS")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    error = refusal.redeem(1)
    assert f"s3://{refusal.s3.bucket}/book" in error


def test_a_missing_bucket_is_one_error_line_and_changes_nothing(refusal: Refusal) -> None:
    s3 = refusal.s3
    for key in s3.keys("book"):  # its ownership marker, written by the load
        s3.client.delete_object(Bucket=s3.bucket, Key=f"book/{key}")
    s3.client.delete_bucket(Bucket=s3.bucket)
    error = refusal.redeem(1)
    assert f"s3://{s3.bucket}/book" in error


# -- a server that says SlowDown --------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("s3_server", ["s3rver"], indirect=True)  # the proxy throttles, not the server
@with_paths
def test_a_throttling_server_slows_the_move_but_fails_nothing(move: Move) -> None:
    """SlowDown is a reason to wait and try again, not to fail a document: every fifth
    request is answered so, eight times."""
    every_fifth = itertools.count(1)
    with LatencyProxy(move.s3.endpoint, delay=0) as proxy:
        move.env["BASECONE_MIGRATE_S3_ENDPOINT_URL"] = proxy.url
        proxy.throttle(8, lambda _method, _target: next(every_fifth) % 5 == 0)
        redeem = move.redeem()
        redeem.wait(timeout=120)
        throttled = sum(proxy.counts()["throttled"].values())
    _, err = move.output(redeem)
    assert redeem.returncode == 0, err
    assert throttled == 8, "the server did say SlowDown"
    assert_moved_once(move)


# -- a server that stores what it was not sent ----------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("s3_server", ["s3rver"], indirect=True)  # moto keeps the SHA-256 it is told
@pytest.mark.parametrize("move", ["folder to s3"], indirect=True)
def test_a_document_stored_wrong_by_a_server_that_keeps_no_checksum_keeps_its_source(
        move: Move) -> None:
    """s3rver neither checks the SHA-256 a PUT carries nor keeps it: what it stored must be
    read back (or its MD5 ETag compared) before the source may go. Here one document's body
    is changed on the way; its source must stay until a copy with the right bytes is there."""
    move.proxy.damaging = 1
    redeem = move.redeem()
    redeem.wait(timeout=120)
    assert move.proxy.damaging == 0, "a document was damaged on its way"
    assert_nothing_lost(move, f"after a redeem that exited {redeem.returncode}")
    if redeem.returncode != 0:
        assert redeem.returncode == 5, move.output(redeem)
        finish(move)
    assert_moved_once(move)

