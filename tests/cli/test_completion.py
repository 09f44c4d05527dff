"""Shell completion, through the protocol a shell uses (the installed program, a real
process): commands, statuses, and administrations and migrations from the database."""

from __future__ import annotations

from typing import Any

from tests.conftest import SUE, Cli, make_offer, run_process


def _complete(env: dict[str, str], words: str) -> list[str]:
    parts = words.split(" ")
    done = run_process([], {**env, "COMP_WORDS": words, "COMP_CWORD": str(len(parts) - 1),
                            "_BASECONE_MIGRATE_COMPLETE": "complete_bash"})
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return done.stdout.split()


def test_the_bash_script_and_commands_and_statuses(env_vars: dict[str, str]) -> None:
    script = run_process(["--show-completion", "bash"], env_vars)
    assert script.returncode == 0 and "_BASECONE_MIGRATE_COMPLETE=complete_bash" in script.stdout
    assert _complete(env_vars, "basecone-migrate sta") == ["status"]
    assert _complete(env_vars, "basecone-migrate list --status ex") == ["expired"]


def test_administrations_and_migrations_complete_from_the_database(
        cli: Cli, loaded: Any, env_vars: dict[str, str]) -> None:
    offer = make_offer(cli, "1001")
    assert _complete({**env_vars, "BASECONE_MIGRATE_USER": SUE}, "basecone-migrate admin show 10") == [
        "1001", "1002"]
    assert _complete(env_vars, f"basecone-migrate status {offer['migration_id']}") == [
        str(offer["migration_id"])]


def test_completion_never_creates_the_database_nor_fails(env_vars: dict[str, str], tmp_path: Any) -> None:
    missing = tmp_path / "nothing-here.db"
    assert _complete({**env_vars, "BASECONE_MIGRATE_DB": str(missing)}, "basecone-migrate admin show ") == []
    assert not missing.exists()
