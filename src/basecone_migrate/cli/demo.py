"""`demo`: a workspace of its own where a whole migration runs, without touching the user's data.

Sue (Superuser of ACME) offers two administrations to Tina (Superuser of BOOK); the
mail is written to the workspace's outbox; Tina redeems, linking one automatically
and giving the other a new code (kind 4); the archives move with progress bars.
"""

from __future__ import annotations

import email
import email.policy
import tempfile
from pathlib import Path
from typing import Any

from basecone_migrate.cli.context import CLI
from basecone_migrate.errors import UsageProblem
from basecone_migrate.settings import Settings


def demo_settings(cli: CLI, folder: Path, user: str = "") -> Settings:
    return cli.settings.overridden(
        "demo",
        data_dir=folder,
        db=f"sqlite:///{folder / 'basecone-migrate.db'}",
        storage=str(folder / "archive"),
        smtp_host="",  # mails become .eml files in the workspace, never real mail
        user=user,
        now="",
    )


def _workspace(workspace: Path | None) -> Path:
    if workspace is None:
        return Path(tempfile.mkdtemp(prefix="basecone-demo-")).resolve()
    folder = workspace.expanduser().resolve()
    if folder.exists() and any(folder.iterdir()):
        raise UsageProblem(f"{folder} is not empty: give --workspace a new or empty folder")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def run_demo(cli: CLI, documents: int, workspace: Path | None) -> None:
    from basecone_migrate.cli.output import Column, code_tail
    from basecone_migrate.cli.progress import progress_for
    from basecone_migrate.cli.render import (
        render_administrations,
        render_items,
        render_status,
        report,
    )
    from basecone_migrate.runtime import Runtime
    from basecone_migrate.services import demo, overview
    from basecone_migrate.services.migrations import offers, receiving
    from basecone_migrate.services.migrations import overview as migration_views
    from basecone_migrate.services.world import load_world

    folder = _workspace(workspace)
    out = cli.out
    sue, tina = (Runtime(demo_settings(cli, folder, user)) for user in (demo.SENDER, demo.RECEIVER))
    summary: dict[str, Any] = {"workspace": str(folder)}

    def step(title: str) -> None:
        if not out.json_mode:
            out.print()
            out.print(f"[bold]{title}[/bold]")

    try:
        out.note(f"Demo workspace: {folder}")
        step("1. Load a world: three offices, connections of several packages, documents")
        world = demo.write_world(folder / "world", documents)
        summary["load"], _ = load_world(sue, world)
        summary["environments"] = overview.environments_list(sue)
        if not out.json_mode:
            render_administrations(cli, overview.administrations_list(sue), "Administrations")

        step("2. Sue (Superuser of ACME) offers 1001 and 1002 to Tina (Superuser of BOOK)")
        offered = offers.offer(sue, ["1001", "1002"], [demo.RECEIVER], accept_terms=True,
                                   confirm_checklist=True)
        summary["offer"] = offered.payload
        if not out.json_mode:
            out.line(f"Transfercode: {offered.payload['transfercode']}")
        report(cli, offered)

        step("3. The mail Tina receives")
        [path] = offered.delivery.written
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        summary["mail"] = str(path)
        if not out.json_mode:
            out.line(f"To: {message['To']}   Cc: {message['Cc']}   Subject: {message['Subject']}")
            out.line(message.get_body(preferencelist=("plain",)).get_content())

        step("4. Tina redeems: 1001 links itself, 1002 moves to code B-1002 (kind 4)")
        bars, progress = progress_for(out)
        with bars:
            redeemed = receiving.redeem(tina, offered.payload["transfercode"], accept_terms=True,
                                         links=[("1002", "book-tw", "B-1002")], progress=progress)
        summary["redeem"] = redeemed.payload
        report(cli, redeemed)
        if not out.json_mode:
            render_items(cli, redeemed.payload["items"], "Moved")

        step("5. The migration overview of each side, and the transfer status")
        summary["sender_overview"] = migration_views.list_migrations(sue, received=False)
        summary["receiver_overview"] = migration_views.list_migrations(tina, offered=False)
        summary["status"] = migration_views.status(sue, redeemed.payload["migration_id"])
        if not out.json_mode:
            out.table([Column("administration", wrap=True), Column("e-mail"), Column("code"),
                       Column("status")],
                      [(r["administration"], r["administration_email"], code_tail(r["transfercode_hint"]),
                        r["status"]) for r in summary["sender_overview"]["offered"]],
                      title="ACME: offered")
            out.table([Column("administration", wrap=True), Column("accounting system"), Column("status")],
                      [(r["administration"], r["accounting_system"], r["status"])
                       for r in summary["receiver_overview"]["received"]], title="BOOK: received")
            render_status(cli, [summary["status"]])
            render_administrations(cli, overview.administrations_list(sue), "Administrations afterwards")
            out.line("Explore it yourself:")
            for line in explore_lines(folder):
                out.line(f"  {line}")
    finally:
        sue.close()
        tina.close()
    if out.json_mode:
        out.emit(summary, lambda: None)


def explore_lines(folder: Path) -> list[str]:
    """Shell lines that point a shell at the demo's workspace, with the program this demo
    runs from on the PATH when its bare name would not find it (a virtual environment that
    is not activated)."""
    import shlex
    import shutil
    import sys

    from basecone_migrate.services import demo

    lines = []
    bin_dir = Path(sys.executable).parent  # the venv's bin/, not where its python links to
    script = bin_dir / "basecone-migrate"
    found = shutil.which("basecone-migrate")
    if not script.is_file():
        lines.append(f"alias basecone-migrate={shlex.quote(f'{sys.executable} -m basecone_migrate')}")
    elif found is None or Path(found).resolve() != script.resolve():
        lines.append(f'export PATH={shlex.quote(str(bin_dir))}:"$PATH"')
    database = folder / "basecone-migrate.db"
    lines += [f"export BASECONE_MIGRATE_DB={shlex.quote(f'sqlite:///{database}')}",
              f"export BASECONE_MIGRATE_STORAGE={shlex.quote(str(folder / 'archive'))}",
              f"basecone-migrate --as {demo.RECEIVER} access grant --migration 1 --user uma@bookwise.example"]
    return lines
