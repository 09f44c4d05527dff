"""Cross-environment migration, the receiver's side: redeem, status (and `--watch`), resume,
and the workers of background transfers."""


from typing import Annotated, Any

import typer

import basecone_migrate.cli.complete as complete
import basecone_migrate.cli.context as context
from basecone_migrate.cli.arguments import BackgroundOption, DryRunOption, MigrationArgument
from basecone_migrate.cli.context import CLI, AsOption, JsonOption
from basecone_migrate.cli.render import render_items, render_status, report


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
    start_after: Annotated[str | None, typer.Option(
        "--start-after", metavar="INSTANT",
        help="With --background: no worker starts the transfer before this ISO-8601 instant "
             "(2026-12-24T22:00:00Z; without an offset, UTC).")] = None,
    json: JsonOption = False,
    as_: AsOption = None,
) -> None:
    """Take (or reject) what a transfercode offers.

    Then the archives move, with progress bars at a terminal; with --background, workers
    move them and the administrations stay in_progress until they have (with --start-after,
    scheduled until that instant).
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
    start = _instant(start_after)
    receiving.check_start_after(start, background)  # before the code is asked for
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
                                        start_after=start,
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


def _instant(text: str | None) -> Any:
    from basecone_migrate.clock import parse_instant
    from basecone_migrate.errors import UsageProblem

    if text is None:
        return None
    try:
        return parse_instant(text)
    except ValueError:
        raise UsageProblem(f"--start-after {text!r} is not an ISO-8601 instant (such as "
                           "2026-12-24T22:00:00Z)") from None


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
    from basecone_migrate.services.migrations import resuming

    cli = context.get(ctx, json=json, as_=as_)
    bars, progress = progress_for(cli.out)
    try:
        with bars:
            outcome = resuming.resume(cli.runtime, migration, progress, background=background)
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
        "--once", help="Run what is queued and due, then exit 0; starts scheduled for later stay "
                        "queued (default: wait for more until stopped).")] = False,
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
    later = run_worker(cli.runtime, options)
    if later:
        log(f"{worker_label(name)}: {later} transfer(s) scheduled to start later stay queued: "
            "a worker starts them when they are due")
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
