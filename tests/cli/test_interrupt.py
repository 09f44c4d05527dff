"""Ctrl-C: a real process sent SIGINT, at a question or in the middle of a transfer, stops
with exit 130 and one `Error: interrupted` line; what it left is finished by running again."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SUE, TINA, Cli, make_offer, write_world
from tests.integration.test_transfer import (
    assert_moved_intact,
    env_process,
    item_row,
    many_documents,
    wait_until_copying,
)
from tests.terminal import Terminal


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_ctrl_c_at_a_question_exits_130_and_changes_nothing(
        env_vars: dict[str, str], loaded: dict[str, Any], backend: str) -> None:
    terminal = Terminal(["--as", SUE, "offer", "1001", "--to", TINA], env_vars)
    # Ctrl-C once the program waits at the question, as a person's would come: sent the moment
    # the question is written, it can land just before Python's readline starts waiting,
    # which then never sees it (a race in CPython's readline, not in the program).
    terminal.waits_with("Do you accept the terms")
    terminal.process.send_signal(signal.SIGINT)
    assert terminal.finish() == 130
    assert terminal.seen.rstrip().endswith("Error: interrupted")
    assert "Traceback" not in terminal.seen
    assert Cli(env_vars).ok("--as", SUE, "list", "--json").json()["offered"] == []


@pytest.mark.slow
def test_ctrl_c_during_a_command_exits_130(tmp_path: Path) -> None:
    workspace = tmp_path / "demo"
    demo = subprocess.Popen([sys.executable, "-m", "basecone_migrate", "demo", "--documents", "50000",
                             "--workspace", str(workspace)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert demo.stdout is not None
    while "1. Load a world" not in demo.stdout.readline():  # loading 50,000 documents now
        assert demo.poll() is None
    demo.send_signal(signal.SIGINT)
    _, err = demo.communicate(timeout=120)
    assert demo.returncode == 130
    assert err.splitlines()[-1] == "Error: interrupted" and "Traceback" not in err


@pytest.mark.slow
def test_ctrl_c_during_a_transfer_exits_5_and_resume_finishes_it(
        env_vars: dict[str, str], world_dir: Path, storage: Path, shm: Path, db_url: str) -> None:
    cli = Cli(env_vars)
    world = many_documents(world_dir, 6000)
    world["environments"][1]["storage"] = str(shm)
    cli.ok("load", write_world(world_dir, world))
    before = cli.ok("archive", "list", "1", "--json").json()
    code = make_offer(cli, "1001")["transfercode"]

    redeem = env_process(env_vars, "--as", TINA, "redeem", code, "--accept-terms")
    wait_until_copying(redeem, db_url)
    redeem.send_signal(signal.SIGINT)
    _, err = redeem.communicate(timeout=60)
    assert redeem.returncode == 5  # unfinished work, as the exit table says: resume finishes it
    assert err.splitlines()[-1] == (
        "Error: transfer of migration 1 interrupted: run `basecone-migrate resume 1` to finish it")

    item, done = item_row(db_url)
    assert item.status == "in_progress" and 0 < len(done) < len(before), "interrupted mid-way"
    assert cli.ok("--as", TINA, "resume", "1", "--json").json()["status"] == "completed"
    assert_moved_intact(cli, before, shm, storage / "ACME")
