"""Cross-environment migration, the sender's side and the overview: offer, list, revoke,
resend, expire; `receive` holds redeem, status, resume and the workers. Registered here in
the order `--help` lists them."""


from typing import Annotated

import typer

import basecone_migrate.cli.complete as complete
import basecone_migrate.cli.context as context
from basecone_migrate.cli.arguments import DryRunOption, MigrationArgument
from basecone_migrate.cli.context import CLI, AsOption, JsonOption
from basecone_migrate.cli.receive import redeem, resume, status, worker
from basecone_migrate.cli.render import report

STATUSES = complete.STATUSES


def register(app: typer.Typer) -> None:
    for command in (offer, list_, revoke, resend, redeem, status, resume, expire, worker):
        app.command(command.__name__.rstrip("_"))(command)


def offer(
    ctx: typer.Context,
    to: Annotated[list[str], typer.Option("--to", metavar="EMAIL",
                                          help="A Superuser of the receiving environment (repeatable).")],
    admins: Annotated[list[str] | None, typer.Argument(
        metavar="ADMIN...", autocompletion=complete.administrations, help="Administrations (ids or codes); or --from FILE.")] = None,
    from_: Annotated[str | None, typer.Option(
        "--from", metavar="FILE", help="Administrations, one per line (- for standard input); "
                                       "any refused line refuses the offer.")] = None,
    accept_terms: Annotated[bool, typer.Option("--accept-terms", help="Accept the terms.")] = False,
    confirm_checklist: Annotated[bool, typer.Option(
        "--confirm-checklist",
        help="Confirm that authorisers are not transferred and are out of the workflows.")] = False,
    allow_unknown_recipient: Annotated[bool, typer.Option(
        "--allow-unknown-recipient",
        help="Mail the code also to --to addresses that are no user the tool knows (never to a "
             "known user who is not a Superuser of a premium environment).")] = False,
    to_env: Annotated[str | None, typer.Option(
        "--to-env", metavar="OFFICE", autocompletion=complete.offices,
        help="The environment the offer is for (only its Superusers can redeem it); needed when "
             "no --to is a known Superuser.")] = None,
    dry_run: DryRunOption = False,
    json: JsonOption = False,
    as_: AsOption = None,
) -> None:
    """Offer administrations to another environment.

    Makes a transfercode, prints it once and mails it to the recipients.
    """
    from basecone_migrate.cli.output import when
    from basecone_migrate.cli.prompts import questions_for
    from basecone_migrate.services.migrations import offers

    cli = context.get(ctx, json=json, as_=as_)
    references = list(admins or [])
    if from_ is not None:
        references += _offer_rows(cli, from_)
    if not references:
        from basecone_migrate.errors import UsageProblem

        raise UsageProblem("name the administrations to offer (ADMIN...), or give them with --from FILE")
    outcome = offers.offer(cli.runtime, references, to, accept_terms=accept_terms,
                               confirm_checklist=confirm_checklist, dry_run=dry_run,
                               ask=questions_for(cli.out), allow_unknown=allow_unknown_recipient,
                               to_env=to_env)
    report(cli, outcome)
    p = outcome.payload

    def render() -> None:
        names = ", ".join(f"{a['code']} {a['name']}" for a in p["administrations"])
        if dry_run:
            cli.out.line(f"Would offer {names} to {', '.join(p['recipients'])} (nothing changed).")
            return
        cli.out.line(f"Migration {p['migration_id']}: offered {names} to {', '.join(p['recipients'])}.")
        cli.out.line(f"Transfercode: {p['transfercode']}")
        cli.out.line(f"Valid until {when(p['expires_at'])} UTC, once. It is shown only here and in "
                     "the mail.")

    # Even with --quiet the code is printed: it is shown nowhere else but in the mail.
    cli.out.emit(p, render, essential=lambda: p["transfercode"] and cli.out.line(
        f"Transfercode: {p['transfercode']}", essential=True))


def _offer_rows(cli: CLI, source: str) -> list[str]:
    """The administrations of `offer --from`, each checked; a refused one refuses the offer."""
    from basecone_migrate.batches import read_rows
    from basecone_migrate.errors import BaseconeError
    from basecone_migrate.services.migrations.offer_checks import check_offer_rows

    rows = read_rows(source, ("admin",), 1, "--from")
    try:
        return check_offer_rows(cli.runtime, rows)
    except BaseconeError as exc:
        refused = exc.payload
        if refused is not None:
            cli.out.emit(refused, lambda: cli.out.table(
                [("line", "right"), "administration", "status"],
                [(r["line"], r.get("name") or r["admin"], r["error"] or r["status"]) for r in refused["rows"]],
                title="Refused: nothing changed"))
        raise


def list_(
    ctx: typer.Context,
    search: Annotated[str | None, typer.Option(metavar="TEXT", help="Match any column.")] = None,
    status_: Annotated[str | None, typer.Option("--status", metavar="STATUS", autocompletion=complete.statuses,
                                                help=f"One of: {', '.join(STATUSES)}.")] = None,
    offered: Annotated[bool, typer.Option("--offered", help="Only what you offered.")] = False,
    received: Annotated[bool, typer.Option("--received", help="Only what you received.")] = False,
    limit: Annotated[int, typer.Option(metavar="N", min=1, max=10_000, help="Rows per section.")] = 100,
    offset: Annotated[int, typer.Option(metavar="N", min=0, max=2**31 - 1,
                                        help="Skip this many rows per section.")] = 0,
    after: Annotated[str | None, typer.Option(
        metavar="CURSOR", help="Continue one section after this cursor (offered_next or "
                               "received_next of the previous page).")] = None,
    json: JsonOption = False,
    as_: AsOption = None,
) -> None:
    """The migration overview: offered, received."""
    from basecone_migrate.cli.output import Column, code_tail, day, when
    from basecone_migrate.errors import UsageProblem
    from basecone_migrate.services.migrations import overview

    cli = context.get(ctx, json=json, as_=as_)
    if offered and received:
        raise UsageProblem("--offered and --received exclude each other; give neither for both")
    if status_ is not None and status_ not in STATUSES:
        raise UsageProblem(f"--status must be one of {', '.join(STATUSES)}, not {status_!r}")
    result = overview.list_migrations(cli.runtime, search=search, status=status_,
                                        offered=not received, received=not offered,
                                        limit=limit, offset=offset, after=after)

    def render() -> None:
        if not received and (not after or result["offered_next"] or result["offered"]):
            cli.out.table(
                [Column("migration", "right"), Column("created (UTC)"), Column("administration", wrap=True),
                 Column("e-mail", below=True), Column("recipients"), Column("expires (UTC)"),
                 Column("code"), Column("status")],
                [(r["migration_id"], day(r["created_at"]), r["administration"],
                  r["administration_email"], r["recipients"], when(r["expires_at"]),
                  code_tail(r["transfercode_hint"]), r["status"]) for r in result["offered"]],
                title="Offered", empty="nothing offered")
        if not offered and (not after or result["received_next"] or result["received"]):
            cli.out.table(
                [Column("migration", "right"), Column("created (UTC)"), Column("administration", wrap=True),
                 Column("from"), Column("accounting system"), Column("status")],
                [(r["migration_id"], day(r["created_at"]), r["administration"], r["source_environment"],
                  r["accounting_system"], r["status"]) for r in result["received"]],
                title="Received", empty="nothing received")
        for section in ("offered", "received"):
            shown, total = len(result[section]), result[f"{section}_total"]
            more = "" if result[f"{section}_total_exact"] else "more than "
            if result[f"{section}_next"]:
                cli.out.note(f"{section}: showing {shown} of {more}{total}; next page: "
                             f"--after {result[f'{section}_next']}")

    cli.out.emit(result, render)


def revoke(
    ctx: typer.Context,
    migration: MigrationArgument,
    admin: Annotated[str | None, typer.Option("--admin", metavar="ADMIN", autocompletion=complete.administrations,
                                              help="Only this administration of the offer.")] = None,
    json: JsonOption = False,
    as_: AsOption = None,
) -> None:
    """Withdraw an offer, or one administration.

    The recipients get a mail.
    """
    from basecone_migrate.services.migrations import offers

    cli = context.get(ctx, json=json, as_=as_)
    outcome = offers.revoke(cli.runtime, migration, admin)
    report(cli, outcome)
    p = outcome.payload
    revoked = ", ".join(a["code"] + " " + a["name"] for a in p["revoked"])
    # The status is the migration's, not the revoked administrations': say so.
    cli.out.emit(p, lambda: cli.out.line(
        f"Migration {p['migration_id']}: revoked {revoked}. Status of migration "
        f"{p['migration_id']} as a whole: {p['status']}."))


def resend(ctx: typer.Context, migration: MigrationArgument, json: JsonOption = False,
           as_: AsOption = None) -> None:
    """Mail a new transfercode for an offer.

    The old code stops working. An offer that expired is offered again.
    """
    from basecone_migrate.cli.output import when
    from basecone_migrate.services.migrations import offers

    cli = context.get(ctx, json=json, as_=as_)
    outcome = offers.resend(cli.runtime, migration)
    report(cli, outcome)
    p = outcome.payload

    def render() -> None:
        cli.out.line(f"Migration {p['migration_id']}: new code sent to {', '.join(p['recipients'])}.")
        cli.out.line(f"Transfercode: {p['transfercode']}")
        cli.out.line(f"Valid until {when(p['expires_at'])} UTC. The previous code no longer works.")

    # As for offer, --quiet keeps the new code: it is shown nowhere else but in the mail.
    cli.out.emit(p, render, essential=lambda: cli.out.line(f"Transfercode: {p['transfercode']}",
                                                           essential=True))


def expire(ctx: typer.Context, json: JsonOption = False, as_: AsOption = None) -> None:
    """For cron: expire offers past their expiry.

    Each sender gets one mail.
    """
    from basecone_migrate.services.migrations import offers

    cli = context.get(ctx, json=json, as_=as_)
    outcome = offers.expire(cli.runtime)
    report(cli, outcome)
    count = outcome.payload["expired"]
    cli.out.emit(outcome.payload, lambda: cli.out.line(f"Expired {count} administration(s)."))
