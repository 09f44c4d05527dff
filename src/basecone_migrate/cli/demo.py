"""`demo`: a workspace of its own, loaded and shown, without touching the user's data."""

from __future__ import annotations

import tempfile
from pathlib import Path

from basecone_migrate.cli.context import CLI
from basecone_migrate.errors import UsageProblem


def demo_settings(cli: CLI, folder: Path):  # noqa: ANN201 - Settings
    return cli.settings.overridden(
        "demo",
        data_dir=folder,
        db=f"sqlite:///{folder / 'basecone-migrate.db'}",
        storage=str(folder / "archive"),
        smtp_host="",  # mails become .eml files in the workspace, never real mail
        user="",
    )


def run_demo(cli: CLI, documents: int, workspace: Path | None) -> None:
    from basecone_migrate.cli.setup import render_administrations
    from basecone_migrate.runtime import Runtime
    from basecone_migrate.services import demo, overview
    from basecone_migrate.services.world import load_world

    if workspace is not None:
        folder = workspace.expanduser().resolve()
        if folder.exists() and any(folder.iterdir()):
            raise UsageProblem(f"{folder} is not empty: give --workspace a new or empty folder")
        folder.mkdir(parents=True, exist_ok=True)
    else:
        folder = Path(tempfile.mkdtemp(prefix="basecone-demo-")).resolve()

    out = cli.out
    rt = Runtime(demo_settings(cli, folder))
    try:
        out.note(f"Demo workspace: {folder}")
        world = demo.write_world(folder / "world", documents)
        report = load_world(rt, world)
        envs = overview.environments(rt)
        admins = overview.administrations(rt)
    finally:
        rt.close()

    def render() -> None:
        from basecone_migrate.cli.output import human_size

        docs = report["documents"]
        out.line(f"Loaded {world}: {docs['added']} documents archived.")
        out.table(
            ["office", "name", "plan", ("admins", "right"), ("documents", "right"), ("size", "right")],
            [(e["code"], e["name"], e["plan"], e["administrations"], e["documents"],
              human_size(e["bytes"])) for e in envs],
            title="Environments")
        render_administrations(cli, admins, "Administrations")
        out.line("Explore it yourself:")
        out.line(f"  export BASECONE_MIGRATE_DB=sqlite:///{folder / 'basecone-migrate.db'}")
        out.line(f"  export BASECONE_MIGRATE_STORAGE={folder / 'archive'}")
        out.line("  basecone-migrate admin list")

    out.emit({"workspace": str(folder), "load": report, "environments": envs,
              "administrations": admins}, render)
