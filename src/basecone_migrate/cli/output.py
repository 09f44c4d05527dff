"""Rendering: JSON for scripts, Rich tables for people; data on stdout, messages on stderr.

Under ``--json`` stdout carries exactly one JSON document. Without a terminal there
are no colours and no animation (Rich decides from the stream; ``NO_COLOR`` is
honoured), and tables are not squeezed into 80 columns.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"cannot put {type(value).__name__} in JSON")


def to_json(payload: Any) -> str:
    return json.dumps(payload, default=_default, indent=2, ensure_ascii=False)


def human_size(size: int | float) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"  # pragma: no cover


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else ""


def _console(stderr: bool) -> Console:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    is_terminal = stream.isatty()
    width = None if is_terminal or "COLUMNS" in os.environ else 1000
    return Console(file=stream, highlight=False, soft_wrap=False, width=width)


class Output:
    def __init__(self, json_mode: bool) -> None:
        self.json_mode = json_mode

    @cached_property
    def console(self) -> Console:
        return _console(stderr=False)

    @cached_property
    def err_console(self) -> Console:
        return _console(stderr=True)

    @property
    def interactive(self) -> bool:
        """Progress bars and prompts only for a person at a terminal."""
        return not self.json_mode and sys.stderr.isatty()

    def emit(self, payload: Any, render: Callable[[], None]) -> None:
        if self.json_mode:
            sys.stdout.write(to_json(payload) + "\n")
            sys.stdout.flush()
        else:
            render()

    def print(self, *renderables: Any) -> None:
        self.console.print(*renderables)

    def line(self, text: str) -> None:
        """A plain line on stdout, never interpreted as markup."""
        self.console.print(text, markup=False)

    def note(self, text: str) -> None:
        """A message for the person (stderr); silent under --json."""
        if not self.json_mode:
            self.err_console.print(text, markup=False)

    def warn(self, text: str) -> None:
        from basecone_migrate.domain.text import one_line

        sys.stderr.write(f"Warning: {one_line(text)}\n")
        sys.stderr.flush()

    def table(
        self,
        columns: Sequence[str | tuple[str, str]],
        rows: Iterable[Sequence[Any]],
        title: str | None = None,
        empty: str = "nothing to show",
    ) -> Table | None:
        from rich import box
        from rich.table import Table

        rows = list(rows)
        if not rows:
            self.note(f"({empty})")
            return None
        header = any(c[0] if isinstance(c, tuple) else c for c in columns)
        table = Table(title=title, box=box.SIMPLE_HEAD if header else box.SIMPLE, show_header=header,
                      title_justify="left", pad_edge=False)
        for column in columns:
            name, justify = column if isinstance(column, tuple) else (column, "left")
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        for row in rows:
            table.add_row(*("" if cell is None else str(cell) for cell in row))
        self.console.print(table)
        return table
