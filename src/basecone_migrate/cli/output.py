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
from dataclasses import dataclass
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


def to_json(payload: Any, compact: bool = False) -> str:
    """JSON as UTF-8 text, in which no character a terminal acts on appears raw: besides the
    C0 controls JSON always escapes, C1 controls (U+009B is CSI), bidirectional overrides and
    line separators are written as ``\\uXXXX`` escapes (the same string to any decoder)."""
    from basecone_migrate.domain.text import json_safe

    if compact:  # one line, no spaces between items
        return json_safe(json.dumps(payload, default=_default, separators=(",", ":"), ensure_ascii=False))
    return json_safe(json.dumps(payload, default=_default, indent=2, ensure_ascii=False))


def human_size(size: float) -> str:
    """Decimal units (1 kB = 1,000 bytes), exactly as the progress bars count (Rich's
    DownloadColumn and TransferSpeedColumn): one archive shows one size everywhere."""
    from rich.filesize import decimal

    return decimal(int(size))


def when(value: datetime | None) -> str:
    """A time for a table, to the minute; the tables say the times are UTC."""
    return value.strftime("%Y-%m-%d %H:%M") if value else ""


def day(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d") if value else ""


def code_tail(hint: str) -> str:
    """A transfercode hint for a table: its last group, the only part that tells codes
    apart (``****-****-****-****-7QX2`` -> ``…7QX2``)."""
    return "…" + hint.rsplit("-", 1)[-1] if hint else ""


@dataclass(frozen=True)
class Column:
    """A column of a table for people.

    At a terminal a column is never cut: a ``wrap`` column (free text: names, subjects,
    errors) breaks between words (a word longer than FOLD_AT over lines), any other (codes,
    addresses, times, numbers) is never broken at all. ``below``: at a terminal the value
    goes under the previous column's, in its cell (an address under a name); without a
    terminal it stays a column of its own. A column given as a bare name, or as ``(name,
    justify)``, is free text.
    """

    name: str
    justify: str = "left"
    wrap: bool = False
    below: bool = False


def _column(spec: str | tuple[str, str] | Column) -> Column:
    if isinstance(spec, Column):
        return spec
    if isinstance(spec, tuple):
        return Column(spec[0], spec[1], wrap=True)
    return Column(spec, wrap=True)


#: A word of free text longer than this (a path, a long token) may be broken over lines.
FOLD_AT = 24


def _widths(header: str, texts: Sequence[str], wrap: bool) -> tuple[int, int]:
    """(narrowest, widest) a column may be without cutting a value: a free-text value and
    the header may break between words, any other value is never broken."""
    from rich.cells import cell_len

    def longest(texts: Iterable[str], unit: Callable[[str], list[str]]) -> int:
        return max((cell_len(part) for text in texts for part in unit(text)), default=0)

    lines = longest(texts, lambda text: text.split("\n"))
    words = min(longest(texts, str.split), FOLD_AT) if wrap else lines
    return max(words, longest([header], str.split)), max(lines, cell_len(header))


def _cell(value: Any, flat: bool) -> str:
    """A cell's text, each item on one line with its control characters shown escaped; a
    list is one item per line at a terminal, comma-separated otherwise."""
    if isinstance(value, (list, tuple)):
        return (", " if flat else "\n").join(cell(item) for item in value)
    return cell(value)


def fit(ranges: Sequence[tuple[int, int]], room: int) -> list[int] | None:
    """Column widths that fit ``room``: each at most its widest, the wide ones shortened
    first, none below its narrowest; None when even the narrowest do not fit."""
    if sum(low for low, _ in ranges) > room:
        return None
    if sum(high for _, high in ranges) <= room:
        return [high for _, high in ranges]
    low_cap, high_cap = 0, max(high for _, high in ranges)
    while low_cap < high_cap:  # the largest cap on a column's width that still fits
        cap = (low_cap + high_cap + 1) // 2
        if sum(max(low, min(high, cap)) for low, high in ranges) <= room:
            low_cap = cap
        else:
            high_cap = cap - 1
    return [max(low, min(high, low_cap)) for low, high in ranges]


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


def _say(text: str, stream: Any, console: Callable[[], Console]) -> None:
    """One line of text: off a terminal written as it is (never wrapped), at one through Rich;
    in both, shown and never acted on (`domain.text.visible`)."""
    if plain(stream):
        from basecone_migrate.domain.text import visible

        stream.write(visible(text) + "\n")
        stream.flush()
    else:
        console().print(shown(text))


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
        _say(text, sys.stdout, lambda: self.console)

    def note(self, text: str) -> None:
        """A message for the person (stderr); silent under --json and --quiet. Off a terminal
        one line stays one line, however long (a log is read by grep, not by eye)."""
        if self.json_mode or self.quiet:
            return
        _say(text, sys.stderr, lambda: self.err_console)

    def warn(self, text: str) -> None:
        from basecone_migrate.domain.text import one_line

        sys.stderr.write(f"Warning: {one_line(text)}\n")
        sys.stderr.flush()

    @property
    def to_terminal(self) -> bool:
        """stdout is a terminal (a person reads it), coloured or not."""
        return sys.stdout.isatty()

    def table(
        self,
        columns: Sequence[str | tuple[str, str] | Column],
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
        specs = [_column(c) for c in columns]
        flat = plain(sys.stdout)
        cells = [[_cell(value, flat) for value in row] for row in rows]
        title = cell(title) if title else None
        if flat:
            named = [(c.name, c.justify) for c in specs]
            sys.stdout.write(plain_table(named, cells, title))
            sys.stdout.flush()
            return None
        return self._rich_table(specs, cells, title)

    def _rich_table(self, specs: list[Column], cells: list[list[str]],
                    title: str | None) -> Table | None:
        """A table that fits the terminal without cutting a value; when even its narrowest
        layout does not fit, one record per row (``name: value`` lines) instead."""
        from rich import box
        from rich.table import Table
        from rich.text import Text

        groups: list[list[int]] = []  # the columns shown in one: a `below` one joins the last
        for n, spec in enumerate(specs):
            if spec.below and groups:
                groups[-1].append(n)
            else:
                groups.append([n])
        ranges = []
        for group in groups:
            parts = [_widths(specs[n].name, [row[n] for row in cells], specs[n].wrap) for n in group]
            ranges.append((max(low for low, _ in parts), max(high for _, high in parts)))
        widths = fit(ranges, self.console.width - 2 * (len(groups) - 1))  # 2: padding, divider
        if widths is None:
            self._records(specs, cells, title)
            return None
        header = any(spec.name for spec in specs)
        table = Table(title=Text(title) if title else None, box=box.SIMPLE_HEAD if header else box.SIMPLE, show_header=header,
                      title_justify="left", pad_edge=False, show_edge=False, collapse_padding=True)
        for group, width in zip(groups, widths, strict=True):
            name = Text("\n".join(specs[n].name for n in group), no_wrap=False)  # a header may wrap
            table.add_column(name, justify=specs[group[0]].justify,  # type: ignore[arg-type]
                             width=width, no_wrap=not any(specs[n].wrap for n in group),
                             overflow="fold")
        for row in cells:
            table.add_row(*(Text("\n".join(row[n] for n in group if row[n])) for group in groups))
        self.console.print(table)
        return table

    def _records(self, specs: list[Column], cells: list[list[str]], title: str | None) -> None:
        """Rows too wide for the terminal: each as ``name: value`` lines (a long value wraps
        onto the next line, nothing is cut)."""
        from rich.table import Table
        from rich.text import Text

        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True)
        grid.add_column(overflow="fold")
        for number, row in enumerate(cells):
            if number:
                grid.add_row("", "")
            for spec, value in zip(specs, row, strict=True):
                if value:
                    grid.add_row(Text(f"{spec.name}:" if spec.name else ""), Text(value))
        if title:
            self.console.print(Text(title))
        self.console.print(grid)
