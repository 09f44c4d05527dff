"""Cross-environment migration: offer, list, revoke, resend, redeem, status, resume, expire,
and the workers of background transfers."""


from typing import TYPE_CHECKING, Annotated, Any

import typer

import basecone_migrate.cli.complete as complete
import basecone_migrate.cli.context as context
from basecone_migrate.cli.context import CLI, AsOption, JsonOption
from basecone_migrate.cli.render import render_items, render_status, report

if TYPE_CHECKING:
    pass

DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Run every check and say what would happen; change nothing.")
]
MigrationArgument = Annotated[int, typer.Argument(metavar="MIGRATION", help="Migration id.",
                                                  autocompletion=complete.migrations)]
BackgroundOption = Annotated[bool, typer.Option(
    "--background", help="Queue the transfers for `basecone-migrate worker` and return at once "
                         "(PostgreSQL only).")]
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
    from basecone_migrate.services.migrations.offers import check_offer_rows

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


def _parse_link(text: str) -> tuple[str, str, str | None]:
    from basecone_migrate.errors import UsageProblem

    admin, _, target = text.partition("=")
    connection, _, code = target.partition(":")
    if not admin.strip() or not connection.strip() or (":" in target and not code.strip()):
        raise UsageProblem(f"--link {text!r} is not ADMIN=CONNECTION[:CODE]")
    return admin.strip(), connection.strip(), code.strip() or None


def redeem(
    ctx: typer.Context,
    code: Annotated[str | None, typer.Argument(
        metavar="[CODE]", help="The transfercode from the mail. Leave it out to be asked for it at "
                               "a terminal (not echoed), or give --code-file: a code on the command "
                               "line shows in the process list and the shell history.")] = None,
    code_file: Annotated[str | None, typer.Option(
        "--code-file", metavar="FILE", help="Read the transfercode from FILE (- for standard input).")] = None,
    accept_terms: Annotated[bool, typer.Option("--accept-terms",
                                               help="Accept the terms and the costs.")] = False,
    select: Annotated[list[str] | None, typer.Option(
        "--select", metavar="ADMIN", autocompletion=complete.administrations, help="Take only these (repeatable); the rest are rejected.")] = None,
    link: Annotated[list[str] | None, typer.Option(
        "--link", metavar="ADMIN=CONNECTION[:CODE]",
        help="Where an administration goes (repeatable); may be left out where exactly one "
             "connection of its package has its code and name.")] = None,
    links_file: Annotated[str | None, typer.Option(
        "--links", "--from", metavar="FILE",
        help="Many --link at once: CSV or JSON lines of admin,connection[,code] (- for standard "
             "input); --from is the same option, as for offer and link.")] = None,
    take_catalogue_name: Annotated[bool, typer.Option(
        "--take-catalogue-name",
        help="Link to a catalogue entry whose name differs from the administration's anyway: "
             "the administration takes that name when it arrives (without it: refused).")] = False,
    reject: Annotated[bool, typer.Option("--reject", help="Decline the whole offer.")] = False,
    reason: Annotated[str | None, typer.Option(metavar="TEXT",
                                               help="Why (for --reject or what --select leaves).")] = None,
    dry_run: DryRunOption = False,
    background: BackgroundOption = False,
    json: JsonOption = False,
    as_: AsOption = None,
) -> None:
    """Take (or reject) what a transfercode offers.

    Then the archives move, with progress bars at a terminal; with --background, workers
    move them and the administrations stay in_progress until they have.
    """
    from basecone_migrate.cli.progress import progress_for
    from basecone_migrate.cli.prompts import questions_for
    from basecone_migrate.errors import UsageProblem
    from basecone_migrate.services.migrations import receiving

    cli = context.get(ctx, json=json, as_=as_)
    # Every option is checked before the code is asked for: a person types it only once.
    if reject and (select or link or accept_terms or links_file or take_catalogue_name):
        raise UsageProblem("--reject declines the whole offer: drop --select, --link, --links, "
                           "--take-catalogue-name and --accept-terms")
    if reject and background:
        raise UsageProblem("--reject moves nothing: drop --background")
    if code_file == "-" and links_file == "-":
        raise UsageProblem("--code-file - and --links - both read standard input: give one a file")
    links = [_parse_link(text) for text in link or []]
    lines: list[int] | None = None
    if links_file is not None:
        from basecone_migrate.batches import read_rows

        if links:
            raise UsageProblem("give the links with --link or with --links FILE, not both")
        rows = read_rows(links_file, ("admin", "connection", "code"), 2, "--links")
        links = [(r["admin"] or "", r["connection"] or "", r["code"]) for r in rows]
        lines = [r.line for r in rows]
    code = _transfercode(cli, code, code_file)
    if reject:
        outcome = receiving.reject(cli.runtime, code, reason=reason, dry_run=dry_run)
        report(cli, outcome)
        p = outcome.payload
        cli.out.emit(p, lambda: cli.out.line(
            f"Migration {p['migration_id']}: "
            + ("would reject" if dry_run else "rejected")
            + f" {len(p['items'])} administration(s); the sender gets a mail."))
        return
    bars, progress = progress_for(cli.out)
    try:
        with bars:
            outcome = receiving.redeem(cli.runtime, code, accept_terms=accept_terms,
                                        select_=select or [], links=links, reason=reason,
                                        dry_run=dry_run, ask=questions_for(cli.out),
                                        progress=progress, background=background, link_lines=lines,
                                        take_name=take_catalogue_name)
    except Exception as exc:
        _emit_payload_of(cli, exc, "Migration did not finish")
        raise
    report(cli, outcome)
    p = outcome.payload
    title = "Would take (nothing changed)" if dry_run else f"Migration {p['migration_id']}: {p['status']}"
    if background and not dry_run:
        title += f" (queued for the workers: follow with `basecone-migrate status {p['migration_id']} --watch`)"
    cli.out.emit(p, lambda: _render_moved(cli, p, title))


def _render_moved(cli: CLI, p: dict[str, Any], title: str) -> None:
    """The items, then the step that is left (rule 13) when administrations have arrived:
    users and their access do not move, the receiver grants them again."""
    render_items(cli, p["items"], title)
    arrived = sum(1 for i in p["items"] if i["status"] == "completed")
    if not arrived:
        return
    acting = f"--as {cli.settings.user} " if cli.settings.user else ""
    which = "the administration" if arrived == 1 else f"the {arrived} administrations"
    cli.out.line(f"Next: users and their access did not move. Give users access to {which} "
                 "(repeat --user for more):")
    cli.out.line(f"  basecone-migrate {acting}access grant --migration {p['migration_id']} --user EMAIL")


#: A transfercode file holds one code: anything longer is not one.
CODE_FILE_LIMIT = 4096


def _transfercode(cli: CLI, code: str | None, code_file: str | None) -> str:
    """The code from the argument, from --code-file (- for standard input), or asked for at a
    terminal without echo: the last two keep it out of the process list and the history."""
    from basecone_migrate.errors import UsageProblem

    if code is not None and code_file is not None:
        raise UsageProblem("give the transfercode once: as CODE or with --code-file, not both")
    if code is not None:
        return code
    if code_file is not None:
        return _read_code_file(code_file)
    from basecone_migrate.cli.prompts import questions_for

    ask = questions_for(cli.out)
    if ask is None:
        raise UsageProblem("give the transfercode: --code-file FILE (- for standard input), or CODE")
    return ask.transfercode()


def _read_code_file(source: str) -> str:
    import sys

    from basecone_migrate.errors import UsageProblem
    from basecone_migrate.files import TooLarge, UnreadableFile, read_regular

    where = "standard input" if source == "-" else source
    try:
        raw = (sys.stdin.buffer.read(CODE_FILE_LIMIT + 1) if source == "-"
               else read_regular(source, CODE_FILE_LIMIT))
        if len(raw) > CODE_FILE_LIMIT:
            raise TooLarge(source, CODE_FILE_LIMIT)
        text = raw.decode("utf-8")
    except TooLarge:
        raise UsageProblem(f"--code-file: {where} is longer than a transfercode file can be "
                           f"({CODE_FILE_LIMIT} bytes)") from None
    except UnreadableFile as exc:
        raise UsageProblem(f"--code-file {source}: {exc.reason}") from None
    except UnicodeDecodeError:
        raise UsageProblem(f"--code-file: {where} is not UTF-8 text") from None
    found = [line.strip() for line in text.splitlines() if line.strip()]
    if len(found) != 1:
        raise UsageProblem(f"--code-file: {where} must hold the transfercode on one line, "
                           f"and nothing else (found {len(found)} lines)")
    return found[0]


def _emit_payload_of(cli: CLI, exc: Exception, title: str) -> None:
    """A refused or unfinished command that has a result still prints it (for --json)."""
    payload = getattr(exc, "payload", None)
    if payload is not None:
        cli.out.emit(payload, lambda: render_items(cli, payload["items"], title))


def status(
    ctx: typer.Context,
    migration: Annotated[int | None, typer.Argument(metavar="[MIGRATION]", autocompletion=complete.migrations,
                                                    help="Migration id (default: recent ones).")] = None,
    limit: Annotated[int, typer.Option(metavar="N", min=1, max=1000,
                                       help="Without MIGRATION: this many, newest first.")] = 20,
    after: Annotated[int | None, typer.Option(
        metavar="MIGRATION", help="Without MIGRATION: continue below this one.")] = None,
    watch: Annotated[bool, typer.Option(
        "--watch", help="With MIGRATION: redraw until nothing of it is running or queued any "
                        "more (with --json: print the final state once).")] = False,
    interval: Annotated[float, typer.Option(
        min=0.2, max=60, metavar="SECONDS", help="With --watch: seconds between redraws.")] = 1.0,
    json: JsonOption = False,
    as_: AsOption = None,
) -> None:
    """Transfer status per administration.

    State, documents and bytes done of total, timings, the process that runs it, error.
    """
    from basecone_migrate.errors import UsageProblem
    from basecone_migrate.services.migrations import overview

    cli = context.get(ctx, json=json, as_=as_)
    if migration is not None and after is not None:
        raise UsageProblem("--after pages the list of recent migrations: leave out MIGRATION")
    if watch:
        if migration is None:
            raise UsageProblem("--watch follows one migration: give its id (status MIGRATION --watch)")
        from basecone_migrate.cli.watch import stalled, watch_status

        final, shown = watch_status(cli, migration, interval)
        cli.out.emit(final, lambda: None if shown else render_status(cli, [final], hint=False))
        if stalled(final):
            cli.out.warn(f"nothing runs or waits to run {len(stalled(final))} unfinished "
                         f"administration(s) of migration {migration} any more, so --watch stops: "
                         f"run `basecone-migrate resume {migration}` to finish them")
        return
    result = overview.status(cli.runtime, migration, limit=limit, after=after)
    views = [result] if migration is not None else result
    cli.out.emit(result, lambda: render_status(cli, views))


def resume(ctx: typer.Context, migration: MigrationArgument, background: BackgroundOption = False,
           json: JsonOption = False, as_: AsOption = None) -> None:
    """Finish a transfer that did not finish.

    Documents already copied and verified are not copied again.
    """
    from basecone_migrate.cli.progress import progress_for
    from basecone_migrate.services.migrations import receiving

    cli = context.get(ctx, json=json, as_=as_)
    bars, progress = progress_for(cli.out)
    try:
        with bars:
            outcome = receiving.resume(cli.runtime, migration, progress, background=background)
    except Exception as exc:
        _emit_payload_of(cli, exc, "Migration did not finish")
        raise
    report(cli, outcome)
    p = outcome.payload
    cli.out.emit(p, lambda: _render_moved(cli, p, f"Migration {p['migration_id']}: {p['status']}"))


def worker(
    ctx: typer.Context,
    concurrency: Annotated[int, typer.Option(
        min=1, max=64, metavar="N", help="Administrations moved at once by this worker.")] = 1,
    once: Annotated[bool, typer.Option(
        "--once", help="Run what is queued, then exit 0 (default: wait for more until stopped).")] = False,
    name: Annotated[str | None, typer.Option(
        metavar="NAME", help="How `status` names this worker (default: the host name).")] = None,
    heartbeat: Annotated[float, typer.Option(
        min=0.5, max=300, metavar="SECONDS", help="How often this worker says it is alive.")] = 5.0,
    stalled_after: Annotated[float, typer.Option(
        min=1, max=3600, metavar="SECONDS",
        help="A job whose worker has been silent this long is queued again.")] = 30.0,
    json: JsonOption = False,
    as_: AsOption = None,
) -> None:
    """Run background transfers (PostgreSQL).

    Any number of workers on any number of machines share the queue; each administration is
    moved by one of them at a time. SIGINT or SIGTERM stops a worker once its transfers
    finish; a worker that is killed leaves its transfers to the others, who resume them
    after --stalled-after seconds. It logs on stderr, one line each, what it takes, how far
    it got (every 10% or 30 s) and what it finished.
    """
    from basecone_migrate.cli.progress import LinesProgress
    from basecone_migrate.services.background import WorkerOptions, require_postgres, run_worker

    cli = context.get(ctx, json=json, as_=as_)
    log = _log_lines(cli)
    options = WorkerOptions(concurrency=concurrency, once=once, name=name, heartbeat=heartbeat,
                            stalled_after=stalled_after,
                            progress=lambda job: LinesProgress(cli.out, name=job, emit=log))
    if stalled_after <= heartbeat:
        from basecone_migrate.errors import UsageProblem

        raise UsageProblem(f"--stalled-after ({stalled_after:g} s) must be longer than --heartbeat "
                           f"({heartbeat:g} s), or live workers would lose their jobs")
    from basecone_migrate.services.locks import worker_label

    require_postgres(cli.runtime, worker=True)  # before the first line: a refusal is one `Error:` line
    log(f"{worker_label(name)}: waiting for transfers (concurrency {concurrency}"
        f"{', until the queue is empty' if once else ''})")
    run_worker(cli.runtime, options)
    log(f"{worker_label(name)}: worker stopped")
    cli.out.emit({"stopped": True, "once": once}, lambda: None)


def _log_lines(cli: CLI) -> Any:
    """A worker's log: one line at a time on stderr, from any of its threads (also under
    --json, whose document is on stdout; not under --quiet)."""
    import sys
    import threading

    from basecone_migrate.domain.text import one_line

    lock = threading.Lock()

    def log(line: str) -> None:
        if cli.out.quiet:
            return
        with lock:
            sys.stderr.write(one_line(line) + "\n")
            sys.stderr.flush()

    return log


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
