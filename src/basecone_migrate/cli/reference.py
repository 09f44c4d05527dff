"""The command reference (docs/reference.md), written from the app itself: the `--help` of
every command, at 80 columns. `tests/test_docs.py` fails when the file is stale.

    python -m basecone_migrate.cli.reference > docs/reference.md
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

WIDTH = 80
HEADER = """# Command reference

Every command's `--help`, written from the program itself (`python -m
basecone_migrate.cli.reference > docs/reference.md`; a test fails when this file is stale).
What the commands promise (checks in order, `--json` fields, exit codes) is in
[cli.md](cli.md).
"""


def _commands(command: Any, ctx: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any, Any]]:
    yield " ".join(path), command, ctx
    for name in command.list_commands(ctx) if hasattr(command, "list_commands") else []:
        sub = command.get_command(ctx, name)
        if sub is None or sub.hidden:
            continue
        child = sub.make_context(name, [], parent=ctx, resilient_parsing=True,
                                 terminal_width=WIDTH, max_content_width=WIDTH)
        yield from _commands(sub, child, (*path, name))


def render() -> str:
    from typer.main import get_command

    from basecone_migrate.cli import app

    root = get_command(app)
    ctx = root.make_context("basecone-migrate", [], resilient_parsing=True, terminal_width=WIDTH,
                            max_content_width=WIDTH)
    parts = [HEADER]
    for path, command, context in _commands(root, ctx):
        title = f"basecone-migrate {path}".strip()
        parts.append(f"## {title}\n\n```text\n{command.get_help(context).rstrip()}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    import sys

    sys.stdout.write(render())
