"""How `--help` reads: clean names, and an example under every command.

Typer 0.29 writes a required argument as ``{CODE}`` in the usage line and adds its type to
every argument (``CODE <str>``). `Command` writes them as a person reads a synopsis
(``redeem [OPTIONS] CODE``, ``status [OPTIONS] [MIGRATION]``, ``archive add [OPTIONS] ADMIN
FILE...``), and prints the command's examples after its options. `docs/reference.md` is
this help for every command (`python -m basecone_migrate.cli.reference`), checked by a test.
"""

from __future__ import annotations

import re
from typing import Any

from typer.core import TyperCommand

_TYPE_LABEL = re.compile(r"\s<[^>]*>$")

#: One or two examples per command, as they are typed (`tests/test_docs.py` wants one each).
EXAMPLES: dict[str, tuple[str, ...]] = {
    "config": ("basecone-migrate config --json",),
    "load": ("basecone-migrate load world.json",),
    "demo": ("basecone-migrate demo --documents 50",),
    "db upgrade": ("basecone-migrate --db postgresql://migrate@db.internal/basecone db upgrade",),
    "env list": ("basecone-migrate env list --json",),
    "admin list": ("basecone-migrate admin list --env ACME",),
    "admin show": ("basecone-migrate --as sue@acme.example admin show 1001",),
    "archive add": ("basecone-migrate archive add id:12 invoice-1.pdf invoice-2.pdf",),
    "archive list": ("basecone-migrate archive list id:12 --json",),
    "archive verify": ("basecone-migrate archive verify id:12",),
    "offer": ("basecone-migrate --as sue@acme.example offer 1001 1002 --to tina@book.example --accept-terms",
              "basecone-migrate --as sue@acme.example offer --from admins.txt --to tina@book.example "
              "--accept-terms"),
    "list": ("basecone-migrate --as sue@acme.example list --status offered",
             "basecone-migrate --as sue@acme.example list --search garage --json"),
    "revoke": ("basecone-migrate --as sue@acme.example revoke 42 --admin 1002",),
    "terms": ("basecone-migrate terms", "basecone-migrate terms --json"),
    "resend": ("basecone-migrate --as sue@acme.example resend 42",),
    "redeem": ("basecone-migrate --as tina@book.example redeem --accept-terms --link 1002=book-tw:7002",
               "basecone-migrate --as tina@book.example redeem --code-file code.txt --accept-terms "
               "--background"),
    "status": ("basecone-migrate status 42 --watch", "basecone-migrate --as tina@book.example status --json"),
    "resume": ("basecone-migrate --as tina@book.example resume 42",),
    "expire": ("basecone-migrate expire --quiet",),
    "worker": ("basecone-migrate worker --concurrency 4", "basecone-migrate worker --once"),
    "link": ("basecone-migrate --as tina@book.example link 7002 --system book-tw2 --code 7003",
             "basecone-migrate --as tina@book.example link --from relinks.csv --dry-run"),
    "audit": ("basecone-migrate audit --admin id:12", "basecone-migrate audit --since 2026-11-01 --json"),
    "cancel": ("basecone-migrate --as tina@book.example cancel 42 --reason \"wrong office\"",
               "basecone-migrate --as sue@acme.example cancel 42 --admin 1002 --json"),
    "pause": ("basecone-migrate --as tina@book.example pause 42",
              "basecone-migrate --as tina@book.example resume 42 --background"),
    "undo": ("basecone-migrate --as tina@book.example undo 42 --dry-run",
             "basecone-migrate --as tina@book.example undo 42 --admin 7003 --reason \"not our client\""),
    "charges": ("basecone-migrate charges --env BOOK", "basecone-migrate charges --json"),
    "access grant": ("basecone-migrate --as tina@book.example access grant 7003 --user uma@book.example",
                     ("basecone-migrate --as tina@book.example access grant --migration 42 "
                      "--user uma@book.example --user tim@book.example")),
    "access revoke": ("basecone-migrate --as tina@book.example access revoke 7003 --user uma@book.example",),
    "access list": ("basecone-migrate --as tina@book.example access list 7003",),
    "mail list": ("basecone-migrate mail list --state queued",),
    "mail show": ("basecone-migrate mail show 3", "basecone-migrate mail show 3 --json"),
    "mail flush": ("basecone-migrate mail flush --quiet",),
}


def _usage_piece(param: Any) -> str:
    name = str(param.metavar or param.name.upper()).strip("[]").removesuffix("...")
    if param.nargs != 1:
        name += "..."
    return name if param.required else f"[{name}]"


class Command(TyperCommand):
    """A Typer command whose help reads as a synopsis, with its examples at the end."""

    examples: tuple[str, ...] = ()

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        return pieces + [_usage_piece(p) for p in self.get_params(ctx) if p.param_type_name == "argument"]

    def format_options(self, ctx: Any, formatter: Any) -> None:
        sections: dict[str, list[tuple[str, str]]] = {"argument": [], "option": []}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None and param.param_type_name in sections:
                sections[param.param_type_name].append((_TYPE_LABEL.sub("", record[0]), record[1]))
        for title, kind in (("Arguments", "argument"), ("Options", "option")):
            if sections[kind]:
                with formatter.section(title):
                    formatter.write_dl(sections[kind])

    def format_epilog(self, ctx: Any, formatter: Any) -> None:
        super().format_epilog(ctx, formatter)
        if self.examples:
            formatter.write_paragraph()
            formatter.write_text("Example:" if len(self.examples) == 1 else "Examples:")
            for example in self.examples:  # never re-wrapped: a line to copy
                formatter.write(f"  {example}\n")


def command_class(path: str) -> type[Command]:
    """The Command class for one command, carrying its examples."""
    return type("Command", (Command,), {"examples": EXAMPLES.get(path, ())})
