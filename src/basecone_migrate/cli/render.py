"""Tables and notes more than one command group shows (the demo shows them all): a module
of its own, so that command modules never import one another."""

from typing import TYPE_CHECKING, Any

from basecone_migrate.cli.context import CLI

if TYPE_CHECKING:
    from basecone_migrate.mail import Delivery
    from basecone_migrate.services.migrations.common import Outcome


def report(cli: CLI, outcome: "Outcome") -> None:
    """Warnings and where the mails went, on stderr."""
    for warning in outcome.warnings:
        cli.out.warn(warning)
    report_delivery(cli, outcome.delivery)


def report_delivery(cli: CLI, delivery: "Delivery") -> None:
    """Where the mails went, and what could not be delivered (it stays queued)."""
    for path in delivery.written:
        cli.out.note(f"Mail written to {path} (no SMTP host set)")
    errors = sorted(set(delivery.failed.values()) | ({delivery.trouble} if delivery.trouble else set()))
    if not errors:
        return
    cli.out.warn(f"{len(delivery.failed)} mail(s) could not be sent ({'; '.join(errors)}): they "
                 "stay queued; retry with `basecone-migrate mail flush`")


def render_items(cli: CLI, items: list[dict[str, Any]], title: str) -> None:
    from basecone_migrate.cli.output import Column, human_size

    cli.out.table(
        [Column("id", "right"), Column("administration", wrap=True), Column("status"),
         Column("accounting system"), Column("code"), Column("e-mail"), Column("docs", "right"),
         Column("size", "right")],
        [(i["administration_id"],
          f"{i['administration']} (was {i['renamed_from']})" if i.get("renamed_from") else i["administration"],
          _action(i),
          i["accounting_system"], i["code"], i["email"], i["documents"], human_size(i["bytes"]))
         for i in items], title=title)


def _action(item: dict[str, Any]) -> str:
    """What a dry run would do to an item (and when a scheduled start is), or its status."""
    from basecone_migrate.cli.output import when

    if not item.get("action"):
        return str(item["status"])
    if item.get("scheduled_for"):
        return f"{item['action']}, starts {when(item['scheduled_for'])} UTC"
    return str(item["action"])


def render_status(cli: CLI, views: list[dict[str, Any]], hint: bool = True) -> None:
    from basecone_migrate.cli.output import Column, human_size, when
    from basecone_migrate.cli.watch import activity, stalled

    if not views:
        cli.out.note("(no migrations)")
    for v in views:
        running = " (transfer running)" if v["transfer_running"] else ""
        target = v["target_environment"] or "?"
        cli.out.table(
            [Column("id", "right"), Column("administration", wrap=True), Column("status"),
             Column("documents", "right"), Column("bytes", "right"), Column("started (UTC)"),
             Column("seconds", "right"), Column("worker"), Column("error", wrap=True)],
            [(i["administration_id"], i["administration"], i["status"],
              f"{i['documents_done']}/{i['documents_total']}",
              f"{human_size(i['bytes_done'])}/{human_size(i['bytes_total'])}",
              when(i["started_at"]), i["seconds"], activity(i, v["migration_id"]), i["error"])
             for i in v["items"]],
            title=f"Migration {v['migration_id']}: {v['source_environment']} -> {target}, "
                  f"{v['status']}{running}")
        if hint and stalled(v):
            cli.out.note(f"Nothing runs {len(stalled(v))} unfinished administration(s) of migration "
                         f"{v['migration_id']}: run `basecone-migrate resume {v['migration_id']}`")


def render_administrations(cli: CLI, rows: list[dict[str, Any]], title: str) -> None:
    from basecone_migrate.cli.output import Column, human_size

    cli.out.table(
        [Column("id", "right"), Column("office"), Column("code"), Column("name", wrap=True),
         Column("e-mail", below=True), Column("accounting system"), Column("package"),
         Column("docs", "right"), Column("size", "right")],
        [(r["id"], r["environment"], r["code"], r["name"], r["email"], r["accounting_system"],
          r["package"], r["documents"], human_size(r["bytes"])) for r in rows],
        title=title, empty="no administrations")
