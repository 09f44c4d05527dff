"""Text from a world file or an option reaches the terminal as text: never as Rich markup,
never as escape sequences, in plain output (a pipe) and at a terminal (Rich) alike.

The world's names hold Rich markup (a hyperlink, blinking red), OSC 8 hyperlinks, a CSI
colour, an OSC 0 window title, BEL and a C1 control (U+009B, the 8-bit CSI). Every command
that shows them prints each control character as its Python escape (``\\x1b``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SUE, TINA, Cli, make_offer, write_world
from tests.terminal import at_terminal as terminal_bytes

HOSTILE = ("[link=https://evil.example]x[/link] [blink red]B\x1b]8;;https://evil.example\x1b\\L"
           "\x1b]8;;\x1b\\ \x1b[31mR\x1b[0m \x1b]0;T\x07 \x07\x9b31m :smile:")
#: How each of those shows: the markup as written, every control character escaped.
SHOWN = ("[link=https://evil.example]x[/link] [blink red]B\\x1b]8;;https://evil.example\\x1b\\L"
         "\\x1b]8;;\\x1b\\ \\x1b[31mR\\x1b[0m \\x1b]0;T\\x07 \\x07\\x9b31m :smile:")
#: What must never reach a terminal from the world's text.
RAW = ("\x1b]", "\x1b\\", "\x1b[31m", "\x07", "\x9b", "\u26a0", "\U0001f604")


def hostile_world(world: dict[str, Any]) -> dict[str, Any]:
    acme, book = world["environments"][0], world["environments"][1]
    acme["name"] = f"Acme {HOSTILE}"
    acme["administrations"][0]["name"] = f"Bakkerij {HOSTILE}"
    for system in (acme["accounting_systems"][0], book["accounting_systems"][0]):
        system["catalogue"] = [e for e in system["catalogue"] if e["code"] != "7001"]
        for entry in system["catalogue"]:
            if entry["code"] == "1001":
                entry["name"] = f"Bakkerij {HOSTILE}"
    return world


def _moved_and_rejected(cli: Cli, world_dir: Path, world: dict[str, Any]) -> dict[str, Any]:
    """The hostile world loaded; 1001 moved to BOOK, 1002 rejected with a hostile reason;
    the world loaded again (a warning names the moved administration)."""
    path = write_world(world_dir, hostile_world(world))
    cli.ok("load", path)
    moved = make_offer(cli, "1001")
    cli.ok("--as", TINA, "redeem", moved["transfercode"], "--accept-terms", "--json")
    rejected = make_offer(cli, "1002", extra=("--confirm-checklist",))
    cli.ok("--as", TINA, "redeem", rejected["transfercode"], "--reject", "--reason", f"No {HOSTILE}")
    return {"world": path, "moved": moved["migration_id"], "rejected": rejected["migration_id"]}


def _commands(setup: dict[str, Any]) -> dict[str, list[str]]:
    return {
        "admin list": ["--as", TINA, "admin", "list"],
        "env list": ["env", "list"],
        "list": ["--as", SUE, "list"],
        "status": ["status", str(setup["moved"])],
        "audit": ["audit"],
        "warning": ["load", str(setup["world"])],
    }


#: How the audit's details show a text: as a JSON string (piped, and quoted in key=value),
#: every character a terminal acts on as a \uXXXX escape.
SHOWN_JSON = ("No [link=https://evil.example]x[/link] [blink red]B\\u001b]8;;https://evil.example"
              "\\u001b\\\\L\\u001b]8;;\\u001b\\\\ \\u001b[31mR\\u001b[0m \\u001b]0;T\\u0007 "
              "\\u0007\\u009b31m :smile:")


def _assert_shown(output: str, what: str, reason: bool = False) -> None:
    for raw in RAW:
        assert raw not in output, f"{what}: {raw!r} reached the terminal in {output!r}"
    if reason:  # the audit: the --reason in its details, as JSON text
        assert SHOWN_JSON in output, f"{what}: {output!r}"
    else:
        assert SHOWN in output, f"{what}: {output!r}"


def test_plain_output_shows_markup_and_control_characters_as_text(
    cli: Cli, world_dir: Path, world: dict[str, Any]
) -> None:
    setup = _moved_and_rejected(cli, world_dir, world)
    for what, args in _commands(setup).items():
        result = cli.ok(*args)
        output = result.stderr if what == "warning" else result.stdout
        assert "\x1b" not in result.stdout + result.stderr, what  # plain: no escape at all
        _assert_shown(output, what, reason=what == "audit")
    warning = cli.ok("load", setup["world"]).stderr
    [line] = [line for line in warning.splitlines() if "was moved to BOOK" in line]
    assert line.startswith("Warning: environments[0].administrations[0]: ACME/1001 Bakkerij ")
    # --json is untouched: JSON escapes control characters itself.
    [admin] = [a for a in cli.ok("admin", "list", "--json").json() if a["code"] == "1001"]
    assert admin["name"] == f"Bakkerij {HOSTILE}"


def test_lines_and_notes_show_control_characters_escaped(cli: Cli, world_dir: Path,
                                                         world: dict[str, Any]) -> None:
    """A line of the tool's own (`offer`'s summary), an `Error:` line and a note (a transfer's
    progress off a terminal) carry the world's text escaped."""
    cli.ok("load", write_world(world_dir, hostile_world(world)))
    offered = cli.ok("--as", SUE, "offer", "1001", "--to", TINA, "--accept-terms")
    code = offered.stdout.split("Transfercode: ")[1].split()[0]
    again = cli("--as", SUE, "offer", "1001", "--to", TINA, "--accept-terms")  # an Error: line
    assert again.exit_code == 1 and f"Bakkerij {SHOWN}" in again.error
    _assert_shown(again.stderr, "an Error: line")
    redeemed = cli.ok("--as", TINA, "redeem", code, "--accept-terms")
    for output, what in ((offered.stdout, "offer's line"), (redeemed.stderr, "redeem's notes")):
        assert "\x1b" not in output, what
        _assert_shown(output, what)
    assert f"offered 1001 Bakkerij {SHOWN} to {TINA}" in offered.stdout
    assert f"Moving 1001 Bakkerij {SHOWN}: 3 documents" in redeemed.stderr


def at_terminal(args: list[str], env: dict[str, str]) -> str:
    """The program's output in a pseudo-terminal, as the terminal receives it (every byte,
    Rich's own styling included), 1000 columns wide so that no cell wraps."""
    raw = terminal_bytes(args, env, columns=1000, term="xterm-256color")
    return raw.decode("utf-8", "replace").replace("\r\n", "\n")


@pytest.mark.slow
def test_at_a_terminal_rich_shows_markup_and_control_characters_as_text(
    env_vars: dict[str, str], world_dir: Path, world: dict[str, Any]
) -> None:
    setup = _moved_and_rejected(Cli(env_vars), world_dir, world)
    for what, args in _commands(setup).items():
        output = at_terminal(args, env_vars)
        assert "\x1b[1m" in output or what == "warning", f"{what}: not Rich at a terminal: {output!r}"
        _assert_shown(output, what, reason=what == "audit")
        # Rich's own styling is all that is left: plain SGR sequences, nothing else.
        leftover = output
        for sgr in ("\x1b[0m", "\x1b[1m", "\x1b[3m", "\x1b[2m", "\x1b[22m", "\x1b[23m", "\x1b[?25l",
                    "\x1b[?25h"):
            leftover = leftover.replace(sgr, "")
        assert "\x1b" not in leftover.replace("\\x1b", ""), f"{what}: {leftover!r}"


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_progress_bars_show_a_hostile_name_as_text(
    env_vars: dict[str, str], world_dir: Path, world: dict[str, Any], backend: str
) -> None:
    """The live display of a redeem at a terminal: the administration's name in its bar is
    text, never markup or escape sequences."""
    cli = Cli(env_vars)
    cli.ok("load", write_world(world_dir, hostile_world(world)))
    code = cli.ok("--as", SUE, "offer", "1001", "--to", TINA, "--accept-terms", "--json").json()[
        "transfercode"]
    output = at_terminal(["--as", TINA, "redeem", code, "--accept-terms"], env_vars)
    assert f"1001 Bakkerij {SHOWN}" in output
    # Rich colours its own columns (a red "?" speed at first): only the name's are checked.
    for raw in ("\x1b]", "\x1b\\", "\x1b[31mR", "\x07", "\x9b", "\U0001f604"):
        assert raw not in output, f"{raw!r} reached the terminal in {output!r}"
