"""Archives are their owner's alone (folders 0700, documents 0600), and the outbox is never
written through a symbolic link: the mail stays queued, the link's target untouched."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from basecone_migrate.storage import Archive, private_folders
from tests.conftest import SUE, TINA, Cli, make_offer, write_world


@pytest.fixture(autouse=True)
def open_umask() -> Iterator[None]:
    """The usual umask (022): without the tool's own modes, folders would be 0755 and files
    0644."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def modes(root: Path) -> dict[str, str]:
    """Every folder and file under ``root`` (``root`` included) with its permission bits."""
    found = {".": oct(stat.S_IMODE(root.stat().st_mode))}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = oct(stat.S_IMODE(path.lstat().st_mode))
    return found


def assert_private(root: Path) -> dict[str, str]:
    found = modes(root)
    wrong = {name: mode for name, mode in found.items()
             if mode != ("0o700" if (root / name).is_dir() else "0o600")}
    assert not wrong, f"not private under {root}: {wrong}"
    return found


def test_roots_folders_and_documents_are_private_after_load_add_and_a_move(
    env_vars: dict[str, str], world_dir: Path, world: dict[str, Any], tmp_path: Path
) -> None:
    root = tmp_path / "new" / "archive"  # made by the tool, with the folder above it
    cli = Cli({**env_vars, "BASECONE_MIGRATE_STORAGE": str(root)})
    cli.ok("load", write_world(world_dir, world))
    loaded = assert_private(tmp_path / "new")
    assert {"archive", "archive/ACME", "archive/ACME/1", "archive/ACME/2"} <= set(loaded)
    assert len([name for name in loaded if name.startswith("archive/ACME/1/")]) == 3

    (tmp_path / "scan.pdf").write_bytes(b"%PDF scanned invoice")
    cli.ok("archive", "add", "3", tmp_path / "scan.pdf")
    assert "archive/ACME/3" in assert_private(tmp_path / "new")

    code = make_offer(cli, "1001")["transfercode"]
    [item] = cli.ok("--as", TINA, "redeem", code, "--accept-terms", "--json").json()["items"]
    assert item["status"] == "completed"
    moved = assert_private(tmp_path / "new")
    assert len([name for name in moved if name.startswith("archive/BOOK/1/")]) == 3
    assert "archive/ACME/1" not in moved


@pytest.mark.parametrize("backend", ["sqlite"])
def test_documents_streamed_to_another_filesystem_are_private(
    env_vars: dict[str, str], world_dir: Path, world: dict[str, Any], shm: Path, storage: Path,
    backend: str
) -> None:
    world["environments"][1]["storage"] = str(shm / "book")
    cli = Cli(env_vars)
    cli.ok("load", write_world(world_dir, world))
    code = make_offer(cli, "1001")["transfercode"]
    [item] = cli.ok("--as", TINA, "redeem", code, "--accept-terms", "--json").json()["items"]
    assert (item["status"], item["documents"]) == ("completed", 3)
    copied = assert_private(shm)
    assert len([name for name in copied if name.startswith("book/1/")]) == 3


def test_private_folders_makes_every_missing_folder_private_even_with_umask_0(tmp_path: Path) -> None:
    os.umask(0)
    (tmp_path / "mine").mkdir(0o755)
    private_folders(str(tmp_path / "mine" / "a" / "b" / "c"))
    private_folders(str(tmp_path / "mine" / "a" / "b" / "c"))  # already there: fine
    assert modes(tmp_path / "mine") == {".": "0o755", "a": "0o700", "a/b": "0o700", "a/b/c": "0o700"}
    archive = Archive(str(tmp_path / "mine" / "root"))
    import io

    stored = archive.write(io.BytesIO(b"invoice"), 7)
    assert modes(tmp_path / "mine" / "root") == {".": "0o700", "7": "0o700", stored.key: "0o600"}


# -- the outbox ----------------------------------------------------------------------------------


def _outbox(cli: Cli) -> Path:
    """The outbox folder, as the first mail written there says."""
    [mail] = cli.ok("mail", "list", "--json").json()
    via = mail["delivered_via"]
    assert via.startswith("file "), via
    return Path(via.removeprefix("file ")).parent


def test_a_link_planted_at_a_mails_name_is_not_followed_and_the_mail_stays_queued(
    cli: Cli, loaded: Any, tmp_path: Path
) -> None:
    offer = make_offer(cli, "1001")
    outbox = _outbox(cli)
    target = tmp_path / "target.txt"
    target.write_bytes(b"untouched")
    (outbox / "000002-revoke.eml").symlink_to(target)

    result = cli.ok("--as", SUE, "revoke", str(offer["migration_id"]))
    why = (f"UnsafeOutbox: {outbox / '000002-revoke.eml'} is a symbolic link, and mail is never "
           "written through one: remove it, then run `basecone-migrate mail flush`")
    warning = result.stderr.splitlines()[-1]
    assert warning.startswith("Warning: ") and f"({why})" in warning
    assert target.read_bytes() == b"untouched"
    revoke = next(m for m in cli.ok("mail", "list", "--json").json() if m["id"] == 2)
    assert (revoke["state"], revoke["attempts"], revoke["last_error"]) == ("queued", 1, why)

    (outbox / "000002-revoke.eml").unlink()
    assert cli.ok("mail", "flush", "--json").json()["sent"] == [2]
    written = outbox / "000002-revoke.eml"
    assert not written.is_symlink() and b"Migration offer withdrawn" in written.read_bytes()
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert target.read_bytes() == b"untouched"


def test_an_outbox_folder_that_is_a_link_is_refused_and_the_mail_stays_queued(
    cli: Cli, loaded: Any, tmp_path: Path
) -> None:
    offer = make_offer(cli, "1001")
    outbox = _outbox(cli)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    outbox.rename(tmp_path / "old-outbox")
    outbox.symlink_to(elsewhere)

    result = cli.ok("--as", SUE, "revoke", str(offer["migration_id"]))
    why = (f"UnsafeOutbox: the outbox {outbox} is a symbolic link, and mail is never written "
           "through one: make it a folder")
    warning = result.stderr.splitlines()[-1]
    assert warning.startswith("Warning: ") and f"({why})" in warning
    assert list(elsewhere.iterdir()) == []
    flushed = cli("mail", "flush")
    assert flushed.exit_code == 5 and list(elsewhere.iterdir()) == []
    revoke = next(m for m in cli.ok("mail", "list", "--json").json() if m["id"] == 2)
    assert (revoke["state"], revoke["attempts"], revoke["last_error"]) == ("queued", 2, why)

    outbox.unlink()
    assert cli.ok("mail", "flush", "--json").json()["sent"] == [2]
    assert stat.S_IMODE(outbox.stat().st_mode) == 0o700
