"""`config` shows where each setting came from; `demo` works in a folder of its own."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import MARKER, Cli, run_process, snapshot_files


def test_config_shows_each_source(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('storage = "/srv/archive"\nsmtp_host = "mail.example.org"\n')
    cli = Cli({"BASECONE_MIGRATE_CONFIG": str(config), "BASECONE_MIGRATE_STORAGE": "/env/archive",
               "BASECONE_MIGRATE_SMTP_PASSWORD": "hunter2", "BASECONE_MIGRATE_SMTP_USER": "mailer"})

    result = cli.ok("--db", str(tmp_path / "x.db"), "config", "--json")

    shown = {row["setting"]: (row["value"], row["source"]) for row in result.json()["settings"]}
    assert shown["db"] == (f"sqlite:///{tmp_path / 'x.db'}", "option --db")
    assert shown["storage"] == ("/env/archive", "env BASECONE_MIGRATE_STORAGE")
    assert shown["smtp_host"] == ("mail.example.org", f"config {config}")
    assert shown["smtp_password"] == ("********", "env BASECONE_MIGRATE_SMTP_PASSWORD")
    assert shown["fee"] == ("EUR 0.00", "default")
    assert result.json()["config_file"] == str(config)
    assert "hunter2" not in result.stdout
    assert not (tmp_path / "x.db").exists()  # config never opens the database


def test_config_file_errors_are_one_line(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("smtp_port = [1]\n")
    result = Cli({"BASECONE_MIGRATE_CONFIG": str(config)})("config")
    assert (result.exit_code, result.error) == (
        2, f"Error: config file {config}: smtp_port must be a string or a number")


def test_demo_runs_a_whole_migration_in_its_own_workspace(
    tmp_path: Path, isolated_environment: Path
) -> None:
    workspace = tmp_path / "ws"
    result = Cli({}).ok("demo", "--documents", "40", "--workspace", workspace, "--json").json()

    assert result["workspace"] == str(workspace)
    assert [e["code"] for e in result["environments"]] == ["ACME", "BOOK", "TRY"]
    assert [e["plan"] for e in result["environments"]] == ["premium", "premium", "trial"]
    assert result["load"]["documents"]["added"] == 40
    assert [a["code"] for a in result["offer"]["administrations"]] == ["1001", "1002"]
    assert [(i["code"], i["accounting_system"], i["status"]) for i in result["redeem"]["items"]] == [
        ("1001", "book-tw", "completed"), ("B-1002", "book-tw", "completed")]
    assert result["status"]["status"] == "completed"
    documents = [p for p in snapshot_files(workspace / "archive") if not p.endswith(MARKER)]
    assert len(documents) == 40  # moved, none lost or doubled
    assert sorted(p.name for p in (workspace / "outbox").iterdir()) == [
        MARKER, "000001-offer.eml", "000002-redeem.eml", "000003-completed.eml"]
    assert snapshot_files(isolated_environment / "data") == {}  # the user's data is untouched


def test_demo_refuses_a_folder_in_use(tmp_path: Path) -> None:
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "keep.txt").write_text("mine")
    result = Cli({})("demo", "--workspace", tmp_path / "ws")
    assert (result.exit_code, result.error) == (
        2, f"Error: {tmp_path / 'ws'} is not empty: give --workspace a new or empty folder")


def test_demo_from_the_installed_program(tmp_path: Path) -> None:
    result = run_process(["demo", "--documents", "20", "--workspace", str(tmp_path / "ws")],
                         {"XDG_DATA_HOME": str(tmp_path / "data")})
    assert result.returncode == 0, result.stderr
    assert "Transfercode: " in result.stdout
    assert "Bakkerij Jansen  completed  book-tw" in result.stdout
    assert "Moving 1001 Bakkerij Jansen" in result.stderr  # progress as plain lines in a pipe
