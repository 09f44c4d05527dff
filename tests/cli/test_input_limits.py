"""Secrets in URLs are never shown, and input files cannot exhaust the stack or the memory:
a deeply nested world, batch or config file is a usage error naming the file; a batch is
read as a stream and reading stops at the row limit; a world or config file past its size
limit is refused before it is read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from basecone_migrate.batches import MAX_LINE, MAX_ROWS, read_rows
from basecone_migrate.errors import UsageProblem
from basecone_migrate.services.world import MAX_WORLD_BYTES
from basecone_migrate.settings import MAX_CONFIG_BYTES, mask_url_password
from tests.conftest import SUE, Cli, State, without_clock_warning, write_world

SECRETS = ("hunter2", "qsecret", "SECRETKEY/abc+d", "tok123", "sigvalue")

# -- URLs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql+psycopg://u:hunter2@h/db", "postgresql+psycopg://u:********@h/db"),
    ("postgresql+psycopg://u@h/db?sslmode=require&password=qsecret&sslpassword=x",
     "postgresql+psycopg://u@h/db?sslmode=require&password=********&sslpassword=********"),
    ("postgresql+psycopg://u:p@ss/word@h/db", "postgresql+psycopg://u:********@h/db"),
    ("s3://AKIAEXAMPLE:SECRETKEY/abc+d@bucket/prefix", "s3://AKIAEXAMPLE:********@bucket/prefix"),
    ("s3://bucket/prefix?token=tok123&X-Amz-Signature=sigvalue&sig=s&Key=k&region=eu",
     "s3://bucket/prefix?token=********&X-Amz-Signature=********&sig=********&Key=********&region=eu"),
    ("https://host/x?api%5Fkey=1#top", "https://host/x?api%5Fkey=********#top"),
    ("s3://bucket/a:b@c/key", "s3://bucket/a:b@c/key"),  # a key with @, no credentials
    ("sqlite:////srv/x@y/db.sqlite", "sqlite:////srv/x@y/db.sqlite"),
    ("/srv/archive", "/srv/archive"),
])
def test_secrets_in_a_url_are_masked(url: str, shown: str) -> None:
    assert mask_url_password(url) == shown


def test_config_masks_query_passwords_and_storage_credentials(tmp_path: Path) -> None:
    cli = Cli({"BASECONE_MIGRATE_DB": "postgresql://u:hunter2@127.0.0.1:1/db?password=qsecret",
               "BASECONE_MIGRATE_STORAGE": "s3://AKIAEXAMPLE:SECRETKEY/abc+d@bucket/root?token=tok123",
               "BASECONE_MIGRATE_S3_ENDPOINT_URL": "https://s3.example?X-Amz-Signature=sigvalue"})
    for args in (("config",), ("config", "--json")):
        result = cli.ok(*args)
        for secret in SECRETS:
            assert secret not in result.stdout + result.stderr, (args, secret)
    shown = {row["setting"]: row["value"] for row in cli.ok("config", "--json").json()["settings"]}
    assert shown["db"] == "postgresql+psycopg://u:********@127.0.0.1:1/db?password=********"
    assert shown["storage"] == "s3://AKIAEXAMPLE:********@bucket/root?token=********"
    assert shown["s3_endpoint_url"] == "https://s3.example?X-Amz-Signature=********"


def test_an_error_that_names_the_database_url_masks_it(tmp_path: Path) -> None:
    result = Cli({})("--db", "nosuchdb://u:hunter2@h/db?password=qsecret", "env", "list")
    assert result.exit_code == 2
    assert result.error.startswith(
        "Error: database URL 'nosuchdb://u:********@h/db?password=********' (from option --db) is "
        "not valid: ")
    assert "hunter2" not in result.stderr and "qsecret" not in result.stderr


def test_db_upgrade_masks_a_password_given_as_a_parameter(pg_schema_url: str) -> None:
    url = f"{pg_schema_url}?application_name=bcm&password=qsecret"
    result = Cli({"BASECONE_MIGRATE_DB": url}).ok("db", "upgrade")
    assert "qsecret" not in result.stdout + result.stderr
    assert "?application_name=bcm&password=********: already at revision" in result.stdout


def test_env_list_masks_credentials_in_an_environments_storage(
    cli: Cli, world_dir: Path, world: dict[str, Any]
) -> None:
    world["environments"][2]["storage"] = "s3://AKIAEXAMPLE:SECRETKEY/abc+d@bucket/try?token=tok123"
    cli.ok("load", write_world(world_dir, world))
    table = cli.ok("env", "list")
    listed = {e["code"]: e for e in cli.ok("env", "list", "--json").json()}
    assert listed["TRY"]["storage"] == "s3://AKIAEXAMPLE:********@bucket/try?token=********"
    assert "s3://AKIAEXAMPLE:********@bucket/try?token=********" in table.stdout
    for secret in SECRETS:
        assert secret not in table.stdout + json.dumps(listed)


# -- nesting ----------------------------------------------------------------------------------


def test_a_deeply_nested_world_is_a_usage_error(cli: Cli, tmp_path: Path, state: State) -> None:
    snapshot = state.take()
    path = tmp_path / "deep.json"
    path.write_text("[" * 200_000)
    result = cli("load", path)
    assert (result.exit_code, result.error) == (2, f"Error: {path}: not valid JSON: nested too deeply")
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text('{"environments": [], "extra": ' + "[" * 200_000 + "]" * 200_000 + "}")
    result = cli("load", wrapped)
    assert (result.exit_code, result.error) == (2, f"Error: {wrapped}: not valid JSON: nested too deeply")
    assert state.take() == snapshot


def test_a_deeply_nested_batch_is_a_usage_error_naming_the_file(cli: Cli, loaded: Any, tmp_path: Path,
                                                               state: State) -> None:
    snapshot = state.take()
    deep = tmp_path / "deep.jsonl"
    deep.write_text('{"admin": ' + "[" * 4000 + "\n")
    result = cli("--as", SUE, "link", "--from", deep)
    assert (result.exit_code, result.error) == (
        2, (f"Error: --from {deep}: 1 malformed row(s), nothing changed: line 1: not JSON (nested too "
            "deeply) (expected JSON lines with admin, system, code)"))
    huge = tmp_path / "huge.jsonl"
    huge.write_text('{"admin": ' + "[" * 200_000 + "\n")
    result = cli("--as", SUE, "link", "--from", huge)
    assert (result.exit_code, result.error) == (
        2, f"Error: --from {huge}: line 1 is longer than {MAX_LINE} characters, more than any row needs")
    assert state.take() == snapshot


def test_a_deeply_nested_config_file_is_a_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("storage = " + "[" * 5000 + "\n")
    result = Cli({"BASECONE_MIGRATE_CONFIG": str(config)})("config")
    assert (result.exit_code, result.error) == (
        2, f"Error: config file {config} is not valid TOML: nested too deeply")


# -- sizes ------------------------------------------------------------------------------------


def test_a_world_file_past_the_limit_is_refused_before_it_is_read(
    cli: Cli, world_dir: Path, world: dict[str, Any], state: State
) -> None:
    at_limit = write_world(world_dir, world, "at-limit.json")
    with at_limit.open("a") as handle:  # JSON may end in white space: exactly the limit loads
        handle.write(" " * (MAX_WORLD_BYTES - at_limit.stat().st_size))
    assert at_limit.stat().st_size == MAX_WORLD_BYTES
    snapshot = state.take()
    too_big = world_dir / "too-big.json"
    too_big.write_bytes(at_limit.read_bytes() + b" ")
    result = cli("load", too_big)
    assert (result.exit_code, result.error) == (
        2, (f"Error: {too_big}: larger than 16 MiB, more than a world file may hold: split it into "
            "several files and load each (a load adds to what is there)"))
    sparse = world_dir / "sparse.json"  # 1 TB that is never read: refused by its size
    with sparse.open("wb") as handle:
        handle.truncate(1 << 40)
    assert cli("load", sparse).error == result.error.replace(str(too_big), str(sparse))
    assert state.take() == snapshot
    assert cli.ok("load", at_limit, "--json").json()["environments"]["created"] == 3


def test_a_config_file_past_the_limit_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('storage = "/srv/archive"\n' + "#" * MAX_CONFIG_BYTES + "\n")
    result = Cli({"BASECONE_MIGRATE_CONFIG": str(config)})("config")
    assert (result.exit_code, result.error) == (
        2, f"Error: config file {config}: larger than 64 KiB, more than a file of a dozen settings needs")


def test_a_batch_of_exactly_the_row_limit_is_read_whole(tmp_path: Path) -> None:
    """The contract's 10,000 rows (header, comments and blank lines aside) are all read; the
    reader is the one place the limit is held (checking 10,000 rows against the database
    takes 10-25 s, and tells nothing more about the limit)."""
    assert MAX_ROWS == 10_000
    batch = tmp_path / "batch.csv"
    batch.write_text("admin,system,code\n# a comment\n\n" + "1001,acme-tw2\n" * MAX_ROWS)
    rows = read_rows(str(batch), ("admin", "system", "code"), 1, "--from")
    assert len(rows) == MAX_ROWS and (rows[0].line, rows[-1].line) == (4, MAX_ROWS + 3)
    batch.write_text("admin,system,code\n" + "1001,acme-tw2\n" * (MAX_ROWS + 1))
    with pytest.raises(UsageProblem, match=f"holds more than {MAX_ROWS} rows"):
        read_rows(str(batch), ("admin", "system", "code"), 1, "--from")


def test_a_batch_past_the_row_limit_is_refused(cli: Cli, loaded: Any, tmp_path: Path, state: State) -> None:
    """One row more than the limit is refused for its size, from a file or standard input,
    before any row is checked."""
    snapshot = state.take()
    batch = tmp_path / "batch.csv"
    batch.write_text("admin,system,code\n" + "1001,acme-tw2\n" * (MAX_ROWS + 1))
    result = cli("--as", SUE, "link", "--from", batch)
    assert (result.exit_code, result.error) == (
        2, (f"Error: --from {batch} holds more than {MAX_ROWS} rows; split it into batches of at most "
            f"{MAX_ROWS}"))
    offered = cli("--as", SUE, "offer", "--from", "-", "--to", "tina@book.example", "--accept-terms",
                  input="1001\n" * (MAX_ROWS + 1))
    assert (offered.exit_code, offered.error) == (
        2, (f"Error: --from (standard input) holds more than {MAX_ROWS} rows; split it into batches "
            f"of at most {MAX_ROWS}"))
    assert state.take() == snapshot


#: Runs a command, its output to nowhere and its errors to ours; prints its exit code and peak
#: resident memory (KB).
_PEAK = ("import os, subprocess, sys\n"
         "child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
         "_, status, usage = os.wait4(child.pid, 0)\n"
         "print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)\n")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_21_mb_batch_is_refused_in_little_memory(env_vars: dict[str, str], loaded: Any,
                                                   tmp_path: Path, backend: str) -> None:
    """Read whole, this file took 742 MB before the row limit refused it; as a stream, about
    50 MB (a bare start of the program)."""
    batch = tmp_path / "big.csv"
    with batch.open("w") as handle:
        for _ in range(1_120_000):
            handle.write("1001,acme-tw2,1001\n")
    assert batch.stat().st_size > 21_000_000
    full = {k: v for k, v in os.environ.items() if not k.startswith("BASECONE_MIGRATE_")}
    full.update(env_vars)
    # Measured from a small parent: Linux counts a parent's memory at the fork in the child's peak.
    measured = subprocess.run([sys.executable, "-c", _PEAK, sys.executable, "-m", "basecone_migrate",
                               "--as", SUE, "link", "--from", str(batch)],
                              env=full, capture_output=True, text=True, timeout=120, check=False)
    code, peak_kb = map(int, measured.stdout.split())
    assert code == 2, measured.stderr
    assert without_clock_warning(measured.stderr) == f"Error: --from {batch} holds more than {MAX_ROWS} rows; split it into " \
                              f"batches of at most {MAX_ROWS}\n"
    assert peak_kb / 1024 < 150, f"peak {peak_kb / 1024:.0f} MB"


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_reading_a_batch_stops_at_the_row_limit(env_vars: dict[str, str], loaded: Any,
                                                backend: str) -> None:
    """Standard input that never ends: the program stops reading after row MAX_ROWS + 1."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("BASECONE_MIGRATE_")}
    full.update(env_vars)
    process = subprocess.Popen([sys.executable, "-m", "basecone_migrate", "--as", SUE, "link",
                                "--from", "-"], env=full, stdin=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert process.stdin is not None
    process.stdin.write(b"1001,acme-tw2\n" * (MAX_ROWS + 1))
    process.stdin.flush()  # and the pipe stays open: reading to its end would wait forever
    try:
        stderr = without_clock_warning(process.stderr.read().decode() if process.stderr else "")
        assert process.wait(timeout=60) == 2
    finally:
        process.stdin.close()
        process.kill()
    assert stderr == (f"Error: --from (standard input) holds more than {MAX_ROWS} rows; split it into "
                      f"batches of at most {MAX_ROWS}\n")
