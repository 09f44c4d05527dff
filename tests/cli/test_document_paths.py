"""A world file's documents stay under its folder, and `load` follows no symbolic link,
unless `load --documents-anywhere` says the file is trusted."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from basecone_migrate.files import Folder, OutsideFolder, SymbolicLink, inside, open_regular
from tests.conftest import Cli, State, write_world

PLACE = "environments[0].administrations[0].documents[3]"


def _with_document(world: dict[str, Any], path: str) -> dict[str, Any]:
    world["environments"][0]["administrations"][0]["documents"].append(path)
    return world


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "secret.pdf").write_bytes(b"another user's secret")
    return folder


@pytest.mark.parametrize("path", ["../elsewhere/secret.pdf", "../../../../../../../../etc/passwd",
                                  "/etc/hostname", "docs/../../elsewhere/secret.pdf"])
def test_a_document_outside_the_world_files_folder_is_refused_and_nothing_is_loaded(
    cli: Cli, world_dir: Path, world: dict[str, Any], state: State, outside: Path, path: str
) -> None:
    file = write_world(world_dir, _with_document(world, path))
    snapshot = state.take()
    result = cli("load", file)
    assert (result.exit_code, result.error) == (
        2, (f"Error: {file}: {PLACE}: document file {path!r} is outside the world file's folder "
            f"{world_dir}: move it there, or load with --documents-anywhere"))
    assert state.take() == snapshot


@pytest.mark.parametrize("case", ["link out", "link in", "folder link out", "folder link in"])
def test_symbolic_links_are_not_followed(
    cli: Cli, world_dir: Path, world: dict[str, Any], state: State, outside: Path, case: str
) -> None:
    """Neither a link as the document nor a linked folder on the way, wherever it points:
    inside the folder as well (a copy, not a link, is what the world file names)."""
    docs = world_dir / "docs"
    path, reason = {
        "link out": ("docs/secret.pdf", "is a symbolic link"),
        "link in": ("docs/again.pdf", "is a symbolic link"),
        "folder link out": ("linked/secret.pdf", "leads through the symbolic link linked"),
        "folder link in": ("docs/inner/invoice-1.pdf", "leads through the symbolic link docs/inner"),
    }[case]
    {"link out": lambda: (docs / "secret.pdf").symlink_to(outside / "secret.pdf"),
     "link in": lambda: (docs / "again.pdf").symlink_to(docs / "invoice-1.pdf"),
     "folder link out": lambda: (world_dir / "linked").symlink_to(outside),
     "folder link in": lambda: (docs / "inner").symlink_to(docs)}[case]()
    file = write_world(world_dir, _with_document(world, path))
    snapshot = state.take()
    result = cli("load", file)
    assert (result.exit_code, result.error) == (
        2, (f"Error: {file}: {PLACE}: document file {path!r} {reason}, and load follows none: copy "
            "the file into place, or load with --documents-anywhere"))
    assert state.take() == snapshot


def test_documents_anywhere_loads_paths_outside_and_through_links(
    cli: Cli, world_dir: Path, world: dict[str, Any], outside: Path, storage: Path
) -> None:
    (world_dir / "linked").symlink_to(outside)
    (world_dir / "docs" / "link.pdf").symlink_to(outside / "secret.pdf")
    (outside / "other.pdf").write_bytes(b"other")
    world["environments"][0]["administrations"][2]["documents"] = [
        "../elsewhere/secret.pdf", str(outside / "other.pdf"), "linked/secret.pdf", "docs/link.pdf"]
    report = cli.ok("load", write_world(world_dir, world), "--documents-anywhere", "--json").json()
    assert report["documents"] == {"added": 6, "already_present": 2}  # one secret, three names
    listed = cli.ok("archive", "list", "3", "--json").json()
    assert sorted((d["filename"], (storage / "ACME" / d["storage_key"]).read_bytes()) for d in listed) == [
        ("other.pdf", b"other"), ("secret.pdf", b"another user's secret")]


def test_paths_that_stay_inside_are_fine_however_they_are_written(
    cli: Cli, world_dir: Path, world: dict[str, Any]
) -> None:
    (world_dir / "docs" / "sub").mkdir()
    (world_dir / "docs" / "sub" / "deep.pdf").write_bytes(b"deep")
    world["environments"][0]["administrations"][2]["documents"] = [
        str(world_dir / "docs" / "garage.pdf"), "docs/sub/../sub/deep.pdf", "./docs//sub/deep.pdf"]
    report = cli.ok("load", write_world(world_dir, world), "--json").json()
    assert report["documents"] == {"added": 6, "already_present": 1}
    assert sorted(d["filename"] for d in cli.ok("archive", "list", "3", "--json").json()) == [
        "deep.pdf", "garage.pdf"]


def test_a_world_file_named_through_a_linked_folder_may_name_its_documents_that_way(
    cli: Cli, world_dir: Path, world: dict[str, Any], tmp_path: Path
) -> None:
    """The folder the world file is in may be reached through a link (as the operator named
    it); only what lies below it must be reached without one."""
    alias = tmp_path / "alias"
    alias.symlink_to(world_dir)
    world["environments"][0]["administrations"][2]["documents"] = [str(alias / "docs" / "garage.pdf")]
    report = cli.ok("load", alias / write_world(world_dir, world).name, "--json").json()
    assert report["documents"]["added"] == 5


# -- the check itself ----------------------------------------------------------------------------


def test_inside_resolves_dot_dot_by_the_name() -> None:
    assert inside("/w", "docs/a.pdf") == "docs/a.pdf"
    assert inside("/w", "/w/docs/../a.pdf") == "a.pdf"
    assert inside("/w", "../w/a.pdf") == "a.pdf"
    for outside_name in ("../a.pdf", "/etc/passwd", "docs/../../a.pdf", ".", "/w", "/wx/a.pdf"):
        assert inside("/w", outside_name) is None, outside_name


def test_open_within_a_folder_never_follows_a_link(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a.pdf").write_bytes(b"a")
    (tmp_path / "via").symlink_to(tmp_path / "real")
    (tmp_path / "real" / "b.pdf").symlink_to(tmp_path / "real" / "a.pdf")
    with Folder(tmp_path) as folder:
        with os.fdopen(folder.open("real/a.pdf"), "rb") as handle:
            assert handle.read() == b"a"
        with pytest.raises(SymbolicLink, match="leads through the symbolic link via"):
            folder.open("via/a.pdf")
        with pytest.raises(SymbolicLink, match="is a symbolic link"):
            folder.open(tmp_path / "real" / "b.pdf")
    with Folder(tmp_path / "real") as folder, pytest.raises(OutsideFolder):
        folder.open("../x.pdf")
    os.close(open_regular(tmp_path / "via" / "a.pdf"))  # outside a Folder, links are followed
