"""Setting up the world: config, db, load, env, admin, archive, demo."""


from pathlib import Path
from typing import Annotated, Any

import typer

import basecone_migrate.cli.complete as complete
import basecone_migrate.cli.context as context
from basecone_migrate.cli.context import AsOption, JsonOption
from basecone_migrate.cli.render import render_administrations

db_app = typer.Typer(help="The database schema.", no_args_is_help=True)
env_app = typer.Typer(help="Environments (offices).", no_args_is_help=True)
admin_app = typer.Typer(help="Administrations (client companies).", no_args_is_help=True)
archive_app = typer.Typer(help="An administration's archive of documents.", no_args_is_help=True)

AdminArgument = Annotated[
    str,
    typer.Argument(
        metavar="ADMIN", autocompletion=complete.administrations,
        help="Administration id, its code in your environment, or its mail address "
             "(id:N always means an id).",
    ),
]


def register(app: typer.Typer) -> None:
    app.command("config")(show_config)
    app.command("load")(load)
    app.command("demo")(demo)
    app.add_typer(db_app, name="db")
    app.add_typer(env_app, name="env")
    app.add_typer(admin_app, name="admin")
    app.add_typer(archive_app, name="archive")


def show_config(ctx: typer.Context, json: JsonOption = False, as_: AsOption = None) -> None:
    """Show every setting and where it came from.

    Secrets are masked.
    """
    from basecone_migrate.cli.output import Column

    cli = context.get(ctx, json=json, as_=as_)
    rows = cli.settings.describe()
    payload = {
        "config_file": str(cli.settings.config_path),
        "config_file_exists": cli.settings.config_path.is_file(),
        "data_dir": str(cli.settings.data_dir),
        "settings": rows,
    }

    def render() -> None:
        found = "" if payload["config_file_exists"] else " (not found)"
        cli.out.line(f"config file: {payload['config_file']}{found}")
        cli.out.line(f"data folder: {payload['data_dir']}")
        cli.out.table([Column("setting"), Column("variable"), Column("value", wrap=True),
                       Column("from", wrap=True)],
                      [(r["setting"], r["variable"], r["value"] or "(none)",
                        "env" if r["source"] == f"env {r['variable']}" else r["source"]) for r in rows])

    cli.out.emit(payload, render)


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context, json: JsonOption = False, as_: AsOption = None) -> None:
    """Create or migrate the schema (Alembic).

    The default SQLite file does this on first use.
    """
    from basecone_migrate.services import schema

    cli = context.get(ctx, json=json, as_=as_)
    payload = schema.upgrade(cli.settings)
    url, before, after = payload["database"], payload["from_revision"], payload["revision"]
    cli.out.emit(payload, lambda: cli.out.line(
        f"{url}: already at revision {after}" if before == after
        else f"{url}: upgraded from {before or 'an empty database'} to revision {after}"))


def load(
    ctx: typer.Context,
    world: Annotated[Path, typer.Argument(metavar="WORLD.json", readable=False,  # checked when read
                                          help="The world to upsert.")],
    documents_anywhere: Annotated[bool, typer.Option(
        "--documents-anywhere",
        help="Allow document paths outside the world file's folder, and follow symbolic links "
             "(only for a world file you trust).")] = False,
    json: JsonOption = False,
    as_: AsOption = None,
) -> None:
    """Upsert the world from a JSON file.

    Environments, users, connections, administrations and documents. Everything is checked
    first: a malformed file changes nothing. The entities go in one transaction; the
    documents are copied after it, so a load that stopped while copying is finished by
    loading the file again. Loading it again changes nothing, and an administration that was
    moved, re-coded or re-linked since keeps its place. Document paths are relative to the
    file and must stay in its folder, without symbolic links, unless --documents-anywhere.
    """
    from basecone_migrate.services.world import load_world

    cli = context.get(ctx, json=json, as_=as_)
    report, notes = load_world(cli.runtime, world, documents_anywhere=documents_anywhere)
    for note in notes:  # in both modes: the file and the database disagree, and the database won
        cli.out.warn(note)

    def render() -> None:
        cli.out.table(
            ["", ("created", "right"), ("updated", "right"), ("unchanged", "right")],
            [(kind.replace("_", " "), c["created"], c["updated"], c["unchanged"])
             for kind, c in report.items() if kind != "documents"],
            title=f"Loaded {world}",
        )
        docs = report["documents"]
        cli.out.line(f"documents: {docs['added']} added, {docs['already_present']} already in the archive")

    cli.out.emit(report, render)


@env_app.command("list")
def env_list(ctx: typer.Context, json: JsonOption = False, as_: AsOption = None) -> None:
    """List environments: plan, archive root, size."""
    from basecone_migrate.cli.output import Column, human_size
    from basecone_migrate.services import overview

    cli = context.get(ctx, json=json, as_=as_)
    rows = overview.environments_list(cli.runtime)
    cli.out.emit(rows, lambda: cli.out.table(
        [Column("office"), Column("name", wrap=True), Column("plan"), Column("admins", "right"),
         Column("users", "right"), Column("documents", "right"), Column("size", "right"),
         Column("archive", wrap=True)],
        [(r["code"], r["name"], r["plan"], r["administrations"], r["users"], r["documents"],
          human_size(r["bytes"]), r["storage"]) for r in rows],
        title="Environments", empty="no environments: load a world first"))


@admin_app.command("list")
def admin_list(
    ctx: typer.Context,
    env: Annotated[str | None, typer.Option(metavar="CODE", autocompletion=complete.offices, help="Only this office.")] = None,
    json: JsonOption = False,
    as_: AsOption = None,
) -> None:
    """List administrations: link, e-mail, archive."""
    from basecone_migrate.services import overview

    cli = context.get(ctx, json=json, as_=as_)
    rows = overview.administrations_list(cli.runtime, env)
    cli.out.emit(rows, lambda: render_administrations(
        cli, rows, f"Administrations of {env}" if env else "Administrations"))


@admin_app.command("show")
def admin_show(
    ctx: typer.Context, admin: AdminArgument, json: JsonOption = False, as_: AsOption = None
) -> None:
    """Show one administration in full.

    Its link, mail address (and earlier ones), users with access, workflows.
    """
    from basecone_migrate.services import overview

    cli = context.get(ctx, json=json, as_=as_)
    detail = overview.administration(cli.runtime, admin)
    cli.out.emit(detail, lambda: render_administration(cli, detail))


def render_administration(cli: context.CLI, d: dict[str, Any]) -> None:
    from basecone_migrate.cli.output import Column, human_size

    rows = [
        ("id", d["id"]),
        ("environment", f"{d['environment']} ({d['environment_name']})"),
        ("code", d["code"]),
        ("name", d["name"]),
        ("accounting system", f"{d['accounting_system']} ({d['accounting_system_name']}, {d['package']})"),
        ("e-mail", d["email"]),
        ("archive", f"{d['documents']} documents, {human_size(d['bytes'])}"),
        ("users with access", ", ".join(d["users"]) or "none"),
        ("workflows", "; ".join(f"{w['name']}: {', '.join(w['authorisers']) or 'no authorisers'}"
                                for w in d["workflows"]) or "none"),
    ]
    rows.append(("earlier addresses", ", ".join(d["aliases"]) or "none"))
    cli.out.table([Column(""), Column("", wrap=True)], rows,
                  title=f"Administration {d['environment']}/{d['code']}")


@archive_app.command("add")
def archive_add(
    ctx: typer.Context,
    admin: AdminArgument,
    files: Annotated[list[Path], typer.Argument(metavar="FILE...", readable=False,  # checked when read
                                                help="Files to archive.")],
    json: JsonOption = False,
    as_: AsOption = None,
) -> None:
    """Copy files into an administration's archive.

    Each is hashed while it is copied; identical content is kept once.
    """
    from basecone_migrate.cli.output import Column, human_size
    from basecone_migrate.services import archive

    cli = context.get(ctx, json=json, as_=as_)
    result = archive.add(cli.runtime, admin, files)
    rows = result["documents"]
    cli.out.emit(rows, lambda: cli.out.table(
        [Column("id", "right"), Column("file", wrap=True), Column("size", "right"), Column("sha256"),
         Column("", wrap=True)],
        [(r["id"], r["filename"], human_size(r["size"]), r["sha256"][:16] + "…",
          "added" if r["added"] else "already in the archive") for r in rows]))


@archive_app.command("list")
def archive_list(
    ctx: typer.Context, admin: AdminArgument, json: JsonOption = False, as_: AsOption = None
) -> None:
    """List the documents of an administration."""
    from basecone_migrate.cli.output import Column, human_size, when
    from basecone_migrate.services import archive

    cli = context.get(ctx, json=json, as_=as_)
    rows = archive.list_documents(cli.runtime, admin)
    cli.out.emit(rows, lambda: cli.out.table(
        [Column("id", "right"), Column("file", wrap=True), Column("size", "right"), Column("sha256"),
         Column("added (UTC)")],
        [(r["id"], r["filename"], human_size(r["size"]), r["sha256"], when(r["added_at"]))
         for r in rows], empty="the archive is empty"))


@archive_app.command("verify")
def archive_verify(
    ctx: typer.Context, admin: AdminArgument, json: JsonOption = False, as_: AsOption = None
) -> None:
    """Re-hash every stored document.

    Exit 1 when one is missing or different.
    """
    from basecone_migrate.errors import BaseconeError
    from basecone_migrate.services import archive

    cli = context.get(ctx, json=json, as_=as_)
    try:
        result = archive.verify(cli.runtime, admin)
    except BaseconeError as exc:
        damaged = exc.payload
        if damaged is not None:
            cli.out.emit(damaged, lambda: render_verify(cli, damaged))
        raise
    cli.out.emit(result, lambda: render_verify(cli, result))


def render_verify(cli: context.CLI, result: dict[str, Any]) -> None:
    problems = [(d["id"], d["filename"], "missing") for d in result["missing"]]
    problems += [(d["id"], d["filename"], "different bytes") for d in result["different"]]
    if problems:
        cli.out.table([("id", "right"), "file", "problem"], problems, title="Damaged documents")
    cli.out.line(f"{result['ok']} of {result['checked']} documents intact")


def demo(
    ctx: typer.Context,
    documents: Annotated[int, typer.Option(metavar="N", min=1, max=100_000, help="Documents to generate.")] = 300,
    workspace: Annotated[
        Path | None,
        typer.Option(metavar="DIR", help="Folder for the demo (default: a new temporary folder)."),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Run a whole migration in a demo workspace.

    The workspace is a folder of its own: your data is never touched.
    """
    from basecone_migrate.cli.demo import run_demo

    cli = context.get(ctx, json=json)
    run_demo(cli, documents, workspace)
