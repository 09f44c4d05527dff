"""The docs cannot drift from the commands: every command has help and is in docs/cli.md."""

from __future__ import annotations

from pathlib import Path

from typer.main import get_command

from basecone_migrate.cli import app

DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def _commands(command, prefix=()):  # noqa: ANN001, ANN202 - click objects
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        path = (*prefix, name)
        if getattr(sub, "commands", None):
            yield from _commands(sub, path)
        else:
            yield " ".join(path), sub


def test_every_command_has_help_and_is_documented() -> None:
    text = DOCS.read_text()
    commands = dict(_commands(get_command(app)))
    assert len(commands) >= 25
    for path, command in commands.items():
        assert (command.help or "").strip(), f"{path} has no help"
        assert f"`{path}" in text or f"\n{path} " in text, (
            f"docs/cli.md does not mention `{path}`")
        for param in command.params:
            assert param.name == "ctx" or getattr(param, "help", None) or param.param_type_name == "argument", (
                f"{path} {param.name} has no help")


REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "reference.md"


def test_the_command_reference_is_written_from_the_app_and_current() -> None:
    from basecone_migrate.cli.reference import render

    assert REFERENCE.read_text() == render(), (
        "docs/reference.md is stale: python -m basecone_migrate.cli.reference > docs/reference.md")


def test_every_command_has_an_example_and_clean_names_in_its_help() -> None:
    from basecone_migrate.cli.help import EXAMPLES
    from basecone_migrate.cli.reference import render

    commands = dict(_commands(get_command(app)))
    assert set(commands) == set(EXAMPLES)
    for path, examples in EXAMPLES.items():
        assert examples and all(e.startswith("basecone-migrate ") for e in examples), path
        assert f" {path.split()[-1]}" in examples[0], path
    text = render()
    assert "{" not in "".join(line for line in text.splitlines() if line.startswith("Usage:"))
    assert " <str>" not in text and "<int" not in text and "<list" not in text and "[[" not in text
