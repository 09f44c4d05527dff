"""Rendering: JSON for scripts, Rich tables for people; data on stdout, messages on stderr.

Under ``--json`` stdout carries exactly one JSON document. Without a terminal, or with
``NO_COLOR`` set, output is plain: no colours, no animation, and tables as columns of
text separated by two spaces, without box drawing and without trailing spaces (easy to
`grep` and `awk`). ``--quiet`` keeps stdout and the notes on stderr silent; warnings and
errors still go to stderr.

Text from a world file, a batch or an option reaches the terminal only as text: every cell,
line, note and title goes through `domain.text` (control characters shown as ``\\x1b``,
never sent) and reaches Rich as a ``Text``, never parsed as markup (``[link=...]``) or
emoji codes.
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
    from rich.text import Text


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


def shown(text: str) -> Text:
    """Text for Rich that it prints as it is: no markup, no emoji codes, no control characters."""
    from rich.text import Text

    from basecone_migrate.domain.text import visible

    return Text(visible(text))


def cell(value: Any) -> str:
    """A table cell: one line, its control characters shown escaped."""
    from basecone_migrate.domain.text import one_line

    return "" if value is None else one_line(str(value))


def plain(stream: Any) -> bool:
    """Plain text for this stream: not a terminal, or NO_COLOR set (https://no-color.org)."""
    return not stream.isatty() or bool(os.environ.get("NO_COLOR"))


def plain_table(columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[str]],
                title: str | None) -> str:
    """Columns of text, two spaces apart, right-aligned where asked, no trailing spaces."""
    header = any(name for name, _ in columns)
    lines = [[name for name, _ in columns]] if header else []
    lines += [list(row) for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
    text = [title] if title else []
    for line in lines:
        cells = [cell.rjust(width) if justify == "right" else cell.ljust(width)
                 for cell, width, (_, justify) in zip(line, widths, columns, strict=True)]
        text.append("  ".join(cells).rstrip())
    return "\n".join(text) + "\n"


class Output:
    def __init__(self, json_mode: bool, quiet: bool = False, no_input: bool = False) -> None:
        self.json_mode = json_mode
        self.quiet = quiet
        self.no_input = no_input

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

    def emit(self, payload: Any, render: Callable[[], None],
             essential: Callable[[], None] | None = None) -> None:
        """The result: one JSON document, or the rendering for a person; with --quiet only
        what must not be lost (``essential``: the transfercode of an offer)."""
        if self.json_mode:
            sys.stdout.write(to_json(payload) + "\n")
            sys.stdout.flush()
        elif not self.quiet:
            render()
        elif essential is not None:
            essential()

    def print(self, *renderables: Any) -> None:
        self.console.print(*renderables)

    def line(self, text: str, essential: bool = False) -> None:
        """A plain line on stdout, never interpreted as markup."""
        if self.quiet and not essential:
            return
        if plain(sys.stdout):
            from basecone_migrate.domain.text import visible

            sys.stdout.write(visible(text) + "\n")
            sys.stdout.flush()
        else:
            self.console.print(shown(text))

    def note(self, text: str) -> None:
        """A message for the person (stderr); silent under --json and --quiet."""
        if not (self.json_mode or self.quiet):
            self.err_console.print(shown(text))

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
        rows = list(rows)
        if not rows:
            self.note(f"({empty})")
            return None
        if self.quiet:
            return None
        if plain(sys.stdout):
            named = [c if isinstance(c, tuple) else (c, "left") for c in columns]
            cells = [[cell(value) for value in row] for row in rows]
            sys.stdout.write(plain_table(named, cells, cell(title) if title else None))
            sys.stdout.flush()
            return None
        from rich import box
        from rich.table import Table
        from rich.text import Text

        header = any(c[0] if isinstance(c, tuple) else c for c in columns)
        table = Table(title=Text(cell(title)) if title else None,
                      box=box.SIMPLE_HEAD if header else box.SIMPLE, show_header=header,
                      title_justify="left", pad_edge=False)
        for column in columns:
            name, justify = column if isinstance(column, tuple) else (column, "left")
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        for row in rows:
            table.add_row(*(Text(cell(value)) for value in row))
        self.console.print(table)
        return table
