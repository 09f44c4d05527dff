"""The way back: `cancel` a move that has not completed, `undo` one that has."""

from typing import Annotated, Any

import typer

import basecone_migrate.cli.complete as complete
import basecone_migrate.cli.context as context
from basecone_migrate.cli.arguments import DryRunOption, MigrationArgument
from basecone_migrate.cli.context import AsOption, JsonOption
from basecone_migrate.cli.render import report

AdminsOption = Annotated[list[str] | None, typer.Option(
    "--admin", metavar="ADMIN", autocompletion=complete.administrations,
    help="Only this administration of the migration (id or the code it was offered under); "
         "repeatable. Default: all of them.")]
ReasonOption = Annotated[str | None, typer.Option(
    "--reason", metavar="TEXT", help="Why: in the audit and in the mail to both sides.")]


def register(app: typer.Typer) -> None:
    app.command("cancel")(cancel)
    app.command("undo")(undo)
    app.command("pause")(pause)


def cancel(ctx: typer.Context, migration: MigrationArgument, admins: AdminsOption = None,
           reason: ReasonOption = None, json: JsonOption = False, as_: AsOption = None) -> None:
    """Stop a move that has not completed and bring the administrations back.

    A Superuser of the sending or the receiving environment cancels what is scheduled, in
    progress, paused or failed (a transfer running elsewhere stops at its next document).
    Each administration goes back where it was before the redeem: the sending environment,
    its old connection, code and mail address, every document in the sending storage (a
    progress bar at a terminal). The fee is credited back; both sides get a mail.
    Interrupted: exit 5, run it again.
    """
    from basecone_migrate.cli.progress import progress_for
    from basecone_migrate.services.migrations import control
    from basecone_migrate.services.migrations.common import check_reason

    cli = context.get(ctx, json=json, as_=as_)
    check_reason(reason)
    bars, progress = progress_for(cli.out)
    with bars:
        outcome = control.cancel(cli.runtime, migration, admins or [], reason, progress=progress)
    _done(cli, outcome, "cancelled")


def pause(ctx: typer.Context, migration: MigrationArgument, json: JsonOption = False,
          as_: AsOption = None) -> None:
    """Pause a migration's scheduled and in-progress transfers.

    A Superuser of the receiving environment pauses them: workers (or an inline transfer)
    stop at the next document, nothing is lost or doubled, and no worker starts them again
    until `basecone-migrate resume MIGRATION` (here, or with --background on the workers).
    """
    from basecone_migrate.services.migrations import control

    cli = context.get(ctx, json=json, as_=as_)
    _done(cli, control.pause(cli.runtime, migration), "paused")


def undo(ctx: typer.Context, migration: MigrationArgument, admins: AdminsOption = None,
         reason: ReasonOption = None, dry_run: DryRunOption = False,
         background: Annotated[bool, typer.Option(
             "--background", help="Queue the return for `basecone-migrate worker` and return at "
                                  "once (PostgreSQL only).")] = False,
         json: JsonOption = False, as_: AsOption = None) -> None:
    """Take back a completed move, within BASECONE_MIGRATE_UNDO_DAYS days (default 14).

    A Superuser of the environment that holds the administrations returns them to the
    sending environment: old connection, code and mail address, every document they have
    now (also those added since, with a progress bar at a terminal), the users' access and
    workflows they had there; the fee is credited back. Refused when the window has passed, the old code is taken, or an
    administration is in another migration. Interrupted: exit 5, run it again.
    """
    from basecone_migrate.cli.progress import progress_for
    from basecone_migrate.services.migrations import control
    from basecone_migrate.services.migrations.common import check_reason

    cli = context.get(ctx, json=json, as_=as_)
    check_reason(reason)
    bars, progress = progress_for(cli.out)
    with bars:
        outcome = control.undo(cli.runtime, migration, admins or [], reason, dry_run=dry_run,
                               background=background, progress=progress)
    _done(cli, outcome, "would be undone" if dry_run else "undone")


def _done(cli: context.CLI, outcome: Any, what: str) -> None:
    report(cli, outcome)
    payload = outcome.payload

    def render() -> None:
        from basecone_migrate.cli.output import Column

        cli.out.line(f"Migration {payload['migration_id']}: {what}")  # a title as wide as it is
        cli.out.table([Column("id", "right"), Column("status")],
                      [(i["administration_id"], i["status"]) for i in payload["items"]])

    cli.out.emit(payload, render)
