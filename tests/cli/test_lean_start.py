"""A command pays only for what it uses: read commands never load Alembic, the mail stack,
the transfer engine, object storage, keyring or pydantic (each is tens of milliseconds per
run; pydantic is what Typer would build its value adapters with, see cli/coercion.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import SUE, Cli, make_offer

#: Modules no read command may import.
HEAVY = ("alembic", "mako", "yagmail", "smtplib", "keyring", "fsspec", "email_validator", "pydantic",
         "sqlalchemy.orm", "basecone_migrate.db.models",
         "basecone_migrate.mail", "basecone_migrate.services.transfer",
         "basecone_migrate.services.migrations.receiving")

PROBE = """
import json, sys
from basecone_migrate.cli import main
code = main(sys.argv[2:])
with open(sys.argv[1], "w") as out:
    json.dump({"code": code, "modules": sorted(sys.modules)}, out)
"""

READS = [
    ["env", "list"], ["admin", "list"], ["admin", "show", "1001"], ["archive", "list", "1001"],
    ["--as", SUE, "list"], ["--as", SUE, "list", "--search", "garage"], ["status"], ["status", "1"],
    ["audit"], ["--as", SUE, "access", "list", "1001"], ["terms"],
]


def _modules(args: list[str], env: dict[str, str], tmp_path: Any) -> dict[str, Any]:
    report = tmp_path / "modules.json"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("BASECONE_MIGRATE_")}
    full_env.update(env)
    done = subprocess.run([sys.executable, "-c", PROBE, str(report), *args, "--json"], env=full_env,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(report.read_text())
    return result


@pytest.mark.parametrize("args", READS, ids=" ".join)
def test_read_commands_load_nothing_they_do_not_use(
    cli: Cli, loaded: Any, env_vars: dict[str, str], backend: str, tmp_path: Any, args: list[str]
) -> None:
    make_offer(cli, "1001")
    result = _modules(args, env_vars, tmp_path)
    assert result["code"] == 0
    loaded_heavy = [m for m in result["modules"] if m.split(".")[0] in HEAVY or m in HEAVY]
    assert loaded_heavy == []
    if backend == "sqlite":  # PostgreSQL's dialect is for PostgreSQL
        assert not [m for m in result["modules"] if m.startswith(("sqlalchemy.dialects.postgresql",
                                                                   "psycopg"))]


def test_the_probe_sees_what_a_writing_command_loads(
    cli: Cli, loaded: Any, env_vars: dict[str, str], tmp_path: Any
) -> None:
    """The check above can fail: a command that mails loads the mail stack."""
    result = _modules(["--as", SUE, "offer", "1001", "--to", "tina@book.example", "--accept-terms"],
                      env_vars, tmp_path)
    assert result["code"] == 0
    assert "basecone_migrate.mail" in result["modules"]
