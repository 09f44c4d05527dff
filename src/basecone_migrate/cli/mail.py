"""The outbox: `mail list`, `mail show` and `mail flush`."""


from typing import TYPE_CHECKING, Annotated, Any

import typer

import basecone_migrate.cli.context as context
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
    from basecone_migrate.services import outbox

    cli = context.get(ctx, json=json, as_=as_)
    rows = outbox.mails(cli.runtime, state, limit)
    cli.out.emit(rows, lambda: cli.out.table(
        [Column("id", "right"), Column("created (UTC)"), Column("event", below=True), Column("to"),
         Column("cc"), Column("subject", wrap=True), Column("last error", wrap=True, below=True),
         Column("state"), Column("tries", "right")],
        [(r["id"], when(r["created_at"]), r["event"], r["to"], r["cc"], r["subject"],
          r["last_error"], r["state"], r["attempts"]) for r in rows],
        title="Outbox", empty="the outbox is empty"))


@mail_app.command("show")
def mail_show(
    ctx: typer.Context,
    mail_id: Annotated[int, typer.Argument(metavar="ID", help="The mail's id (see `mail list`).")],
    json: JsonOption = False,
    as_: AsOption = None,
) -> None:
    """Print one mail as its recipients read it.

    Its headers and plain text. A mail that carried a transfercode has no text once it was
    delivered: only its recipients keep the code.
    """
    from basecone_migrate.services import outbox

    cli = context.get(ctx, json=json, as_=as_)
    mail = outbox.mail(cli.runtime, mail_id)
    cli.out.emit(mail, lambda: render_mail(cli, mail))


def render_mail(cli: context.CLI, mail: dict[str, Any]) -> None:
    from basecone_migrate.cli.output import when

    state = mail["state"]
    if mail["sent_at"] is not None and state == "sent":
        state += f" {when(mail['sent_at'])} UTC via {mail['delivered_via']}"
    elif mail["last_error"]:
        state += f" ({mail['attempts']} attempt(s); last error: {mail['last_error']})"
    about = f", migration {mail['migration_id']}" if mail["migration_id"] is not None else ""
    head = [("From", mail["from"]), ("To", ", ".join(mail["to"])), ("Cc", ", ".join(mail["cc"])),
            ("Subject", mail["subject"]), ("Date", f"{when(mail['created_at'])} UTC"),
            ("State", state), ("Mail", f"{mail['id']} ({mail['event']}{about})")]
    for name, value in head:
        if value:
            cli.out.line(f"{name + ':':<9}{value}")
    cli.out.line("")
    if mail["body_erased"]:
        cli.out.line("(The text held a transfercode and was erased once the mail was delivered: "
                     "only its recipients have the code.)")
    else:
        cli.out.line((mail["body"] or "").rstrip("\n"))


@mail_app.command("flush")
def mail_flush(ctx: typer.Context, json: JsonOption = False, as_: AsOption = None) -> None:
    """Deliver every queued mail, each once.

    What cannot be delivered stays queued, and the exit status is 5 (for cron to notice).
    """
    from basecone_migrate.errors import Undelivered
    from basecone_migrate.services import outbox

    cli = context.get(ctx, json=json, as_=as_)
    delivery = outbox.flush(cli.runtime)
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
