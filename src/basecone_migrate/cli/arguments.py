"""Arguments and options that several command modules share."""

from typing import Annotated

import typer

import basecone_migrate.cli.complete as complete

DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Run every check and say what would happen; change nothing.")
]
MigrationArgument = Annotated[int, typer.Argument(metavar="MIGRATION", help="Migration id.",
                                                  autocompletion=complete.migrations)]
BackgroundOption = Annotated[bool, typer.Option(
    "--background", help="Queue the transfers for `basecone-migrate worker` and return at once "
                         "(PostgreSQL only).")]
