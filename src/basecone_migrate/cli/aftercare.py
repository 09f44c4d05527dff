"""Same-environment migrations and after-care: link, access, audit."""

from typing import Annotated, Any

import typer

import basecone_migrate.cli.complete as complete
import basecone_migrate.cli.context as context
from basecone_migrate.cli.context import AsOption, JsonOption
from basecone_migrate.cli.setup import AdminArgument

access_app = typer.Typer(help="Who can see an administration.", no_args_is_help=True)
TakeNameOption = Annotated[bool, typer.Option(
    "--take-catalogue-name",
    help="Where the catalogue entry's name differs from the administration's, link it anyway "
         "and rename the administration as the catalogue names it (without it: refused).")]
UsersOption = Annotated[list[str], typer.Option("--user", metavar="EMAIL",
                                                help="A user of the administration's environment (repeatable).")]


#: Paging of the logs (`audit`, `charges`): oldest first, by key.
LimitOption = Annotated[int, typer.Option(metavar="N", min=1, max=1_000_000,
                                          help="At most this many rows, oldest first.")]
AfterOption = Annotated[int | None, typer.Option(
    metavar="ID", min=0, max=2**31 - 1, help="Continue after this row (the last id of the previous page).")]


def register(app: typer.Typer) -> None:
    app.command("link")(link)
    app.command("audit")(audit)
    app.command("charges")(charges)
    app.add_typer(access_app, name="access")


def link(
    ctx: typer.Context,
    admin: Annotated[str | None, typer.Argument(
        metavar="[ADMIN]", autocompletion=complete.administrations, help="Administration id, its code in your environment, or its mail "
                                "address (id:N always means an id); or --from FILE.")] = None,
    system: Annotated[str | None, typer.Option(
        "--system", metavar="CONNECTION", autocompletion=complete.connections,
        help="Another connection of the same package (kind 3).")] = None,
    code: Annotated[str | None, typer.Option(
        "--code", metavar="CODE", help="A new code from the connection's catalogue (kind 2).")] = None,
    from_: Annotated[str | None, typer.Option(
        "--from", metavar="FILE", help="Many at once: CSV or JSON lines of admin,system,code "
                                       "(- for standard input); all or nothing.")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Run every check and say what would change; change nothing.")] = False,
    take_catalogue_name: TakeNameOption = False,
    json: JsonOption = False,
    as_: AsOption = None,
) -> None:
    """Re-link or re-code in one environment.

    Another connection (kind 3), a new code (kind 2), or both (kind 5). With --from, every
    row of the file is checked first and all are made in one transaction, or none.
    """
    from basecone_migrate.errors import UsageProblem
    from basecone_migrate.services.links import link as link_administration

    cli = context.get(ctx, json=json, as_=as_)
    if from_ is not None:
        if admin is not None or system is not None or code is not None:
            raise UsageProblem("--from FILE names the administrations, connections and codes: "
                               "drop ADMIN, --system and --code")
        _link_batch(cli, from_, dry_run, take_catalogue_name)
        return
    if admin is None:
        raise UsageProblem("name the administration (ADMIN), or give a batch with --from FILE")
    result = link_administration(cli.runtime, admin, system=system, code=code, dry_run=dry_run,
                                 take_name=take_catalogue_name)
    before = result["previous"]

    def render() -> None:
        verb = "Would re-link" if dry_run else "Re-linked"
        cli.out.line(f"{verb} administration {result['administration_id']} (kind {result['kind']}): "
                     f"{before['accounting_system']} {before['code']} -> "
                     f"{result['accounting_system']} {result['code']}.")
        if result["email"] != before["email"]:
            cli.out.line(f"Mail address: {result['email']} (was {before['email']}, which keeps "
                         "reaching it as an alias).")
        if result["name"] != before["name"]:
            cli.out.line(f"{'Would rename' if dry_run else 'Renamed'} it {result['name']} (was "
                         f"{before['name']}), as the catalogue names it.")

    cli.out.emit(result, render)


def _link_batch(cli: Any, source: str, dry_run: bool, take_name: bool = False) -> None:
    from basecone_migrate.batches import read_rows
    from basecone_migrate.errors import BaseconeError
    from basecone_migrate.services.links import link_many

    rows = read_rows(source, ("admin", "system", "code"), 1, "--from")
    try:
        report = link_many(cli.runtime, rows, dry_run=dry_run, take_name=take_name)
    except BaseconeError as exc:
        refused = exc.payload
        if refused is not None:
            cli.out.emit(refused, lambda: render_batch(cli, refused, "Refused: nothing changed"))
        raise
    title = "Would change (nothing changed)" if dry_run else f"Changed {report['changed']} administrations"
    cli.out.emit(report, lambda: render_batch(cli, report, title))


def render_batch(cli: Any, report: dict[str, Any], title: str) -> None:
    """A batch's per-row report: what each row does, or why it is refused."""
    from basecone_migrate.cli.output import Column

    cli.out.table(
        [Column("line", "right"), Column("administration"), Column("to"), Column("code"),
         Column("e-mail"), Column("status", wrap=True)],
        [(r["line"], r.get("administration_id") or r["admin"], r.get("accounting_system") or r.get("system"),
          r.get("code"), r.get("email"), r["error"] or r["status"]) for r in report["rows"]],
        title=title)


def _access(ctx: typer.Context, admin: str, users: list[str], json: bool, as_: str | None,
            grant: bool) -> None:
    from basecone_migrate.services import access

    cli = context.get(ctx, json=json, as_=as_)
    result = access.change(cli.runtime, admin, users, grant=grant)
    changed = result["granted" if grant else "revoked"]

    def render() -> None:
        verb = "Granted" if grant else "Revoked"
        cli.out.line(f"{verb} access to administration {result['administration_id']}: "
                     f"{', '.join(changed) or 'nobody new'}.")
        cli.out.line(f"Users with access: {', '.join(result['users']) or 'none'}.")

    cli.out.emit(result, render)


@access_app.command("grant")
def access_grant(
    ctx: typer.Context,
    user: UsersOption,
    admin: Annotated[str | None, typer.Argument(
        metavar="[ADMIN]", autocompletion=complete.administrations,
        help="Administration id, its code in your environment, or its mail address (id:N "
             "always means an id); or --migration.")] = None,
    migration: Annotated[int | None, typer.Option(
        "--migration", metavar="MIGRATION", autocompletion=complete.migrations,
        help="Instead of ADMIN: every administration this migration completed, all or none.")] = None,
    json: JsonOption = False,
    as_: AsOption = None,
) -> None:
    """Give users access to an administration, or to all that a migration moved.

    Superusers of its environment only, for users of that environment.
    """
    from basecone_migrate.errors import UsageProblem

    if (admin is None) == (migration is None):
        raise UsageProblem("name the administration (ADMIN) or the migration (--migration N), "
                           "not both" if admin is not None else
                           "name the administration (ADMIN), or --migration N for all that a "
                           "migration moved")
    if admin is not None:
        _access(ctx, admin, user, json, as_, grant=True)
        return
    _grant_migration(ctx, migration, user, json, as_)  # type: ignore[arg-type]


def _grant_migration(ctx: typer.Context, migration: int, users: list[str], json: bool,
                     as_: str | None) -> None:
    from basecone_migrate.services import access

    cli = context.get(ctx, json=json, as_=as_)
    result = access.grant_migration(cli.runtime, migration, users)

    def render() -> None:
        for item in result["administrations"]:
            cli.out.line(f"Granted access to administration {item['administration_id']}: "
                         f"{', '.join(item['granted']) or 'nobody new'}; users with access: "
                         f"{', '.join(item['users']) or 'none'}.")

    cli.out.emit(result, render)


@access_app.command("revoke")
def access_revoke(ctx: typer.Context, admin: AdminArgument, user: UsersOption,
                  json: JsonOption = False, as_: AsOption = None) -> None:
    """Take access away.

    Superusers of the administration's environment only.
    """
    _access(ctx, admin, user, json, as_, grant=False)


@access_app.command("list")
def access_list(ctx: typer.Context, admin: AdminArgument, json: JsonOption = False,
                as_: AsOption = None) -> None:
    """The users who can see an administration."""
    from basecone_migrate.cli.output import Column
    from basecone_migrate.services import access

    cli = context.get(ctx, json=json, as_=as_)
    result = access.listing(cli.runtime, admin)
    cli.out.emit(result, lambda: cli.out.table(
        [Column("user"), Column("name", wrap=True), Column("role")], [(u["email"], u["name"], u["role"]) for u in result["users"]],
        title=f"Access to administration {result['administration_id']} ({result['environment']})",
        empty="nobody has access"))


def audit(
    ctx: typer.Context,
    admin: Annotated[str | None, typer.Option("--admin", metavar="ADMIN", autocompletion=complete.administrations,
                                              help="Only this administration (id, code or mail address).")] = None,
    migration: Annotated[int | None, typer.Option("--migration", metavar="MIGRATION",
                                                  autocompletion=complete.migrations,
                                                  help="Only this migration.")] = None,
    since: Annotated[str | None, typer.Option(metavar="WHEN",
                                              help="From this UTC date or instant (2026-03-01, 2026-03-01T09:00Z).")] = None,
    limit: LimitOption = 1000,
    after: AfterOption = None,
    json: JsonOption = False,
    as_: AsOption = None,
) -> None:
    """Every state change, oldest first.

    When, who (the acting user, and the operator: the operating-system user and host that
    ran the command, and on PostgreSQL the database role, which no option can set), what,
    which administration and migration, and details.
    """
    from basecone_migrate.cli.output import Column, when
    from basecone_migrate.clock import parse_instant
    from basecone_migrate.errors import UsageProblem
    from basecone_migrate.services import audit as audit_log

    cli = context.get(ctx, json=json, as_=as_)
    try:
        start = parse_instant(since) if since else None
    except ValueError:
        raise UsageProblem(f"--since {since!r} is not a date or an ISO-8601 instant") from None
    rows = audit_log.log(cli.runtime, admin=admin, migration=migration, since=start, limit=limit,
                         after=after)

    # A person reads key=value pairs; a pipe gets each row's details whole, as JSON.
    describe = key_values if cli.out.to_terminal else compact_json
    cli.out.emit(rows, lambda: cli.out.table(
        [Column("time (UTC)"), Column("actor", below=True), Column("operator", below=True),
         Column("action"), Column("admin", "right"), Column("migration", "right"),
         Column("details", wrap=True)],
        [(when(r["at"]), r["actor"], r["operator"] or "", r["action"], r["administration_id"],
          r["migration_id"], describe(r["details"])) for r in rows], title="Audit log",
        empty="no entries"))


def charges(
    ctx: typer.Context,
    env: Annotated[str | None, typer.Option("--env", metavar="CODE", autocompletion=complete.offices,
                                            help="Only this environment (office code).")] = None,
    limit: LimitOption = 1000,
    after: AfterOption = None,
    json: JsonOption = False,
    as_: AsOption = None,
) -> None:
    """The migration fees charged, and credited back, oldest first.

    A fee is charged to the receiving environment for each administration it redeems
    (BASECONE_MIGRATE_FEE); a cancelled or undone move gets it back as a credit (a negative
    amount). The table ends with what the rows add up to per environment.
    """
    from basecone_migrate.cli.output import Column, when
    from basecone_migrate.domain.money import Money
    from basecone_migrate.services import charges as fees

    cli = context.get(ctx, json=json, as_=as_)
    rows = fees.listing(cli.runtime, env=env, limit=limit, after=after)

    def render() -> None:
        cli.out.table(
            [Column("time (UTC)"), Column("environment"), Column("admin", "right"),
             Column("migration", "right"), Column("kind"), Column("amount", "right"), Column("currency")],
            [(when(r["at"]), r["environment"], r["administration_id"], r["migration_id"], r["kind"],
              Money(r["currency"], r["amount_cents"]).amount(), r["currency"]) for r in rows],
            title="Charges", empty="no charges")
        for code, total in fees.totals(rows):  # of the rows shown (a page, with --limit)
            cli.out.note(f"{code}: {total} in total")

    cli.out.emit(rows, render)


def compact_json(details: Any) -> str:
    from basecone_migrate.cli.output import to_json

    return to_json(details, compact=True)


def key_values(details: dict[str, Any], prefix: str = "") -> str:
    """``key=value`` pairs (as logfmt writes them): nested objects as dotted keys (a zero
    count among them left out), lists comma-separated, text quoted where it holds spaces."""
    import json

    from basecone_migrate.domain.text import json_safe

    def text(value: Any) -> str:
        if isinstance(value, str):
            bare = value and not any(c.isspace() or c in '"=,' or not c.isprintable() for c in value)
            return value if bare else json_safe(json.dumps(value, ensure_ascii=False))
        return json_safe(json.dumps(value, ensure_ascii=False, default=str))

    pairs = []
    for key, value in details.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            pairs.append(key_values({k: v for k, v in value.items() if v != 0 or v is False},
                                    f"{name}."))
        elif isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value) and value:
            pairs.append(f"{name}={','.join(text(v) for v in value)}")
        else:
            pairs.append(f"{name}={text(value)}")
    return " ".join(pair for pair in pairs if pair)
