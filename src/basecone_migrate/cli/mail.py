"""The outbox: `mail list` and `mail flush`."""


from typing import TYPE_CHECKING, Annotated

import typer

from basecone_migrate.cli import context
from basecone_migrate.cli.context import AsOption, JsonOption

if TYPE_CHECKING:
    from basecone_migrate.mail import Delivery

mail_app = typer.Typer(help="Mails waiting in the outbox, and their delivery.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(mail_app, name="mail")


@mail_app.command("list")
def mail_list(
    ctx: typer.Context,
    state: Annotated[str | None, typer.Option(metavar="STATE", help="queued, sending or sent.")] = None,
    limit: Annotated[int, typer.Option(metavar="N", min=1, max=10_000, help="Most recent first.")] = 100,
    json: JsonOption = False,
    as_: AsOption = None,
) -> None:
    """The outbox, most recent first.

    Recipients, subject, state, attempts, last error; never a body.
    """
    from basecone_migrate.cli.output import Column, when
    from basecone_migrate.mail import mail_rows

    cli = context.get(ctx, json=json, as_=as_)
    with cli.runtime.reading() as db:
        rows = mail_rows(db, state, limit)
    cli.out.emit(rows, lambda: cli.out.table(
        [Column("id", "right"), Column("created (UTC)"), Column("event", below=True), Column("to"),
         Column("cc"), Column("subject", wrap=True), Column("last error", wrap=True, below=True),
         Column("state"), Column("tries", "right")],
        [(r["id"], when(r["created_at"]), r["event"], r["to"], r["cc"], r["subject"],
          r["last_error"], r["state"], r["attempts"]) for r in rows],
        title="Outbox", empty="the outbox is empty"))


@mail_app.command("flush")
def mail_flush(ctx: typer.Context, json: JsonOption = False, as_: AsOption = None) -> None:
    """Deliver every queued mail, each once.

    What cannot be delivered stays queued, and the exit status is 5 (for cron to notice).
    """
    from basecone_migrate.errors import Undelivered
    from basecone_migrate.mail import Postman, check_settings

    cli = context.get(ctx, json=json, as_=as_)
    check_settings(cli.settings)
    delivery = Postman(cli.runtime).deliver()
    payload = {"sent": delivery.sent, "failed": {str(k): v for k, v in delivery.failed.items()},
               "written": [str(p) for p in delivery.written], "trouble": delivery.trouble}
    cli.out.emit(payload, lambda: render_flush(cli, delivery))
    if delivery.failed or delivery.trouble:
        reasons = sorted(set(delivery.failed.values()) | ({delivery.trouble} if delivery.trouble else set()))
        count = f"{len(delivery.failed)} mail(s) stay" if delivery.failed else "mail stays"
        raise Undelivered(f"{count} queued: {'; '.join(reasons)} (`basecone-migrate mail list` "
                          "shows each; flush again once that is fixed)")


def render_flush(cli: context.CLI, delivery: "Delivery") -> None:
    """What became of the queued mails: sent over SMTP, or, without an SMTP host, written to
    files (never called sent: nobody received them yet)."""
    for path in delivery.written:
        cli.out.line(f"Written to {path}")
    queued = f"{len(delivery.failed)} still queued."
    if delivery.written:
        cli.out.line(f"Wrote {len(delivery.written)} mail(s) to files, as no SMTP host is set "
                     f"(BASECONE_MIGRATE_SMTP_HOST); {queued}")
    else:
        cli.out.line(f"Sent {len(delivery.sent)} mail(s); {queued}")
