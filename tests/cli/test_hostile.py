"""Hostile input: every command, driven with generated arguments through the real entry
point, on both databases.

Each command has a strategy that gives it what it needs to get past the argument parser
(its required arguments, in shapes it accepts: an administration id or code, a migration
id, a transfercode, a batch file) and draws hostile values for them and for its options
now and then, so that most examples reach the command's own checks. Whatever the
arguments, the program answers with a contract exit code, one ``Error:`` line when it
refuses, never a traceback; a refused command (and any ``--dry-run``) changes nothing in
the database, the archive or the outbox; ``--json`` that succeeds prints one JSON document.

Every example starts from the same world (the sample world and one open offer of 1001 from
Sue to Tina): when an example changed anything (a command that succeeded, a failed code
that was counted) the database, the archive and the outbox are put back before the next.

The examples are derandomised (the same every run, so CI cannot flake), EXAMPLES per
command and backend. ``BASECONE_MIGRATE_TEST_HOSTILE=N`` runs N fresh random examples per
command and backend instead (for a longer hunt: ``BASECONE_MIGRATE_TEST_HOSTILE=200 pytest
tests/cli/test_hostile.py``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.main import get_command

from basecone_migrate.cli import app
from tests.conftest import CARL, SUE, TIM, TINA, TOM, Cli, State, make_offer, write_world

#: Commands that would wait or build a workspace of their own: not for a fuzzer.
SKIPPED = {"demo", "worker"}
CONTRACT_CODES = {0, 1, 2, 3, 4, 5}
RANDOM = int(os.environ.get("BASECONE_MIGRATE_TEST_HOSTILE", "0"))
#: Derandomised examples per command and backend (27 commands, two backends).
EXAMPLES = 8


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
    (folder / "links.csv").write_text("admin,connection,code\n1001,book-tw,7001\n")
    (folder / "bad-links.csv").write_text("1001,book-tw,7001\n1001,nowhere,1\n,,\n")
    (folder / "offers.txt").write_text("1001\n1002\n")
    (folder / "relink.csv").write_text("1001,acme-tw2,1501\n")
    (folder / "relink.jsonl").write_text('{"admin": "1002", "code": "1098"}\n{"admin": 3001}\n')
    (folder / "code.txt").write_text("placeholder\n")
    return {"fifo": str(fifo), "garbage": str(folder / "garbage.json"), "doc": str(folder / "doc.pdf"),
            "unreadable": str(folder / "unreadable.pdf"), "folder": str(folder),
            "long": str(folder / ("x" * 300)), "deep": str(folder / "/".join(["d" * 200] * 30)),
            "missing": str(folder / "missing.json"), "links": str(folder / "links.csv"),
            "bad-links": str(folder / "bad-links.csv"), "offers": str(folder / "offers.txt"),
            "relink": str(folder / "relink.csv"), "relink-jsonl": str(folder / "relink.jsonl"),
            "code-file": str(folder / "code.txt")}


# -- strategies: a command's arguments in shapes it takes, hostile values now and then ----------

#: Stand-ins filled in when the example runs: the open offer's code, the world file, files.
CODE, WORLD = "<code>", "<world>"
FILE_NAMES = ("fifo", "garbage", "doc", "unreadable", "folder", "long", "deep", "missing", "links",
              "bad-links", "offers", "relink", "relink-jsonl", "code-file")


def _hostile() -> st.SearchStrategy[str]:
    fixed = ["1", "2", "3", "1001", "1002", "3001", "7001", "id:1", "id:99999999999999999999",
             "99999999999999999999", "18446744073709551616", "-1", "0", "00001", "²", "١٢",
             SUE, TINA, "nobody@nowhere.example", "ACME", "BOOK", "acme-tw", "acme-tw2", "book-tw",
             "1001=book-tw:7001", "1001=book-tw", "=:", "x" * 5000, "", " ", "offered", "expired",
             "2026-03-01", "not-a-date", "K7QF-9XMB-2R4D-HT0C-W8NS", "ACME.1001@mailtobasecone.com",
             "a\x00b", "caf\udce9", "'; DROP TABLE users; --", "%", "_", "\\", "🙂", "-", "--",
             "--json", "/dev/zero", "/dev/null", *(f"<{name}>" for name in FILE_NAMES)]
    return st.one_of(st.sampled_from(fixed), st.text(max_size=12),
                     st.integers(min_value=-(2**70), max_value=2**70).map(str))


HOSTILE = _hostile()


def shaped(*valid: str) -> st.SearchStrategy[str]:
    """A value the option takes three times in four, a hostile one otherwise."""
    return st.integers(0, 3).flatmap(lambda n: HOSTILE if n == 3 else st.sampled_from(valid))


Part = st.SearchStrategy[list[str]]


def arg(values: st.SearchStrategy[str]) -> Part:
    return values.map(lambda v: [v])


def opt(name: str, values: st.SearchStrategy[str], required: bool = False) -> Part:
    given_ = values.map(lambda v: [name, v])
    return given_ if required else st.one_of(st.just([]), given_)


def flag(name: str, often: bool = False) -> Part:
    return st.sampled_from([[name], [name], [name], []] if often else [[], [name]])


def many(name: str | None, values: st.SearchStrategy[str], least: int = 0, most: int = 2) -> Part:
    def spread(drawn: list[str]) -> list[str]:
        return [part for v in drawn for part in ((name, v) if name else (v,))]
    return st.lists(values, min_size=least, max_size=most).map(spread)


def _joined(parts: tuple[list[str], ...]) -> list[str]:
    return [a for part in parts for a in part]


def either(*parts: Part) -> Part:
    return st.one_of(*parts)


ADMINS = shaped("1", "2", "3", "4", "1001", "1002", "3001", "5001", "id:1", "id:4")
MIGRATIONS = shaped("1", "2", "01")
USERS = shaped(SUE, TINA, TIM, CARL, TOM, "uma@book.example", "bob@acme.example")
RECIPIENTS = shaped(TINA, TIM, TOM, SUE, "stranger@else.example")
SYSTEMS = shaped("acme-tw", "acme-tw2", "acme-eol", "acme-snel", "book-tw")
CODES = shaped("1001", "1002", "1098", "1099", "1501", "7001")
INSTANTS = shaped("2026-03-01", "2026-03-01T00:00:00Z", "2026-03-02T09:00:00+01:00", "yesterday")
LIMITS = shaped("1", "5", "100", "0")
STATUSES = shaped("offered", "revoked", "expired", "rejected", "in_progress", "completed", "failed",
                  "scheduled", "paused", "cancelled", "undone")


def files(*names: str) -> st.SearchStrategy[str]:
    return shaped(*(f"<{name}>" for name in names))


#: Per command: the parts of its command line after the command's name.
STRATEGIES: dict[tuple[str, ...], list[Part]] = {
    ("access", "grant"): [arg(ADMINS), many("--user", USERS, least=1), opt("--migration", MIGRATIONS)],
    ("access", "list"): [arg(ADMINS)],
    ("access", "revoke"): [arg(ADMINS), many("--user", USERS, least=1)],
    ("admin", "list"): [opt("--env", shaped("ACME", "BOOK", "TRY", "acme"))],
    ("admin", "show"): [arg(ADMINS)],
    ("archive", "add"): [arg(ADMINS), many(None, files("doc", "doc", "fifo", "unreadable", "folder",
                                                      "missing", "long", "garbage"), least=1)],
    ("archive", "list"): [arg(ADMINS)],
    ("archive", "verify"): [arg(ADMINS)],
    ("audit",): [opt("--admin", ADMINS), opt("--migration", MIGRATIONS), opt("--since", INSTANTS),
                 opt("--limit", LIMITS), opt("--after", shaped("1", "2", "5"))],
    ("config",): [],
    ("db", "upgrade"): [],
    ("env", "list"): [],
    ("expire",): [],
    ("link",): [either(
        st.tuples(arg(ADMINS), opt("--system", SYSTEMS), opt("--code", CODES)).map(_joined),
        st.tuples(arg(ADMINS), opt("--system", SYSTEMS, required=True)).map(_joined),
        opt("--from", files("relink", "relink-jsonl", "links", "bad-links", "garbage", "fifo"),
            required=True)),
        flag("--dry-run"), flag("--take-catalogue-name")],
    ("list",): [opt("--search", shaped("1001", "bakkerij", "tina", "%", "_")), opt("--status", STATUSES),
                st.sampled_from([[], ["--offered"], ["--received"], ["--offered", "--received"]]),
                opt("--limit", LIMITS), opt("--offset", LIMITS), opt("--after", shaped("1", "2"))],
    ("load",): [arg(files(WORLD[1:-1], WORLD[1:-1], "garbage", "fifo", "folder", "missing", "doc",
                          "long")), flag("--documents-anywhere")],
    ("mail", "flush"): [],
    ("mail", "list"): [opt("--state", shaped("queued", "sent", "failed")), opt("--limit", LIMITS)],
    ("mail", "show"): [arg(shaped("1", "2", "3"))],
    ("offer",): [either(many(None, ADMINS, least=1), opt("--from", files("offers", "garbage", "links"),
                                                           required=True)),
                 many("--to", RECIPIENTS, least=1), flag("--accept-terms", often=True),
                 flag("--confirm-checklist"), flag("--allow-unknown-recipient"),
                 opt("--to-env", shaped("BOOK", "TRY", "ACME")), flag("--dry-run")],
    ("redeem",): [either(arg(shaped(CODE, CODE, CODE.upper(), "K7QF-9XMB-2R4D-HT0C-W8NS")),
                         opt("--code-file", files("code-file", "garbage", "missing"), required=True)),
                  either(st.tuples(flag("--accept-terms", often=True), many("--select", ADMINS),
                                   many("--link", shaped("1001=book-tw:7001", "1001=book-tw",
                                                         "1001=book-xero:6001", "1002=book-tw:1002")),
                                   opt("--links", files("links", "bad-links", "garbage")),
                                   flag("--take-catalogue-name"), flag("--background"),
                                   opt("--start-after", INSTANTS)).map(_joined),
                         st.tuples(st.just(["--reject"]), opt("--reason", shaped("too late", "\x1b[31mred"))
                                   ).map(_joined)),
                  flag("--dry-run")],
    ("resend",): [arg(MIGRATIONS)],
    ("resume",): [arg(MIGRATIONS), flag("--background")],
    ("revoke",): [arg(MIGRATIONS), opt("--admin", ADMINS)],
    ("status",): [either(st.just([]), arg(MIGRATIONS)), opt("--limit", LIMITS),
                  opt("--after", shaped("1", "2")),
                  st.sampled_from([[], ["--watch", "--interval", "0.2"]])],
    ("terms",): [],
    ("cancel",): [arg(MIGRATIONS), many("--admin", ADMINS), opt("--reason", shaped("wrong office", "\x1b[31mred"))],
    ("undo",): [arg(MIGRATIONS), many("--admin", ADMINS), opt("--reason", shaped("not ours", "\x1b[31mred")),
                flag("--dry-run")],
    ("pause",): [arg(MIGRATIONS)],
    ("charges",): [opt("--env", shaped("ACME", "BOOK", "TRY", "acme")), opt("--limit", LIMITS),
                   opt("--after", shaped("1", "2"))],
}


@st.composite
def invocations(draw: st.DrawFn, path: tuple[str, ...]) -> list[str]:
    args: list[str] = []
    usual = TINA if path in (("redeem",), ("resume",), ("cancel",), ("undo",), ("pause",)) else SUE  # who would run it
    acting = draw(st.sampled_from([usual, usual, usual, SUE, TINA, CARL, TOM, None, "nobody@x.example"]))
    if acting is not None:
        args += ["--as", acting]
    args += list(path)
    for part in STRATEGIES[path]:
        args += draw(part)
    args += draw(flag("--json"))
    if draw(st.integers(0, 9)) == 9:
        args.append(draw(HOSTILE))  # a stray, where it does not belong
    return args


# -- one world, put back after every example that changed it ----------------------------------


@dataclass
class World:
    """The database, archive and outbox of the example world, and a way back to them."""

    cli: Cli
    state: State
    code: str
    base: tuple[Any, ...]
    restore: Callable[[], None]
    restored: int = 0
    exits: Counter[int] = field(default_factory=Counter)
    past_parsing: int = 0
    parser_refusals: list[str] = field(default_factory=list)

    def check(self, args: list[str], files: dict[str, str]) -> None:
        args = [self._fill(a, files) for a in args]
        result = self.cli(*args)
        where = f"{args!r}: exit {result.exit_code}, stderr {result.stderr!r}"
        self.exits[result.exit_code] += 1
        assert result.exit_code in CONTRACT_CODES, where
        assert "Traceback" not in result.stderr, where
        if result.exit_code != 0:
            errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
            assert len(errors) == 1 and result.stderr.rstrip().splitlines()[-1] == errors[0], where
            if not (result.exit_code == 2 and errors[0].endswith("--help'.")):
                self.past_parsing += 1  # the parser's own messages name --help; the checks' do not
            else:
                self.parser_refusals.append(f"{args!r}: {errors[0]}")
        else:
            self.past_parsing += 1
            if "--json" in args:
                json.loads(result.stdout)  # one JSON document, nothing else
        after = self.state.take()
        if after == self.base:
            return
        if result.exit_code not in (0, 5) or "--dry-run" in args:
            before, now = dict(self.base[0]), dict(after[0])
            before.pop("failed_redeems"), now.pop("failed_redeems")  # counted on purpose
            assert (now, *after[1:]) == (before, *self.base[1:]), (
                f"{where}: a refused command or a dry run changed something")
        self.restore()
        self.restored += 1
        assert self.state.take() == self.base, "the world was not put back"

    def _fill(self, value: str, files: dict[str, str]) -> str:
        if value in (CODE, CODE.upper()):
            return self.code if value == CODE else self.code.upper()
        if value.startswith("<") and value.endswith(">") and value[1:-1] in files:
            return files[value[1:-1]]
        return value


@pytest.fixture
def world_of_examples(cli: Cli, state: State, db_url: str, backend: str, world_dir: Path,
                      world: dict[str, Any], hostile_files: dict[str, str], storage: Path,
                      isolated_environment: Path, request: pytest.FixtureRequest,
                      tmp_path: Path) -> Iterator[World]:
    """The sample world loaded, Sue's offer of 1001 to Tina open; its copy to go back to."""
    hostile_files[WORLD[1:-1]] = str(write_world(world_dir, world))
    cli.ok("load", hostile_files[WORLD[1:-1]])
    code = make_offer(cli, "1001")["transfercode"]
    Path(hostile_files["code-file"]).write_text(code + "\n")
    data = isolated_environment / "data"
    saved = tmp_path / "saved"
    shutil.copytree(storage, saved / "archive", symlinks=True)
    shutil.copytree(data, saved / "data", symlinks=True)

    def put_back_files() -> None:
        for live, copy in ((storage, saved / "archive"), (data, saved / "data")):
            shutil.rmtree(live)
            shutil.copytree(copy, live, symlinks=True)

    if backend == "sqlite":
        database = Path(db_url.removeprefix("sqlite:///"))
        shutil.copyfile(database, saved / "basecone.db")

        def restore() -> None:
            for suffix in ("-wal", "-shm", "-journal"):
                database.with_name(database.name + suffix).unlink(missing_ok=True)
            shutil.copyfile(saved / "basecone.db", database)
            put_back_files()

        yield World(cli, state, code, state.take(), restore)
        return

    from sqlalchemy.engine import make_url

    pg_server = request.getfixturevalue("pg_server")
    name = make_url(db_url).database
    template = f"{name}_hostile_base"

    def sql(statement: str) -> None:
        with pg_server.connect() as connection:
            connection.exec_driver_sql(statement)

    sql(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
    sql(f'CREATE DATABASE "{template}" TEMPLATE "{name}" STRATEGY FILE_COPY')

    def restore_pg() -> None:
        sql(f'DROP DATABASE "{name}" WITH (FORCE)')
        sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
        put_back_files()

    try:
        yield World(cli, state, code, state.take(), restore_pg)
    finally:
        sql(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=" ".join)
def test_hostile_arguments_get_a_contract_exit_code_and_change_nothing(
    world_of_examples: World, hostile_files: dict[str, str], path: tuple[str, ...]
) -> None:
    budget = settings(max_examples=RANDOM or EXAMPLES, derandomize=not RANDOM, deadline=None,
                      database=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                             HealthCheck.filter_too_much])
    seen: list[list[str]] = []

    @budget
    @given(invocations(path))
    def run(args: list[str]) -> None:
        seen.append(args)
        world_of_examples.check(args, hostile_files)

    run()
    world = world_of_examples
    # Exercised past the parser: most examples reach the command's own checks (or succeed).
    assert world.past_parsing * 2 > len(seen), (path, world.exits, world.parser_refusals)
    assert sum(n for code, n in world.exits.items() if code != 2) >= 1, (path, world.exits)


def test_every_command_is_fuzzed() -> None:
    assert len(COMMANDS) >= 24
    assert ("archive", "add") in COMMANDS and ("link",) in COMMANDS and ("load",) in COMMANDS
    # A new command needs a strategy (and then gets its own run of examples above).
    assert set(STRATEGIES) == set(COMMANDS), set(COMMANDS) ^ set(STRATEGIES)


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
    # Root reads a file of mode 000 anyway (CAP_DAC_OVERRIDE): as root (CI) the program runs
    # without the capabilities that bypass file permissions, and then reads it as an owner
    # with no read bit would, while it still owns its database and archive.
    blind = {"preexec_fn": _without_permission_override} if os.geteuid() == 0 else {}
    snapshot = state.take()
    world = json.loads((world_dir / "world.json").read_text())
    world["environments"][0]["administrations"][2]["documents"] = [path]
    (world_dir / "odd.json").write_text(json.dumps(world))

    runs = {  # own processes with a timeout: a FIFO that is opened blocks forever
        "world": run_process(["load", path], env_vars, timeout=60, **blind),
        "document": run_process(["load", str(world_dir / "odd.json"), "--documents-anywhere"], env_vars,
                                timeout=60, **blind),
        "archive add": run_process(["archive", "add", "3001", path], env_vars, timeout=60, **blind),
        "config": run_process(["--config", path, "env", "list"], env_vars, timeout=60, **blind),
    }

    assert (runs["world"].returncode, runs["world"].stderr) == (2, f"Error: {path}: {reason}\n")
    assert (runs["document"].returncode, runs["document"].stderr) == (
        2, f"Error: {world_dir / 'odd.json'}: environments[0].administrations[2].documents[0]: "
           f"document file {path!r}: {reason}\n")
    assert (runs["archive add"].returncode, runs["archive add"].stderr) == (2, f"Error: {path}: {reason}\n")
    assert (runs["config"].returncode, runs["config"].stderr) == (2, f"Error: config file {path}: {reason}\n")
    assert state.take() == snapshot


def _without_permission_override() -> None:
    """In the child, before it runs the program: drop CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH from the bounding set, so that root's program starts without them."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop, cap_dac_override, cap_dac_read_search = 24, 1, 2
    for capability in (cap_dac_override, cap_dac_read_search):
        if libc.prctl(pr_capbset_drop, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def test_root_without_the_override_cannot_read_a_file_of_mode_000(tmp_path: Path) -> None:
    """The device the test above relies on as root: it does take the permission away."""
    import subprocess
    import sys

    secret = tmp_path / "secret"
    secret.write_text("secret")
    secret.chmod(0)
    blind = {"preexec_fn": _without_permission_override} if os.geteuid() == 0 else {}
    done = subprocess.run([sys.executable, "-c", f"open({str(secret)!r}).read()"], capture_output=True,
                          text=True, check=False, **blind)
    assert done.returncode == 1 and "PermissionError: [Errno 13]" in done.stderr, done.stderr


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
