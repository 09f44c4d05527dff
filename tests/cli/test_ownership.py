"""A storage root and an outbox belong to one database, and one folder is one root whatever
its spelling: no database ever reads, writes or removes another's documents or mails, and no
move removes what it moved."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    MARKER,
    NOW,
    S3,
    SUE,
    TINA,
    Cli,
    State,
    database_folder,
    make_offer,
    sample_world,
    snapshot_database,
    snapshot_files,
    write_world,
)


def url_of(db_url: str) -> str:
    from basecone_migrate.settings import mask_url_password, normalise_db_url

    return mask_url_password(normalise_db_url(db_url))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_second_database_keeps_to_folders_of_its_own(
    db_url: str, world_dir: Path, isolated_environment: Path
) -> None:
    """The README's switch to another database: both use the default folders, their ids both
    start at 1, and neither touches the other's documents or mails."""
    data = isolated_environment / "data" / "basecone-migrate"
    first = Cli({"BASECONE_MIGRATE_NOW": NOW})  # the embedded default: data/archive, data/outbox
    world = write_world(world_dir, sample_world(world_dir))
    first.ok("load", world)
    offered = make_offer(first, "1001")
    [first_mail] = [p for p in (data / "outbox").iterdir() if p.name != MARKER]
    first_bytes = first_mail.read_bytes()
    assert offered["transfercode"].encode() in first_bytes.replace(b"=\r\n", b"")
    first_documents = snapshot_files(data / "archive")

    second = Cli({"BASECONE_MIGRATE_DB": db_url, "BASECONE_MIGRATE_NOW": NOW})
    second.ok("load", world)
    code = make_offer(second, "1001")["transfercode"]
    assert second.ok("--as", TINA, "redeem", code, "--accept-terms", "--json").json()["status"] == "completed"

    own = database_folder(db_url, isolated_environment)
    assert {p.name for p in own.iterdir()} == {"archive", "outbox"}
    assert sorted(p.name for p in (own / "outbox").iterdir()) == [
        MARKER, "000001-offer.eml", "000002-redeem.eml", "000003-completed.eml"]
    assert len(list((own / "archive" / "BOOK" / "1").iterdir())) == 3  # its move, in its folder
    # The first database's documents and its mail with a transfercode are as they were.
    assert snapshot_files(data / "archive") == first_documents
    assert first_mail.read_bytes() == first_bytes
    verified = first.ok("archive", "verify", "1", "--json").json()
    assert (verified["ok"], verified["missing"], verified["different"]) == (3, [], [])


def test_a_root_or_an_outbox_of_another_database_is_refused(
    db_url: str, world_dir: Path, tmp_path: Path, isolated_environment: Path
) -> None:
    shared = tmp_path / "shared"
    first = Cli({"BASECONE_MIGRATE_STORAGE": str(shared), "BASECONE_MIGRATE_NOW": NOW})
    world = write_world(world_dir, sample_world(world_dir))
    first.ok("load", world)
    files = snapshot_files(shared)
    first_url = url_of(f"sqlite:///{isolated_environment / 'data' / 'basecone-migrate' / 'basecone-migrate.db'}")

    second = Cli({"BASECONE_MIGRATE_DB": db_url, "BASECONE_MIGRATE_STORAGE": str(shared),
                  "BASECONE_MIGRATE_NOW": NOW})
    before = snapshot_database(db_url)
    refused = second("load", world)
    assert refused.exit_code == 1
    assert refused.error == (
        f"Error: the storage root {shared} belongs to another database ({first_url}, since "
        f"2026-03-02); this database ({url_of(db_url)}) never reads, writes or removes what is "
        "there: give it a folder of its own (BASECONE_MIGRATE_STORAGE, or the environment's "
        "storage in the world file)")
    assert snapshot_database(db_url) == before and snapshot_files(shared) == files

    # With a root of its own it loads; an outbox marked as the first's refuses its mails.
    alone = Cli({"BASECONE_MIGRATE_DB": db_url, "BASECONE_MIGRATE_STORAGE": str(tmp_path / "own"),
                 "BASECONE_MIGRATE_NOW": NOW})
    alone.ok("load", world)
    outbox = database_folder(db_url, isolated_environment) / "outbox"
    outbox.mkdir(parents=True)
    (outbox / MARKER).write_bytes((shared / MARKER).read_bytes())
    state = State(db_url, (tmp_path / "own", outbox))
    taken = state.take()
    offer = alone("--as", SUE, "offer", "1001", "--to", TINA, "--accept-terms")
    assert offer.exit_code == 1
    assert offer.error == (
        f"Error: the outbox folder {outbox} belongs to another database ({first_url}, since "
        f"2026-03-02); this database ({url_of(db_url)}) never reads, writes or removes what is "
        "there: set BASECONE_MIGRATE_SMTP_HOST, or give it a data folder of its own")
    assert state.take() == taken


@pytest.mark.parametrize("spelling", ["file", "symlink", "nested"])
def test_two_names_for_one_folder_are_refused_at_load(
    cli: Cli, world_dir: Path, tmp_path: Path, state: State, spelling: str
) -> None:
    folder = tmp_path / "srv" / "a"
    folder.mkdir(parents=True)
    (tmp_path / "link").symlink_to(folder)
    other = {"file": f"file://{folder}", "symlink": str(tmp_path / "link"),
             "nested": str(folder / "inner")}[spelling]
    world = sample_world(world_dir)
    world["environments"][0]["storage"] = str(folder)
    world["environments"][1]["storage"] = other
    before = state.take()
    result = cli("load", write_world(world_dir, world))
    how = "are one inside the other" if spelling == "nested" else "are one place"
    shown = {"file": f"file://{folder}", "symlink": str(folder),  # load resolves a path
             "nested": str(folder / "inner")}[spelling]
    first, second = ("ACME", str(folder)), ("BOOK", shown)  # by office code; the outer one first
    assert result.exit_code == 1
    assert result.error == (
        f"Error: {world_dir / 'world.json'}: the archive roots of environments {first[0]} ({first[1]}) "
        f"and {second[0]} ({second[1]}) {how}: a move between them could remove what it moved; "
        "give each environment a storage of its own")
    assert state.take() == before


def aliased_world(cli: Cli, world_dir: Path, tmp_path: Path, db_url: str) -> Path:
    """ACME's root at srv/a and BOOK's at file://srv/a, as an older version let a load write;
    an offer of 1001 made. Returns the folder."""
    from sqlalchemy import create_engine, text

    folder = tmp_path / "srv" / "a"
    world = sample_world(world_dir)
    world["environments"][0]["storage"] = str(folder)
    cli.ok("load", write_world(world_dir, world))
    engine = create_engine(db_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE environments SET storage = :s WHERE code = 'BOOK'"),
                           {"s": f"file://{folder}"})
    engine.dispose()
    return folder


def test_a_move_between_two_names_of_one_folder_is_refused_and_removes_nothing(
    cli: Cli, world_dir: Path, tmp_path: Path, db_url: str
) -> None:
    """Roots that alias in a database an older version loaded: redeem refuses before anything
    changes, and the transfer engine itself never removes a source that is its own target."""
    folder = aliased_world(cli, world_dir, tmp_path, db_url)
    code = make_offer(cli, "1001")["transfercode"]
    files = snapshot_files(folder)
    before = snapshot_database(db_url)
    refused = cli("--as", TINA, "redeem", code, "--accept-terms")
    assert refused.exit_code == 1
    assert refused.error == (
        f"Error: the archives of ACME ({folder}) and BOOK (file://{folder}) are one place: a move "
        "between them could remove what it moved; give each environment a storage of its own in "
        "the world file")
    assert snapshot_database(db_url) == before and snapshot_files(folder) == files


def test_the_engine_never_removes_a_source_that_is_its_own_target(
    cli: Cli, world_dir: Path, tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from basecone_migrate.services.migrations import receiving

    aliased_world(cli, world_dir, tmp_path, db_url)
    code = make_offer(cli, "1001")["transfercode"]
    monkeypatch.setattr(receiving, "check_archives", lambda *_: None)  # as an older version did
    assert cli.ok("--as", TINA, "redeem", code, "--accept-terms", "--json").json()["status"] == "completed"
    verified = cli.ok("archive", "verify", "1", "--json").json()
    assert (verified["ok"], verified["missing"], verified["different"]) == (3, [], [])
    assert cli.ok("status", "1", "--json").json()["items"][0]["mode"] == "none"


def test_a_world_that_would_re_point_an_environment_holding_documents_is_refused(
    cli: Cli, world_dir: Path, world: dict[str, Any], tmp_path: Path, storage: Path, state: State
) -> None:
    path = write_world(world_dir, world)
    cli.ok("load", path)
    before = state.take()
    world["environments"][0]["storage"] = str(tmp_path / "elsewhere")
    refused = cli("load", write_world(world_dir, world))
    assert refused.exit_code == 1
    assert refused.error == (
        f"Error: {path}: environments[0].storage: environment ACME holds 4 documents in "
        f"{storage / 'ACME'}; this file would point it at {tmp_path / 'elsewhere'}, where they are "
        "not: keep its storage as it is (or move the documents there first)")
    assert state.take() == before

    # Another spelling of the same folder is no move; an environment without documents may
    # move. Both are audited.
    world["environments"][0]["storage"] = f"file://{storage / 'ACME'}"
    world["environments"][2]["storage"] = str(tmp_path / "trial")
    cli.ok("load", write_world(world_dir, world))
    changes = [(e["details"]["environment"], e["details"]["same_place"])
               for e in cli.ok("audit", "--json").json() if e["action"] == "storage"]
    assert sorted(changes) == [("ACME", True), ("TRY", False)]
    verified = cli.ok("archive", "verify", "1", "--json").json()
    assert verified["ok"] == 3


def test_an_s3_root_of_another_database_is_refused(
    db_url: str, world_dir: Path, s3: S3, isolated_environment: Path
) -> None:
    """On S3 the marker is an object: a second database sharing a bucket prefix is refused
    before it reads or writes there."""
    world = sample_world(world_dir)
    world["environments"][0]["storage"] = s3.url("acme")
    path = write_world(world_dir, world)
    first = Cli({"BASECONE_MIGRATE_NOW": NOW, "BASECONE_MIGRATE_STORAGE": str(world_dir / "a")})
    first.ok("load", path)
    assert MARKER in s3.keys("acme")
    objects = {key: s3.read(f"acme/{key}") for key in s3.keys("acme")}
    second = Cli({"BASECONE_MIGRATE_DB": db_url, "BASECONE_MIGRATE_NOW": NOW,
                  "BASECONE_MIGRATE_STORAGE": str(world_dir / "b")})
    before = snapshot_database(db_url)
    refused = second("load", path)
    assert refused.exit_code == 1
    assert refused.error.startswith(f"Error: the archive folder {s3.url('acme')} belongs to another "
                                    "database (sqlite:///")
    assert snapshot_database(db_url) == before
    assert {key: s3.read(f"acme/{key}") for key in s3.keys("acme")} == objects


def test_two_spellings_of_one_s3_prefix_are_refused_at_load(
    cli: Cli, world_dir: Path, s3: S3, state: State
) -> None:
    world = sample_world(world_dir)
    world["environments"][0]["storage"] = s3.url("acme")
    world["environments"][1]["storage"] = f"s3a://{s3.bucket}/acme/"  # s3a: another name of s3
    before = state.take()
    result = cli("load", write_world(world_dir, world))
    assert result.exit_code == 1
    assert result.error == (
        f"Error: {world_dir / 'world.json'}: the archive roots of environments ACME ({s3.url('acme')}) "
        f"and BOOK (s3a://{s3.bucket}/acme) are one place: a move between them could remove what it "
        "moved; give each environment a storage of its own")
    assert state.take() == before and s3.keys("acme") == []


def test_a_root_inside_another_databases_root_is_refused(
    db_url: str, world_dir: Path, tmp_path: Path, isolated_environment: Path
) -> None:
    """The nearest marker above a folder says whose it is: a world cannot put an environment
    inside another database's archive (its administration folders would be renamed away)."""
    shared = tmp_path / "first"
    first = Cli({"BASECONE_MIGRATE_STORAGE": str(shared), "BASECONE_MIGRATE_NOW": NOW})
    first.ok("load", write_world(world_dir, sample_world(world_dir)))
    files = snapshot_files(shared)
    world = sample_world(world_dir)
    world["environments"][1]["storage"] = str(shared / "ACME" / "1")
    second = Cli({"BASECONE_MIGRATE_DB": db_url, "BASECONE_MIGRATE_STORAGE": str(tmp_path / "own"),
                  "BASECONE_MIGRATE_NOW": NOW})
    second.ok("load", write_world(world_dir, world, "second.json"))  # BOOK holds no documents
    code = make_offer(second, "1001")["transfercode"]
    before = snapshot_database(db_url)
    refused = second("--as", TINA, "redeem", code, "--accept-terms")
    assert refused.exit_code == 1
    assert refused.error.startswith(
        f"Error: the archive folder {shared / 'ACME' / '1'} is inside {shared / 'ACME'}, which "
        "belongs to another database (sqlite:///")
    assert snapshot_database(db_url) == before and snapshot_files(shared) == files


def test_a_database_from_before_its_own_folders_is_told_where_its_documents_are(
    db_url: str, world_dir: Path, isolated_environment: Path
) -> None:
    """Before revision 0008 every database used the data folder's archive/: one that holds
    documents under its storage root, whose own folder does not exist, is refused with the
    setting to use, never told its documents are missing."""
    import shutil

    cli = Cli({"BASECONE_MIGRATE_DB": db_url, "BASECONE_MIGRATE_NOW": NOW})
    cli.ok("load", write_world(world_dir, sample_world(world_dir)))
    own = database_folder(db_url, isolated_environment) / "archive"
    legacy = isolated_environment / "data" / "basecone-migrate" / "archive"
    shutil.move(own, legacy)  # where an older version kept them
    refused = cli("archive", "verify", "1")
    assert (refused.exit_code, refused.error) == (1, (
        f"Error: this database holds 4 documents under its storage root, but its own folder {own} "
        f"does not exist: if they are in {legacy} (where every database kept them before this "
        f"version), set BASECONE_MIGRATE_STORAGE={legacy}"))
    assert not own.exists()
    pointed = Cli({"BASECONE_MIGRATE_DB": db_url, "BASECONE_MIGRATE_STORAGE": str(legacy)})
    assert pointed.ok("archive", "verify", "1", "--json").json()["ok"] == 3


def test_archive_verify_writes_nothing(
    cli: Cli, world_dir: Path, tmp_path: Path
) -> None:
    world = sample_world(world_dir)
    world["environments"][0]["storage"] = str(tmp_path / "acme")
    cli.ok("load", write_world(world_dir, world))
    (tmp_path / "acme" / MARKER).unlink()  # as an archive from before markers
    assert cli.ok("archive", "verify", "1", "--json").json()["ok"] == 3
    assert not (tmp_path / "acme" / MARKER).exists()


def test_a_re_point_to_another_s3_spelling_or_during_a_move_is_refused(
    cli: Cli, world_dir: Path, s3: S3, storage: Path, db_url: str
) -> None:
    """S3 keys are literal: s3://b//acme is not s3://b/acme. And an environment whose move
    has not finished keeps its root whatever it holds itself."""
    world = sample_world(world_dir)
    world["environments"][0]["storage"] = s3.url("acme")
    path = write_world(world_dir, world)
    cli.ok("load", path)
    world["environments"][0]["storage"] = f"s3://{s3.bucket}//acme"
    refused = cli("load", write_world(world_dir, world))
    assert refused.exit_code == 1 and refused.error.startswith(
        f"Error: {path}: environments[0].storage: environment ACME holds 4 documents in "
        f"{s3.url('acme')}; this file would point it at s3://{s3.bucket}//acme, where they are not")

    world["environments"][0]["storage"] = s3.url("acme")
    from sqlalchemy import create_engine, text

    code = make_offer(cli, "1001")["transfercode"]
    engine = create_engine(db_url)
    with engine.begin() as connection:  # the redeem took it, and its transfer died at once
        connection.execute(text("UPDATE migration_items SET status = 'in_progress', "
                                "phase = 'copying' WHERE migration_id = 1"))
        connection.execute(text("UPDATE migrations SET target_environment_id = "
                                "(SELECT id FROM environments WHERE code = 'BOOK')"))
    engine.dispose()
    assert code
    world["environments"][1]["storage"] = str(storage / "elsewhere")  # BOOK holds nothing itself
    moving = cli("load", write_world(world_dir, world))
    assert (moving.exit_code, moving.error) == (1, (
        f"Error: {path}: environments[1].storage: environment BOOK is in migration 1, whose "
        "transfer has not finished: its documents are on their way between the two archives; "
        "finish it first (`basecone-migrate resume 1`)"))


def test_an_environment_whose_storage_has_no_driver_here_still_loads(
    cli: Cli, world_dir: Path
) -> None:
    world = sample_world(world_dir)
    world["environments"][2]["storage"] = "nosuchdriver://bucket/trial"  # TRY holds no documents
    cli.ok("load", write_world(world_dir, world))


def test_a_storage_no_driver_knows_is_a_usage_error(cli: Cli, world_dir: Path, state: State) -> None:
    world = sample_world(world_dir)
    world["environments"][0]["storage"] = "nosuchdriver://bucket/acme"
    before = state.take()
    result = cli("load", write_world(world_dir, world))
    assert (result.exit_code, result.error) == (2, (
        "Error: the archive nosuchdriver://bucket/acme names a storage no driver knows (Protocol "
        "not known: nosuchdriver)"))
    assert state.take() == before
