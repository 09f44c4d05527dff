"""Shared fixtures: both databases, an isolated environment, the CLI, a sample world.

Every test that takes ``db_url`` runs twice: on a SQLite file and on PostgreSQL.
PostgreSQL comes from ``BASECONE_MIGRATE_TEST_PG`` (default: the local server,
``postgresql+psycopg://postgres@127.0.0.1:5432/test``); each test run creates its own
database there and drops it at the end. Without a reachable server those tests are
skipped with a message, unless ``BASECONE_MIGRATE_TEST_REQUIRE_PG=1`` (CI sets it),
which turns the skip into a failure.

S3 tests run on moto's server (in this process) and, through ``s3_server``/``s3_on``, on
s3rver too: an npm package installed once into ``~/.cache/basecone-migrate-tests/s3rver``
(or ``BASECONE_MIGRATE_TEST_S3RVER_HOME``) and run with node. Without node and npm those
tests are skipped, unless ``BASECONE_MIGRATE_TEST_REQUIRE_S3RVER=1`` (CI sets it too).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PG_URL = os.environ.get(
    "BASECONE_MIGRATE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REQUIRE_PG = os.environ.get("BASECONE_MIGRATE_TEST_REQUIRE_PG") == "1"
BACKENDS = ("sqlite", "postgresql")


# -- databases ------------------------------------------------------------------


def _pg_admin_engine():
    from sqlalchemy import create_engine

    from basecone_migrate.settings import normalise_db_url

    return create_engine(normalise_db_url(PG_URL), isolation_level="AUTOCOMMIT")


@pytest.fixture
def shm(tmp_path: Path) -> Iterator[Path]:
    """A folder on a second filesystem (/dev/shm), removed afterwards."""
    if not os.path.isdir("/dev/shm"):
        pytest.skip("needs /dev/shm for a second filesystem")
    folder = Path("/dev/shm") / f"bcm-test-{os.getpid()}-{tmp_path.name}"
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    """A PostgreSQL server we may create databases on."""
    from sqlalchemy import text

    engine = _pg_admin_engine()
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        engine.dispose()
        message = (
            f"PostgreSQL not reachable at {PG_URL} ({type(exc).__name__}); "
            "start it or set BASECONE_MIGRATE_TEST_PG to a server URL to run these tests"
        )
        if REQUIRE_PG:
            pytest.fail(message + " (BASECONE_MIGRATE_TEST_REQUIRE_PG=1)")
        pytest.skip(message)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def make_pg_database(pg_server: Any) -> Iterator[Any]:
    """Create fresh, empty PostgreSQL databases; all are dropped at the end of the run."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from basecone_migrate.settings import normalise_db_url

    created: list[str] = []

    def make() -> str:
        name = f"bcm_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        with pg_server.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
            # Throwaway: a commit need not wait for the disk (a crash of the server loses
            # nothing any test relies on), as a test of a change of state commits many times.
            connection.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
        created.append(name)
        return make_url(normalise_db_url(PG_URL)).set(database=name).render_as_string(
            hide_password=False
        )

    yield make
    with pg_server.connect() as connection:
        for name in created:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def pg_schema_url(make_pg_database: Any) -> str:
    """One database for the run, at the current schema; tests empty it before use."""
    from basecone_migrate.db.engine import make_engine, upgrade

    url = make_pg_database()
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from basecone_migrate.db.engine import make_engine, upgrade

    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()  # the last connection to close folds the WAL into the file
    assert not path.with_name(path.name + "-wal").exists()
    return path


def _truncate(url: str) -> None:
    """Empty every table and restart every sequence, as TRUNCATE ... RESTART IDENTITY
    would, but by DELETE in the order of the foreign keys: TRUNCATE makes new files for
    each table and index (0.11 s a test here, against a few ms). The append-only audit
    log, whose triggers refuse a DELETE, is truncated on its own."""
    from sqlalchemy import create_engine

    from basecone_migrate.db.models import Base

    engine = create_engine(url)
    # The database keeps its identity, as a real one does (its folders are marked with it).
    names = [f'"{t.name}"' for t in reversed(Base.metadata.sorted_tables)
             if t.name not in ("database_identity", "audit_log")]
    with engine.begin() as connection:
        connection.exec_driver_sql("TRUNCATE audit_log")  # its triggers refuse a DELETE
        for name in [*QUEUE_TABLES, *names]:
            connection.exec_driver_sql(f"DELETE FROM {name}")
        connection.exec_driver_sql(f"SELECT setval({_SEQUENCE}, 1, false) {_SEQUENCES}")
    engine.dispose()


#: The sequences of the schema (PostgreSQL), and each one's quoted name.
_SEQUENCES = "FROM pg_sequences WHERE schemaname = current_schema()"
_SEQUENCE = "quote_ident(schemaname) || '.' || quote_ident(sequencename)"


#: The task queue's tables (PostgreSQL): cleared with ours, and watched by snapshots (a
#: refused `--background` must queue nothing).
QUEUE_TABLES = ("procrastinate_events", "procrastinate_periodic_defers", "procrastinate_jobs",
                "procrastinate_workers")  # in the order their rows can be deleted


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database at the current schema, on the backend under test."""
    if backend == "sqlite":
        path = tmp_path / "basecone.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("pg_schema_url")
    _truncate(url)
    return url


# -- S3: a real S3 API over HTTP on loopback (moto's server) ----------------------------


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1, for the whole run."""
    import socket

    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


#: Where s3rver (an npm package) is installed once, outside the repository, and reused.
S3RVER_HOME = Path(os.environ.get("BASECONE_MIGRATE_TEST_S3RVER_HOME")
                   or Path.home() / ".cache" / "basecone-migrate-tests" / "s3rver")
REQUIRE_S3RVER = os.environ.get("BASECONE_MIGRATE_TEST_REQUIRE_S3RVER") == "1"


def _s3rver_script() -> Path:
    """s3rver's command-line script, installed with npm into S3RVER_HOME when missing;
    a problem raises RuntimeError saying what is missing."""
    from filelock import FileLock

    script = S3RVER_HOME / "node_modules" / "s3rver" / "bin" / "s3rver.js"
    if script.is_file():
        return script
    npm = shutil.which("npm")
    if shutil.which("node") is None or npm is None:
        raise RuntimeError("node and npm are not installed")
    S3RVER_HOME.mkdir(parents=True, exist_ok=True)
    with FileLock(S3RVER_HOME / ".install.lock"):  # test workers side by side install it once
        return script if script.is_file() else _npm_install(npm, script)


def _npm_install(npm: str, script: Path) -> Path:
    done = subprocess.run([npm, "install", "--prefix", str(S3RVER_HOME), "--no-audit", "--no-fund",
                           "--loglevel=error", "s3rver@3"], check=False, capture_output=True,
                          text=True, timeout=600)
    if done.returncode != 0 or not script.is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"npm install s3rver@3 failed (exit {done.returncode}): {' / '.join(tail)}")
    return script


@pytest.fixture(scope="session")
def s3rver_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """s3rver (a Node.js S3 server that keeps no checksums and checks no signatures: only
    the access key id S3RVER) on 127.0.0.1, for the whole run. Without node and npm, or
    when installing it fails: skipped, unless BASECONE_MIGRATE_TEST_REQUIRE_S3RVER=1 (CI)."""
    import queue
    import socket
    import threading

    try:
        script = _s3rver_script()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        message = f"s3rver is not available ({exc}); install node and npm to run these tests"
        if REQUIRE_S3RVER:
            pytest.fail(message + " (BASECONE_MIGRATE_TEST_REQUIRE_S3RVER=1)")
        pytest.skip(message)
    # The legacy provider: s3rver encrypts its continuation tokens with DES, which OpenSSL 3
    # (node 17 and later) leaves out, and every listing longer than a page would fail with
    # InternalError.
    major = subprocess.run(["node", "-p", "process.versions.node.split('.')[0]"], check=False,
                           capture_output=True, text=True).stdout.strip()
    legacy = ["--openssl-legacy-provider"] if major.isdigit() and int(major) >= 17 else []
    server = subprocess.Popen(
        ["node", *legacy, str(script), "--directory",
         str(tmp_path_factory.mktemp("s3rver")), "--address", "127.0.0.1", "--port", "0", "--silent"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()  # it prints its port once it listens
    threading.Thread(target=lambda: [lines.put(line) for line in server.stdout or ()],
                     daemon=True).start()
    seen: list[str] = []
    endpoint = None
    deadline = time.monotonic() + 30
    while endpoint is None and time.monotonic() < deadline and server.poll() is None:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        seen.append(line)
        if line.startswith("S3rver listening on "):
            endpoint = "http://" + line.split()[-1]
    if endpoint is None:
        server.kill()
        server.wait()
        pytest.fail(f"s3rver did not start: {''.join(seen)!r}")
    host, port = endpoint.removeprefix("http://").rsplit(":", 1)
    socket.create_connection((host, int(port)), timeout=10).close()  # it answers
    yield endpoint
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@dataclass(frozen=True)
class S3Server:
    """An S3 server under test and the credentials it takes."""

    name: str  # "moto" or "s3rver"
    endpoint: str
    key: str
    secret: str
    keeps_checksums: bool  # whether HEAD returns the ChecksumSHA256 a PUT carried


S3_SERVERS = ("moto", "s3rver")


@pytest.fixture(params=S3_SERVERS)
def s3_server(request: pytest.FixtureRequest) -> S3Server:
    """Each S3 server in turn: moto's and s3rver, both over HTTP on loopback."""
    if request.param == "moto":
        return S3Server("moto", request.getfixturevalue("s3_endpoint"), "testing", "testing", True)
    return S3Server("s3rver", request.getfixturevalue("s3rver_endpoint"), "S3RVER", "S3RVER", False)


@dataclass
class S3:
    endpoint: str
    bucket: str
    client: Any
    server: str = "moto"

    def url(self, prefix: str) -> str:
        return f"s3://{self.bucket}/{prefix}"

    def keys(self, prefix: str) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                      Prefix=prefix + "/")
        return sorted(o["Key"][len(prefix) + 1:] for page in pages for o in page.get("Contents", []))

    def read(self, key: str) -> bytes:
        return bytes(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def head(self, key: str) -> dict[str, Any]:
        found: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        return found


def forget_s3_clients() -> None:
    """The CLI runs in this process too: the s3fs instances and the botocore session made
    for another test (with the credentials it had in its environment) must not answer for
    the next one. A real process starts with neither."""
    import s3fs

    from basecone_migrate import storage

    s3fs.S3FileSystem.clear_instance_cache()
    getattr(storage, "_sessions", {}).clear()  # one session a process (storage.s3_session)


def _new_bucket(server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3:
    """A new bucket on ``server``; its credentials in the standard AWS variables (as an
    operator sets them), the endpoint in BASECONE_MIGRATE_S3_ENDPOINT_URL."""
    import boto3

    forget_s3_clients()
    for name, value in (("AWS_ACCESS_KEY_ID", server.key), ("AWS_SECRET_ACCESS_KEY", server.secret),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BASECONE_MIGRATE_S3_ENDPOINT_URL", server.endpoint)
    client = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                          aws_access_key_id=server.key, aws_secret_access_key=server.secret)
    bucket = f"bcm-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    return S3(server.endpoint, bucket, client, server.name)


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3:
    """A new bucket on moto's server (see `_new_bucket`)."""
    return _new_bucket(S3Server("moto", s3_endpoint, "testing", "testing", True), monkeypatch)


@pytest.fixture
def s3_on(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3:
    """A new bucket on each S3 server in turn (moto, s3rver): see `_new_bucket`."""
    return _new_bucket(s3_server, monkeypatch)


# -- an isolated environment and the CLI ----------------------------------------------


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No test sees the developer's settings, keyring, config or data folders."""
    for name in list(os.environ):
        if name.startswith("BASECONE_MIGRATE_") and not name.startswith("BASECONE_MIGRATE_TEST"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    for variable, folder in (("XDG_DATA_HOME", "data"), ("XDG_CONFIG_HOME", "config")):
        (home / folder).mkdir(parents=True)
        monkeypatch.setenv(variable, str(home / folder))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("NO_COLOR", raising=False)
    return home


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    @property
    def error(self) -> str:
        """The stderr's ``Error:`` line (asserting there is exactly one line)."""
        lines = self.stderr.strip().splitlines()
        assert len(lines) == 1, f"expected one line on stderr, got {self.stderr!r}"
        return lines[0]


def without_clock_warning(stderr: str) -> str:
    """``stderr`` without the line every command prints while BASECONE_MIGRATE_NOW is set
    (which most tests set, to a clock of their own): tests/cli/test_clock.py proves the line
    is there, and what each test asserts about stderr is then what it is about."""
    return re.sub(r"^Warning: the clock is set by BASECONE_MIGRATE_NOW to [^\n]*\n", "", stderr,
                  flags=re.MULTILINE)


class Cli:
    """Runs the real ``main()`` in-process with its own environment variables."""

    def __init__(self, env: dict[str, str], *, clock_warning: bool = False) -> None:
        self.env = env
        self.clock_warning = clock_warning  # True: stderr as it is, the clock's warning kept

    def __call__(self, *args: Any, input: str | None = None, **settings: str) -> Result:
        """``cli("env", "list", now="...")`` runs with BASECONE_MIGRATE_NOW set."""
        from typer.testing import CliRunner

        from basecone_migrate.cli import main

        runner = CliRunner()
        variables = {**self.env, **{f"BASECONE_MIGRATE_{k.upper()}": v for k, v in settings.items()}}
        with runner.isolation(input=input, env=variables) as (out, err, _):
            code = main([str(a) for a in args])
            sys.stdout.flush()
            sys.stderr.flush()
            err_text = err.getvalue().decode()
            return Result(code, out.getvalue().decode(),
                          err_text if self.clock_warning else without_clock_warning(err_text))

    def run_error(self, *args: Any, **settings: str) -> Result:
        result = self(*args, **settings)
        assert result.exit_code != 0, result.stdout
        return result

    def ok(self, *args: Any, **settings: str) -> Result:
        result = self(*args, **settings)
        assert result.exit_code == 0, (result.exit_code, result.stderr)
        return result


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    root = tmp_path / "archive"
    root.mkdir()
    return root


@pytest.fixture
def env_vars(db_url: str, storage: Path) -> dict[str, str]:
    """Settings every CLI test starts from; the clock is fixed (tests move it with now=...)."""
    return {"BASECONE_MIGRATE_DB": db_url, "BASECONE_MIGRATE_STORAGE": str(storage),
            "BASECONE_MIGRATE_NOW": "2026-03-02T09:00:00Z"}


@pytest.fixture
def cli(env_vars: dict[str, str]) -> Cli:
    return Cli(env_vars)


def run_process(args: list[str], env: dict[str, str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """The installed program in its own process, as scripts and cron run it."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("BASECONE_MIGRATE_")}
    full_env.update(env)
    done = subprocess.run(
        [sys.executable, "-m", "basecone_migrate", *args],
        check=False, env=full_env, capture_output=True, text=True, **kwargs,
    )
    done.stderr = without_clock_warning(done.stderr)
    return done


# -- a sample world -------------------------------------------------------------------


def sample_world(folder: Path, documents: int = 3) -> dict[str, Any]:
    """Three offices as in the contract; ``documents`` files for ACME/1001, 1 for 1002."""
    docs = folder / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(1, documents + 1):
        path = docs / f"invoice-{n}.pdf"
        path.write_bytes(f"%PDF-1.4 invoice {n}\n".encode() * (50 * n))
        paths.append(f"docs/{path.name}")
    (docs / "garage.pdf").write_bytes(b"%PDF-1.4 garage\n" * 40)
    return {"environments": [
        {"code": "ACME", "name": "Acme Accountants", "plan": "premium",
         "users": [{"email": "sue@acme.example", "name": "Sue", "role": "superuser"},
                   {"email": "bob@acme.example", "name": "Bob", "role": "authoriser"},
                   {"email": "carl@acme.example", "name": "Carl", "role": "accountant"}],
         "accounting_systems": [
             {"id": "acme-tw", "package": "twinfield", "name": "Twinfield Acme",
              "catalogue": [{"code": "1001", "name": "Bakkerij Jansen"},
                            {"code": "1002", "name": "Garage Smit"},
                            {"code": "1098", "name": "Garage Smit"},
                            {"code": "1099", "name": "Bakkerij Jansen"}]},
             {"id": "acme-tw2", "package": "twinfield", "name": "Twinfield Acme 2",
              "catalogue": [{"code": "1001", "name": "Bakkerij Jansen"},
                            {"code": "1501", "name": "Bakkerij Jansen"}]},
             {"id": "acme-eol", "package": "exact-online-nl", "name": "Exact Acme",
              "catalogue": [{"code": "1001", "name": "Bakkerij Jansen"}]},
             {"id": "acme-snel", "package": "snelstart", "name": "SnelStart Acme",
              "catalogue": [{"code": "3001", "name": "Kapsalon Mulder"}]}],
         "administrations": [
             {"code": "1001", "name": "Bakkerij Jansen", "accounting_system": "acme-tw",
              "users": ["sue@acme.example", "carl@acme.example"], "documents": paths},
             {"code": "1002", "name": "Garage Smit", "accounting_system": "acme-tw",
              "users": ["carl@acme.example"],
              "workflows": [{"name": "Over 1000", "authorisers": ["bob@acme.example"]}],
              "documents": ["docs/garage.pdf"]},
             {"code": "3001", "name": "Kapsalon Mulder", "accounting_system": "acme-snel"}]},
        {"code": "BOOK", "name": "Bookwise", "plan": "premium",
         "users": [{"email": "tina@book.example", "name": "Tina", "role": "superuser"},
                   {"email": "tim@book.example", "name": "Tim", "role": "superuser"},
                   {"email": "uma@book.example", "name": "Uma", "role": "accountant"}],
         "accounting_systems": [
             {"id": "book-tw", "package": "twinfield", "name": "Twinfield Bookwise",
              "catalogue": [{"code": "1001", "name": "Bakkerij Jansen"},
                            {"code": "7001", "name": "Bakkerij Jansen"},
                            {"code": "1002", "name": "Garage Smit"},
                            {"code": "5001", "name": "Drukkerij Visser"}]},
             {"id": "book-xero", "package": "xero", "name": "Xero Bookwise",
              "catalogue": [{"code": "6001", "name": "Schildersbedrijf Bos"}]}],
         "administrations": [
             {"code": "5001", "name": "Drukkerij Visser", "accounting_system": "book-tw"}]},
        {"code": "TRY", "name": "Trial Office", "plan": "trial",
         "users": [{"email": "tom@trial.example", "name": "Tom", "role": "superuser"}],
         "accounting_systems": [
             {"id": "try-tw", "package": "twinfield", "name": "Twinfield Trial",
              "catalogue": [{"code": "1001", "name": "Bakkerij Jansen"}]}],
         "administrations": []},
    ]}


def write_world(folder: Path, world: dict[str, Any], name: str = "world.json") -> Path:
    path = folder / name
    path.write_text(json.dumps(world, indent=2))
    return path


@pytest.fixture
def world_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "world"
    folder.mkdir()
    return folder


@pytest.fixture
def world(world_dir: Path) -> dict[str, Any]:
    return sample_world(world_dir)


@pytest.fixture
def loaded(cli: Cli, world_dir: Path, world: dict[str, Any], storage: Path) -> dict[str, Any]:
    """The sample world, loaded.

    The first test of a process to load a given world (its JSON, the files beside it, the
    settings in force, the backend) runs the real `load` and keeps what it wrote: every
    row and the archive's files. Later tests get that state written back, the world
    file's own path put in its audit row, as `load` would have written it. `load` itself
    is tested in tests/cli/test_load.py."""
    path = write_world(world_dir, world)
    key = _load_key(cli, world_dir, storage)
    kept = _LOADS.get(key) if key is not None else None
    if kept is None:
        cli.ok("load", path)
        if key is not None:
            _LOADS[key] = _Load.keep(cli.env["BASECONE_MIGRATE_DB"], storage, path)
    else:
        kept.restore(cli.env["BASECONE_MIGRATE_DB"], storage, path)
    return world


def _load_key(cli: Cli, world_dir: Path, storage: Path) -> str | None:
    """What a load's outcome depends on, or None when it may depend on more (an archive
    elsewhere than the test's folder)."""
    settings = {k: v for k, v in {**os.environ, **cli.env}.items()
                if k.startswith(("BASECONE_MIGRATE_", "AWS_")) and k != "BASECONE_MIGRATE_DB"}
    if settings.pop("BASECONE_MIGRATE_STORAGE", None) != str(storage):
        return None
    # The database's identity (which the archive's folders are marked with): the template's
    # for every SQLite test, one per process on PostgreSQL.
    identity = database_identity(cli.env["BASECONE_MIGRATE_DB"])
    files = {str(p.relative_to(world_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(world_dir.rglob("*")) if p.is_file()}
    return json.dumps([identity, sorted(settings.items()), files], sort_keys=True)


@dataclass
class _Load:
    """What `load` wrote: the rows of every table, the sequences (PostgreSQL), the
    archive's files and their modes, and the world file's path it named."""

    rows: dict[str, list[dict[str, Any]]]
    sequences: list[tuple[str, int, bool]]
    files: dict[str, tuple[bytes, int]]
    folders: dict[str, int]
    path: str

    @classmethod
    def keep(cls, url: str, storage: Path, path: Path) -> _Load:
        from sqlalchemy import create_engine, select

        from basecone_migrate.db.models import Base

        engine = create_engine(url)
        with engine.connect() as connection:
            rows = {t.name: [dict(r._mapping) for r in connection.execute(select(t))]
                    for t in Base.metadata.sorted_tables if t.name != "database_identity"}
            sequences = []
            if connection.dialect.name == "postgresql":
                sequences = [tuple(r) for r in connection.exec_driver_sql(
                    f"SELECT {_SEQUENCE}, coalesce(last_value, 1), last_value IS NOT NULL {_SEQUENCES}")]
        engine.dispose()
        files: dict[str, tuple[bytes, int]] = {}
        folders: dict[str, int] = {}
        for entry in [storage, *sorted(storage.rglob("*"))]:  # parents before their children
            name, mode = str(entry.relative_to(storage)), entry.stat().st_mode
            if entry.is_dir():
                folders[name] = mode
            else:
                files[name] = (entry.read_bytes(), mode)
        return cls(rows, sequences, files, folders, str(path.resolve()))

    def restore(self, url: str, storage: Path, path: Path) -> None:
        from sqlalchemy import create_engine, text

        from basecone_migrate.db.models import Base

        here = str(path.resolve())
        engine = create_engine(url)
        with engine.begin() as connection:
            for table in Base.metadata.sorted_tables:
                rows = self.rows.get(table.name)
                if table.name == "audit_log":
                    rows = [{**r, "details": {**r["details"], "file": here}}
                            if r["action"] == "load" and r["details"].get("file") == self.path else r
                            for r in rows or ()]
                if rows:
                    connection.execute(table.insert(), rows)
            for name, value, called in self.sequences:
                connection.execute(text("SELECT setval(CAST(:name AS regclass), :value, :called)"),
                                   {"name": name, "value": value, "called": called})
        engine.dispose()
        for folder, mode in self.folders.items():
            (storage / folder).mkdir(parents=True, exist_ok=True)
            (storage / folder).chmod(mode)
        for name, (content, mode) in self.files.items():
            target = storage / name
            target.write_bytes(content)
            target.chmod(mode)


#: Loads kept by this test process (see `loaded`), by what their outcome depends on.
_LOADS: dict[str, _Load] = {}


# -- observing state --------------------------------------------------------------------


def snapshot_database(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order."""
    from sqlalchemy import create_engine, select

    from basecone_migrate.db.models import Base

    engine = create_engine(url)
    state: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            rows = connection.execute(select(table)).all()
            state[table.name] = sorted(tuple(map(repr, row)) for row in rows)
        if connection.dialect.name == "postgresql":
            rows = connection.exec_driver_sql(
                "SELECT id, task_name, args::text, status::text FROM procrastinate_jobs").all()
            state["procrastinate_jobs"] = sorted(tuple(map(repr, row)) for row in rows)
    engine.dispose()
    return state


MARKER = ".basecone-migrate-database"  # the file that says which database a folder is for


def database_identity(db_url: str) -> str:
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    with engine.connect() as connection:
        identity: str = connection.execute(text("SELECT identity FROM database_identity")).scalar_one()
    engine.dispose()
    return identity


def database_folder(db_url: str, home: Path) -> Path:
    """The data folder's own folder of a database other than the default (named by its
    identity): its default archive and outbox."""
    return home / "data" / "basecone-migrate" / "databases" / database_identity(db_url)


def snapshot_files(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its SHA-256."""
    if not root.exists():
        return {}
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*")) if path.is_file()
    }


@dataclass
class State:
    db_url: str
    roots: tuple[Path, ...]

    def take(self) -> tuple[Any, ...]:
        return (snapshot_database(self.db_url), *(snapshot_files(root) for root in self.roots))


@pytest.fixture
def state(db_url: str, storage: Path, isolated_environment: Path) -> State:
    """Database rows and files on disk (archive and outbox), to show a refusal changed nothing."""
    return State(db_url, (storage, isolated_environment / "data"))


# -- a real SMTP server -------------------------------------------------------------------


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: Any  # email.message.EmailMessage
    encrypted: bool = False  # delivered over TLS (after STARTTLS)

    @property
    def text(self) -> str:
        return self.message.get_body(preferencelist=("plain",)).get_content()

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])


class SmtpServer:
    """aiosmtpd on 127.0.0.1, keeping every message it accepts; with ``tls_context`` it
    offers STARTTLS with that certificate and accepts mail only after it."""

    def __init__(self, tls_context: Any = None) -> None:
        import socket

        self.tls_context = tls_context
        #: Messages whose subject holds one of these are refused at DATA (554).
        self.refuse_subjects: set[str] = set()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.messages: list[Received] = []
        self.controller: Any = None

    def start(self) -> None:
        import email
        import email.policy

        from aiosmtpd.controller import Controller

        server = self

        class Handler:
            async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
                message = email.message_from_bytes(envelope.content, policy=email.policy.default)
                if any(part in str(message["Subject"]) for part in server.refuse_subjects):
                    return "554 5.7.1 Message refused"
                server.messages.append(Received(
                    envelope.mail_from, list(envelope.rcpt_tos), message,
                    encrypted=_session.ssl is not None))
                return "250 OK"

        tls = ({"tls_context": self.tls_context, "require_starttls": True}
               if self.tls_context is not None else {})
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, **tls)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def env(self) -> dict[str, str]:
        return {"BASECONE_MIGRATE_SMTP_HOST": "127.0.0.1", "BASECONE_MIGRATE_SMTP_PORT": str(self.port),
                "BASECONE_MIGRATE_SMTP_SECURITY": "none",
                "BASECONE_MIGRATE_MAIL_FROM": "migrations@basecone.example"}

    def take(self) -> list[Received]:
        taken, self.messages = self.messages, []
        return taken


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mailing_cli(env_vars: dict[str, str], smtp: SmtpServer) -> Cli:
    """The CLI with mail going to the test's SMTP server."""
    return Cli({**env_vars, **smtp.env})


NOW = "2026-03-02T09:00:00Z"
SUE, TINA, TIM, UMA, TOM, CARL = ("sue@acme.example", "tina@book.example", "tim@book.example",
                                  "uma@book.example", "tom@trial.example", "carl@acme.example")


def admin_ids(cli: Cli) -> dict[str, int]:
    """Administration ids by environment/code."""
    return {f"{a['environment']}/{a['code']}": a["id"] for a in cli.ok("admin", "list", "--json").json()}


def make_offer(cli: Cli, *admins: str, to: tuple[str, ...] = (TINA,), sender: str = SUE,
               extra: tuple[str, ...] = (), **settings: str) -> dict[str, Any]:
    args = ["--as", sender, "offer", *admins]
    for recipient in to:
        args += ["--to", recipient]
    return cli.ok(*args, "--accept-terms", *extra, "--json", **settings).json()
