"""`status MIGRATION --watch`: a live table of a transfer until nothing of it is running or
queued any more (a Rich live display at a terminal; otherwise, quietly, the final state)."""

from __future__ import annotations

import time
from typing import Any

from basecone_migrate.cli.context import CLI
from basecone_migrate.cli.output import cell, human_size
from basecone_migrate.domain.lifecycle import ItemStatus

#: Weight of the newest sample in each administration's speed (an exponential average).
SMOOTHING = 0.5


class Speeds:
    """Bytes per second per administration, from the bytes done at successive samples."""

    def __init__(self) -> None:
        self.last: dict[int, tuple[float, int]] = {}
        self.speed: dict[int, float] = {}

    def sample(self, view: dict[str, Any], at: float) -> None:
        for item in view["items"]:
            key, done = item["administration_id"], item["bytes_done"]
            before = self.last.get(key)
            if before is not None and at > before[0] and item["status"] == ItemStatus.IN_PROGRESS:
                current = max(0.0, (done - before[1]) / (at - before[0]))
                old = self.speed.get(key)
                self.speed[key] = current if old is None else SMOOTHING * current + (1 - SMOOTHING) * old
            self.last[key] = (at, done)

    def describe(self, item: dict[str, Any]) -> tuple[str, str]:
        """(speed, time left) as the table shows them."""
        speed = self.speed.get(item["administration_id"])
        if item["status"] != ItemStatus.IN_PROGRESS or not speed:
            return "", ""
        left = max(0, item["bytes_total"] - item["bytes_done"]) / speed
        return f"{human_size(speed)}/s", f"{int(left // 60)}:{int(left % 60):02d}"


def finished(view: dict[str, Any]) -> bool:
    """Nothing left to wait for: no administration in progress that a process runs or a
    job waits to run (one that nothing runs waits for `resume`, not for time)."""
    return not any(item["status"] == ItemStatus.IN_PROGRESS and item.get("running") in ("running", "queued")
                   for item in view["items"])


def stalled(view: dict[str, Any]) -> list[dict[str, Any]]:
    """Administrations in progress or failed that no process runs and no job waits for."""
    return [item for item in view["items"] if item.get("running") == "not_running"]


def activity(item: dict[str, Any], migration_id: int) -> str:
    """What runs an administration's transfer, as the tables say it."""
    running = item.get("running")
    if item.get("status") == ItemStatus.PAUSED:
        return f"paused: resume {migration_id}"
    if item.get("status") == ItemStatus.SCHEDULED and running == "queued" and item.get("scheduled_for"):
        return f"scheduled for {item['scheduled_for']:%Y-%m-%d %H:%M} UTC"
    if running == "running":
        return f"running on {item['running_on']}" if item.get("running_on") else "running"
    if running == "queued":
        return "queued for a worker"
    if running == "not_running":
        gone = f" ({item['worker']} is gone)" if item.get("worker") else ""
        return f"not running{gone}: resume {migration_id}"
    return item.get("worker") or ""


def table(view: dict[str, Any], speeds: Speeds) -> Any:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    running = " (transfer running)" if view["transfer_running"] else ""
    result = Table(title=Text(cell(f"Migration {view['migration_id']}: {view['source_environment']} -> "
                                   f"{view['target_environment'] or '?'}, {view['status']}{running}")),
                   box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
    for name, justify in (("id", "right"), ("administration", "left"), ("status", "left"),
                          ("documents", "right"), ("bytes", "right"), ("speed", "right"),
                          ("left", "right"), ("worker", "left"), ("error", "left")):
        result.add_column(name, justify=justify)  # type: ignore[arg-type]
    for item in view["items"]:
        speed, left = speeds.describe(item)
        result.add_row(*(Text(cell(value)) for value in (
            item["administration_id"], item["administration"], item["status"],
            f"{item['documents_done']}/{item['documents_total']}",
            f"{human_size(item['bytes_done'])}/{human_size(item['bytes_total'])}",
            speed, left, activity(item, view["migration_id"]), item["error"])))
    return result


def watch_status(cli: CLI, migration_id: int, interval: float) -> tuple[dict[str, Any], bool]:
    """Poll the migration's status until no administration is in progress; returns the last
    view and whether a live table already shows it."""
    from basecone_migrate.services.migrations import overview

    speeds = Speeds()

    def view() -> dict[str, Any]:
        current: dict[str, Any] = overview.status(cli.runtime, migration_id)
        speeds.sample(current, time.monotonic())
        return current

    current = view()
    if cli.out.json_mode or not cli.out.console.is_terminal:
        while not finished(current):
            time.sleep(interval)
            current = view()
        return current, False
    from rich.live import Live

    with Live(table(current, speeds), console=cli.out.console, auto_refresh=False) as live:
        while not finished(current):
            time.sleep(interval)
            current = view()
            live.update(table(current, speeds), refresh=True)
    return current, True
