"""Hostile input: every command, driven with generated arguments through the real entry
point, on both databases.

Whatever the arguments, the program answers with a contract exit code, one ``Error:``
line when it refuses, never a traceback, and a refused command changes nothing in the
database, the archive or the outbox. The examples are derandomised (the same every run, so
CI cannot flake); ``BASECONE_MIGRATE_TEST_HOSTILE=N`` runs N fresh random examples per
backend instead.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.main import get_command

from basecone_migrate.cli import app
from tests.conftest import SUE, TINA, Cli, State

#: Commands that would wait or build a workspace of their own: not for a fuzzer.
SKIPPED = {"demo", "worker"}
#: Global options that would point the run at another database or folder.
GLOBAL_SKIPPED = {"--db", "--storage", "--config", "--version", "--debug", "--help", "-h",
                  "--install-completion", "--show-completion"}
CONTRACT_CODES = {0, 1, 2, 3, 4, 5}
RANDOM = int(os.environ.get("BASECONE_MIGRATE_TEST_HOSTILE", "0"))


def _commands(command: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    found: dict[tuple[str, ...], Any] = {}
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        path = (*prefix, name)
        if getattr(sub, "commands", None):
            found.update(_commands(sub, path))
        elif name not in SKIPPED:
            found[path] = sub
    return found


COMMANDS = _commands(get_command(app))


@pytest.fixture
def hostile_files(tmp_path: Path) -> dict[str, str]:
    folder = tmp_path / "hostile"
    folder.mkdir()
    fifo = folder / "fifo"
    os.mkfifo(fifo)
    (folder / "garbage.json").write_bytes(b"\xff\xfe{not json")
    (folder / "doc.pdf").write_bytes(b"%PDF-1.4 hostile\n")
    (folder / "unreadable.pdf").write_bytes(b"secret")
    (folder / "unreadable.pdf").chmod(0)
    return {"fifo": str(fifo), "garbage": str(folder / "garbage.json"), "doc": str(folder / "doc.pdf"),
            "unreadable": str(folder / "unreadable.pdf"), "folder": str(folder),
            "long": str(folder / ("x" * 300)), "deep": str(folder / "/".join(["d" * 200] * 30)),
            "missing": str(folder / "missing.json")}


def _values(files: dict[str, str]) -> st.SearchStrategy[str]:
    fixed = ["1", "2", "3", "1001", "1002", "3001", "7001", "id:1", "id:99999999999999999999",
             "99999999999999999999", "18446744073709551616", "-1", "0", "00001", "²", "١٢",
             SUE, TINA, "nobody@nowhere.example", "ACME", "BOOK", "acme-tw", "acme-tw2", "book-tw",
             "1001=book-tw:7001", "1001=book-tw", "=:", "x" * 5000, "", " ", "offered", "expired",
             "2026-03-01", "not-a-date", "K7QF-9XMB-2R4D-HT0C-W8NS", "ACME.1001@mailtobasecone.com",
             "a\x00b", "caf\udce9", "'; DROP TABLE users; --", "%", "_", "\\", "🙂",
             "/dev/zero", "/dev/null", *files.values()]
    return st.one_of(st.sampled_from(fixed), st.text(max_size=12),
                     st.integers(min_value=-(2**70), max_value=2**70).map(str))


@st.composite
def invocations(draw: st.DrawFn, files: dict[str, str]) -> list[str]:
    path = draw(st.sampled_from(sorted(COMMANDS)))
    command = COMMANDS[path]
    values = _values(files)
    args: list[str] = []
    if draw(st.booleans()):
        args += ["--as", draw(st.sampled_from([SUE, TINA, "carl@acme.example", "nobody@x.example"]))]
    args += list(path)
    for param in command.params:
        if param.name == "ctx" or not draw(st.booleans()):
            continue
        if param.param_type_name == "argument":
            count = 1 if param.nargs == 1 else draw(st.integers(1, 3))
            args += [draw(values) for _ in range(count)]
            continue
        name = draw(st.sampled_from([o for o in param.opts if o not in GLOBAL_SKIPPED] or [None]))
        if name is None:
            continue
        args.append(name)
        if not param.is_flag:
            args.append(draw(values))
    args += draw(st.lists(values, max_size=2))  # strays, where they do not belong
    return args


def _check(cli: Cli, state: State, args: list[str]) -> None:
    before = state.take()
    result = cli(*args)
    where = f"{args!r}: exit {result.exit_code}, stderr {result.stderr!r}"
    assert result.exit_code in CONTRACT_CODES, where
    assert "Traceback" not in result.stderr, where
    if result.exit_code != 0:
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
        assert len(errors) == 1 and result.stderr.rstrip().splitlines()[-1] == errors[0], where
    if result.exit_code not in (0, 5):
        after = state.take()
        before[0].pop("failed_redeems"), after[0].pop("failed_redeems")  # counted on purpose
        assert after == before, f"{where}: a refused command changed something"


def test_hostile_arguments_get_a_contract_exit_code_and_change_nothing(
    cli: Cli, loaded: dict[str, Any], state: State, hostile_files: dict[str, str]
) -> None:
    budget = settings(max_examples=RANDOM or 120, derandomize=not RANDOM, deadline=None,
                      database=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

    @budget
    @given(invocations(hostile_files))
    def run(args: list[str]) -> None:
        _check(cli, state, args)

    run()


def test_every_command_is_fuzzed() -> None:
    assert len(COMMANDS) >= 24
    assert ("archive", "add") in COMMANDS and ("link",) in COMMANDS and ("load",) in COMMANDS


# -- the classes the sweep started from, each pinned --------------------------------------------


def test_ids_beyond_64_bits_are_names_that_name_nothing(cli: Cli, loaded: dict[str, Any],
                                                        state: State) -> None:
    huge = "99999999999999999999"
    snapshot = state.take()
    for args in (["audit", "--migration", huge], ["status", huge], ["--as", SUE, "revoke", huge],
                 ["--as", SUE, "resend", huge], ["--as", SUE, "resume", huge]):
        result = cli(*args)
        assert (result.exit_code, result.error) == (
            3, f"Error: no migration {huge} (see `basecone-migrate list`)"), args
    for args in (["admin", "show", huge], ["archive", "list", f"id:{huge}"],
                 ["--as", SUE, "link", huge, "--code", "1099"], ["audit", "--admin", huge]):
        assert cli(*args).exit_code == 3, args
    assert (cli("audit", "--limit", huge).exit_code, cli("list", "--offset", huge).exit_code) == (2, 2)
    assert cli("audit", "--migration", "1").error == "Error: no migration 1 (see `basecone-migrate list`)"
    assert state.take() == snapshot


def test_names_the_filesystem_cannot_hold_are_usage_errors(
    cli: Cli, loaded: dict[str, Any], state: State, hostile_files: dict[str, str]
) -> None:
    snapshot = state.take()
    for name in ("long", "deep"):
        path = hostile_files[name]
        result = cli("load", path)
        assert (result.exit_code, result.error) == (
            2, f"Error: {path}: the name is too long for the filesystem"), name
        result = cli("archive", "add", "1", path)
        assert (result.exit_code, result.error) == (
            2, f"Error: {path}: the name is too long for the filesystem"), name
    assert state.take() == snapshot


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero", "folder", "unreadable"])
def test_only_regular_files_are_read_as_worlds_documents_or_config(
    env_vars: dict[str, str], loaded: dict[str, Any], state: State, hostile_files: dict[str, str],
    world_dir: Path, kind: str
) -> None:
    import json

    from tests.conftest import run_process

    path = hostile_files.get(kind, kind)
    reason = {"fifo": "is a FIFO (named pipe), not a regular file",
              "/dev/zero": "is a character device, not a regular file",
              "folder": "is a folder, not a regular file", "unreadable": "permission denied"}[kind]
    if kind == "unreadable" and os.geteuid() == 0:
        reason = None  # root reads it anyway: then it is a fine (if odd) document
    snapshot = state.take()
    world = json.loads((world_dir / "world.json").read_text())
    world["environments"][0]["administrations"][2]["documents"] = [path]
    (world_dir / "odd.json").write_text(json.dumps(world))

    runs = {  # own processes with a timeout: a FIFO that is opened blocks forever
        "world": run_process(["load", path], env_vars, timeout=60),
        "document": run_process(["load", str(world_dir / "odd.json"), "--documents-anywhere"], env_vars,
                                timeout=60),
        "archive add": run_process(["archive", "add", "3001", path], env_vars, timeout=60),
        "config": run_process(["--config", path, "env", "list"], env_vars, timeout=60),
    }

    if reason is None:
        assert runs["world"].returncode == 2  # not JSON
        return
    assert (runs["world"].returncode, runs["world"].stderr) == (2, f"Error: {path}: {reason}\n")
    assert (runs["document"].returncode, runs["document"].stderr) == (
        2, f"Error: {world_dir / 'odd.json'}: environments[0].administrations[2].documents[0]: "
           f"document file {path!r}: {reason}\n")
    assert (runs["archive add"].returncode, runs["archive add"].stderr) == (2, f"Error: {path}: {reason}\n")
    assert (runs["config"].returncode, runs["config"].stderr) == (2, f"Error: config file {path}: {reason}\n")
    assert state.take() == snapshot


def test_text_no_database_can_store_is_refused_before_it_reaches_one(
    cli: Cli, loaded: dict[str, Any], state: State, world_dir: Path
) -> None:
    import json

    snapshot = state.take()
    nul = cli("--as", SUE, "list", "--search", "a\x00b")
    assert (nul.exit_code, nul.error) == (2, "Error: argument 'a\\x00b' contains a NUL character")
    broken = cli("--as", SUE, "list", "--search", "caf\udce9")
    assert (broken.exit_code, broken.error) == (
        2, "Error: argument 'caf\ufffd' is not valid UTF-8 text (check the terminal's or the script's "
           "encoding)")
    split = cli("--as", "evil\x1b[2J\nError: fake@x.example", "list")
    assert (split.exit_code, split.error) == (
        4, "Error: unknown acting user evil\\x1b[2J\\nError: fake@x.example: --as must name a user of "
           "an environment")
    world = json.loads((world_dir / "world.json").read_text())
    world["environments"][0]["name"] = "Acme\u0000"
    (world_dir / "nul.json").write_text(json.dumps(world))
    result = cli("load", world_dir / "nul.json")
    assert (result.exit_code, result.error) == (
        2, f"Error: {world_dir / 'nul.json'}: environments[0].name: the text contains a NUL character")
    assert state.take() == snapshot
