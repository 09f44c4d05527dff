"""`load WORLD.json`: the happy path, idempotence, and every malformed case changing nothing."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli, State, snapshot_database, snapshot_files, write_world


def test_load_creates_the_world_and_archives_the_documents(
    cli: Cli, world_dir: Path, world: dict[str, Any], storage: Path
) -> None:
    result = cli.ok("load", write_world(world_dir, world), "--json")

    report = result.json()
    assert report["environments"] == {"created": 3, "updated": 0, "unchanged": 0}
    assert report["users"]["created"] == 7
    assert report["accounting_systems"]["created"] == 7
    assert report["administrations"]["created"] == 4
    assert report["access"]["created"] == 3
    assert report["workflows"]["created"] == 1
    assert report["authorisers"]["created"] == 1
    assert report["documents"] == {"added": 4, "already_present": 0}

    admins = {a["code"]: a for a in cli.ok("admin", "list", "--env", "ACME", "--json").json()}
    assert set(admins) == {"1001", "1002", "3001"}
    assert admins["1001"]["documents"] == 3
    # Every document's bytes are on disk, under the environment's root, keyed by content.
    for number, doc in enumerate(cli.ok("archive", "list", str(admins["1001"]["id"]), "--json").json(), 1):
        original = (world_dir / "docs" / f"invoice-{number}.pdf").read_bytes()
        stored = storage / "ACME" / str(admins["1001"]["id"]) / doc["sha256"]
        assert stored.read_bytes() == original
        assert doc["sha256"] == hashlib.sha256(original).hexdigest()
        assert doc["filename"] == f"invoice-{number}.pdf"


def test_loading_twice_changes_nothing_and_copies_nothing(
    cli: Cli, world_dir: Path, world: dict[str, Any], storage: Path, db_url: str
) -> None:
    path = write_world(world_dir, world)
    cli.ok("load", path)
    database, files = snapshot_database(db_url), snapshot_files(storage)
    mtimes = {p: p.stat().st_mtime_ns for p in storage.rglob("*") if p.is_file()}

    report = cli.ok("load", path, "--json").json()

    assert report["documents"] == {"added": 0, "already_present": 4}
    assert all(counts["created"] == counts["updated"] == 0
               for kind, counts in report.items() if kind != "documents")
    assert snapshot_database(db_url) == database
    assert snapshot_files(storage) == files
    assert {p: p.stat().st_mtime_ns for p in storage.rglob("*") if p.is_file()} == mtimes


def test_reload_updates_names_and_adds_only_what_is_new(
    cli: Cli, world_dir: Path, world: dict[str, Any]
) -> None:
    cli.ok("load", write_world(world_dir, world))
    changed = copy.deepcopy(world)
    changed["environments"][0]["name"] = "Acme Accountants BV"
    (world_dir / "docs" / "new.pdf").write_bytes(b"new document")
    changed["environments"][0]["administrations"][0]["documents"].append("docs/new.pdf")

    report = cli.ok("load", write_world(world_dir, changed), "--json").json()

    assert report["environments"] == {"created": 0, "updated": 1, "unchanged": 2}
    assert report["documents"] == {"added": 1, "already_present": 4}
    assert [e["name"] for e in cli.ok("env", "list", "--json").json()][0] == "Acme Accountants BV"


def _break(world: dict[str, Any], how: str, world_dir: Path) -> None:
    acme = world["environments"][0]
    if how == "unknown connection":
        acme["administrations"][2]["accounting_system"] = "acme-nope"
    elif how == "connection without package":
        del acme["accounting_systems"][1]["package"]
    elif how == "missing document":
        acme["administrations"][1]["documents"].append("docs/missing.pdf")
    elif how == "duplicate code":
        acme["administrations"].append({"code": "1002", "name": "Garage Smit 2",
                                        "accounting_system": "acme-tw2"})
    elif how == "unknown user":
        acme["administrations"][0]["users"].append("nobody@acme.example")
    elif how == "user of another office":
        acme["administrations"][0]["users"].append("tina@book.example")
    elif how == "connection of another office":
        acme["administrations"][2]["accounting_system"] = "book-tw"
    elif how == "bad plan":
        world["environments"][2]["plan"] = "gold"
    elif how == "bad email":
        world["environments"][1]["users"][0]["email"] = "tina-at-book"


MALFORMED = [
    ("unknown connection", 3,
     "environments[0].administrations[2].accounting_system: unknown accounting system 'acme-nope' "
     "(declare it under this environment's accounting_systems)"),
    ("connection without package", 2, "environments[0].accounting_systems[1].package: Field required"),
    ("missing document", 3,
     "environments[0].administrations[1].documents[1]: document file 'docs/missing.pdf' not found "
     "(paths are relative to {dir})"),
    ("duplicate code", 1,
     "environments[0].administrations[3].code: duplicate administration code '1002' in environment "
     "ACME (also at environments[0].administrations[1].code)"),
    ("unknown user", 3,
     "environments[0].administrations[0].users[2]: unknown user 'nobody@acme.example' (declare it "
     "under this environment's users)"),
    ("user of another office", 1,
     "environments[0].administrations[0].users[2]: user tina@book.example belongs to environment "
     "BOOK, not ACME"),
    ("connection of another office", 1,
     "environments[0].administrations[2].accounting_system: accounting system 'book-tw' belongs to "
     "environment BOOK, not ACME"),
    ("bad plan", 2, "environments[2].plan: Input should be 'premium' or 'trial'"),
    ("bad email", 2,
     "environments[1].users[0].email: 'tina-at-book' is not a valid e-mail address: An email "
     "address must have an @-sign."),
]


@pytest.mark.parametrize(("how", "exit_code", "message"), MALFORMED, ids=[m[0] for m in MALFORMED])
@pytest.mark.parametrize("first_load", [False, True], ids=["empty", "reload"])
def test_a_malformed_world_is_refused_and_changes_nothing(
    cli: Cli, world_dir: Path, world: dict[str, Any], state: State,
    how: str, exit_code: int, message: str, first_load: bool,
) -> None:
    if first_load:  # also refused on top of an existing world, leaving it as it was
        cli.ok("load", write_world(world_dir, world, "first.json"))
    broken = copy.deepcopy(world)
    broken["environments"][0]["administrations"][0]["documents"].append("docs/garage.pdf")
    _break(broken, how, world_dir)
    path = write_world(world_dir, broken)
    before = state.take()

    result = cli("load", path)

    assert result.exit_code == exit_code
    assert result.error == f"Error: {path}: " + message.format(dir=world_dir)
    assert result.stdout == ""
    assert state.take() == before


def test_bad_json_names_line_and_column(cli: Cli, world_dir: Path, state: State) -> None:
    path = world_dir / "world.json"
    path.write_text('{"environments": [\n  {"code": "ACME",}\n]}')
    before = state.take()
    result = cli("load", path)
    assert result.exit_code == 2
    assert result.error == (
        f"Error: {path}: not valid JSON (line 2, column 19): Expecting property name enclosed in "
        "double quotes")
    assert state.take() == before


def test_missing_world_file(cli: Cli, tmp_path: Path) -> None:
    result = cli("load", tmp_path / "nope.json")
    assert result.exit_code == 2
    assert result.error == f"Error: {tmp_path / 'nope.json'}: no such file"


def test_document_paths_cannot_escape_the_archive_root(
    cli: Cli, world_dir: Path, world: dict[str, Any], storage: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "evil.pdf").write_bytes(b"not where you think")
    world["environments"][0]["administrations"][2]["documents"] = ["../elsewhere/evil.pdf"]
    cli.ok("load", write_world(world_dir, world), "--documents-anywhere")  # else refused

    admin = next(a for a in cli.ok("admin", "list", "--json").json() if a["code"] == "3001")
    [doc] = cli.ok("archive", "list", str(admin["id"]), "--json").json()
    assert doc["filename"] == "evil.pdf"
    assert doc["storage_key"] == f"{admin['id']}/{doc['sha256']}"
    assert (storage / "ACME" / doc["storage_key"]).read_bytes() == b"not where you think"
    assert sorted(p.name for p in outside.iterdir()) == ["evil.pdf"]  # nothing written outside


def test_environment_storage_may_be_its_own_root(
    cli: Cli, world_dir: Path, world: dict[str, Any], tmp_path: Path, storage: Path
) -> None:
    world["environments"][0]["storage"] = "../acme-archive"
    cli.ok("load", write_world(world_dir, world))
    envs = {e["code"]: e for e in cli.ok("env", "list", "--json").json()}
    assert envs["ACME"]["storage"] == str(tmp_path / "acme-archive")
    assert envs["BOOK"]["storage"] == str(storage / "BOOK")
    files = [p for p in (tmp_path / "acme-archive").rglob("*") if p.is_file()]
    marker = tmp_path / "acme-archive" / ".basecone-migrate-database"  # the root is this database's
    assert sorted(files) == sorted([marker, *[p for p in files if p.parent.name.isdigit()]])
    assert len(files) == 5 and not [p for p in files if p != marker and "." in p.name]  # keys: no extension


# -- the world file is seed data: it never undoes a migration ---------------------------------


def test_reloading_after_a_move_keeps_the_administration_where_it_went(
    cli: Cli, world_dir: Path, world: dict[str, Any], storage: Path, db_url: str
) -> None:
    from tests.conftest import SUE, TINA, make_offer

    path = write_world(world_dir, world)
    cli.ok("load", path)
    code = make_offer(cli, "1001")["transfercode"]
    cli.ok("--as", TINA, "redeem", code, "--accept-terms", "--link", "1001=book-tw:7001")
    database, files = snapshot_database(db_url), snapshot_files(storage)

    result = cli.ok("load", path, "--json")

    assert result.json()["administrations"] == {"created": 0, "updated": 0, "unchanged": 4}
    assert result.json()["documents"] == {"added": 0, "already_present": 1}  # 1002's only
    assert result.stderr == (
        "Warning: environments[0].administrations[0]: ACME/1001 Bakkerij Jansen was moved to BOOK "
        "(now BOOK/7001, id 1); left as it is, with its documents, users and workflows\n")
    assert snapshot_database(db_url) == database
    assert snapshot_files(storage) == files
    assert [a["code"] for a in cli.ok("admin", "list", "--env", "ACME", "--json").json()] == [
        "1002", "3001"]
    assert cli.ok("--as", SUE, "admin", "show", "7001", "--as", TINA, "--json").json()["environment"] == "BOOK"


def test_reloading_after_a_new_code_or_connection_keeps_the_new_link(
    cli: Cli, world_dir: Path, world: dict[str, Any], db_url: str
) -> None:
    from tests.conftest import SUE

    path = write_world(world_dir, world)
    cli.ok("load", path)
    cli.ok("--as", SUE, "link", "1001", "--system", "acme-tw2")  # kind 3: same code elsewhere
    cli.ok("--as", SUE, "link", "1002", "--code", "1098")  # kind 2: now ACME/1098
    database = snapshot_database(db_url)

    result = cli.ok("load", path)

    assert result.stderr == (
        "Warning: environments[0].administrations[0]: ACME/1001 Bakkerij Jansen was re-linked to "
        "acme-tw2 by `link`; it stays linked there\n"
        "Warning: environments[0].administrations[1]: ACME/1002 Garage Smit was re-coded to "
        "1098 (id 2); left as it is, with its documents, users and workflows\n")
    assert snapshot_database(db_url) == database
    admins = {a["id"]: (a["code"], a["accounting_system"])
              for a in cli.ok("admin", "list", "--env", "ACME", "--json").json()}
    assert admins == {1: ("1001", "acme-tw2"), 2: ("1098", "acme-tw"), 3: ("3001", "acme-snel")}


def test_a_new_administration_may_take_a_code_given_up_under_another_name(
    cli: Cli, world_dir: Path, world: dict[str, Any]
) -> None:
    from tests.conftest import SUE

    cli.ok("load", write_world(world_dir, world))
    cli.ok("--as", SUE, "link", "1001", "--code", "1099")
    world["environments"][0]["administrations"].append(
        {"code": "1001", "name": "Nieuw BV", "accounting_system": "acme-tw"})
    del world["environments"][0]["administrations"][0]  # the file now says what the office has

    report = cli.ok("load", write_world(world_dir, world), "--json").json()

    assert report["administrations"]["created"] == 1
    codes = {(a["code"], a["name"]) for a in cli.ok("admin", "list", "--env", "ACME", "--json").json()}
    assert ("1001", "Nieuw BV") in codes and ("1099", "Bakkerij Jansen") in codes


def test_a_load_that_stops_while_copying_keeps_what_it_recorded_and_finishes_on_reload(
    cli: Cli, world_dir: Path, storage: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Documents are copied outside the entities' transaction and recorded in batches: a
    disk that fills up half-way leaves whole batches, no file without its row, and the
    same file loaded again finishes the job."""
    import errno

    from basecone_migrate.services.world import copying as world_copying
    from basecone_migrate.storage import Archive
    from tests.conftest import sample_world

    world = sample_world(world_dir, documents=0)
    folder = world_dir / "many"
    folder.mkdir()
    paths = []
    for n in range(10):
        (folder / f"doc-{n}.pdf").write_bytes(f"invoice {n}\n".encode() * 100)
        paths.append(f"many/doc-{n}.pdf")
    world["environments"][0]["administrations"][0]["documents"] = paths
    path = write_world(world_dir, world)
    monkeypatch.setattr(world_copying, "DOCUMENT_BATCH", 3)
    write = Archive.write
    calls = {"n": 0}

    def full_disk(self: Archive, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 8:
            raise OSError(errno.ENOSPC, "No space left on device")
        return write(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(Archive, "write", full_disk)
        stopped = cli("load", path)

    assert stopped.exit_code == 1
    assert stopped.error == (
        f"Error: {path}: environments[0].administrations[0].documents[7]: cannot write to the "
        f"archive {storage / 'ACME'}: no space left on device (6 documents before it are loaded; "
        "fix this and load the file again to finish)")
    listed = cli.ok("archive", "list", "1001", "--json").json()
    assert [d["filename"] for d in listed] == [f"doc-{n}.pdf" for n in range(6)]
    assert sorted(p.name for p in (storage / "ACME" / "1").iterdir()) == sorted(d["sha256"] for d in listed)
    [entry] = [e for e in cli.ok("audit", "--json").json() if e["action"] == "load"]
    assert entry["details"]["summary"]["documents"] == {"added": 6, "already_present": 0}

    report = cli.ok("load", path, "--json").json()

    # The 4 left of 1001, and the document of an administration the first run never reached.
    assert report["documents"] == {"added": 5, "already_present": 6}
    assert cli.ok("archive", "verify", "1001", "--json").json()["ok"] == 10
