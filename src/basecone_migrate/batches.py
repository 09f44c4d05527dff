"""Batch files: many rows for one command (`link --from`, `offer --from`, `redeem --links`).

A batch is CSV or JSON lines, told apart by its first row (``{`` starts JSON lines):

- CSV: one row per line, the columns in the command's order (``admin,system,code``);
  a first row naming the columns is a header and is skipped; an empty field is left out.
- JSON lines: one object per line, keyed by the column names
  (``{"admin": "1001", "code": "7003"}``); other keys are ignored.

Blank lines and lines starting with ``#`` are skipped. ``-`` reads standard input. The
file is read a line at a time after the same checks as every input file (a FIFO or a
device is refused, never read), and reading stops at the first line too long for a row
or the first row past MAX_ROWS: memory holds the rows, never the file. Every malformed row
is named in one usage error.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from basecone_migrate.domain.text import printable, unstorable
from basecone_migrate.errors import UsageProblem
from basecone_migrate.files import UnreadableFile, open_regular

#: Rows per batch at most: a batch is one transaction.
MAX_ROWS = 10_000
#: Characters per line at most: a row is an id or a mail address and two short names.
MAX_LINE = 4096
#: Malformed rows named in the error at most (the rest are counted).
NAMED = 10


@dataclass(frozen=True)
class Row:
    line: int
    values: dict[str, str | None]

    def __getitem__(self, column: str) -> str | None:
        return self.values.get(column)


def read_rows(source: str, columns: tuple[str, ...], required: int, option: str) -> list[Row]:
    """The rows of a batch file (``-``: standard input); the first ``required`` columns
    must be given in every row."""
    rows: list[Row] = []
    problems: list[str] = []
    as_json: bool | None = None
    given = 0  # rows seen, malformed ones too
    with _lines(source, option) as lines:
        for number, line in lines:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            first = as_json is None
            if first:  # the first row tells CSV from JSON lines
                as_json = line.lstrip().startswith("{")
            try:
                values = _json_row(line, columns) if as_json else _csv_row(line, columns)
            except ValueError as exc:
                values = None
                problems.append(f"line {number}: {exc}")
            if first and values is not None and not as_json and _is_header(values, columns):
                continue
            given += 1
            if given > MAX_ROWS:
                raise UsageProblem(f"{option} {_name(source)} holds more than {MAX_ROWS} rows; split "
                                   f"it into batches of at most {MAX_ROWS}")
            if values is None:
                continue
            missing = [c for c in columns[:required] if not values.get(c)]
            if missing:
                problems.append(f"line {number}: no {' or '.join(missing)}")
                continue
            rows.append(Row(number, values))
    if problems:
        raise UsageProblem(f"{option} {_name(source)}: {len(problems)} malformed row(s), nothing "
                           f"changed: {summary(problems)} (expected {'CSV' if not as_json else 'JSON lines'} "
                           f"with {', '.join(columns)})")
    if not rows:
        raise UsageProblem(f"{option} {_name(source)} holds no rows")
    return rows


def summary(problems: Sequence[str]) -> str:
    """The first NAMED problems of a batch, joined, and how many more there are."""
    more = f"; and {len(problems) - NAMED} more" if len(problems) > NAMED else ""
    return "; ".join(problems[:NAMED]) + more


def _name(source: str) -> str:
    return "(standard input)" if source == "-" else printable(source)


@contextmanager
def _lines(source: str, option: str) -> Iterator[Iterator[tuple[int, str]]]:
    """(number, text) of each line, read as they are asked for (any line ending)."""
    try:
        binary = sys.stdin.buffer if source == "-" else open(open_regular(source), "rb")  # noqa: SIM115
    except UnreadableFile as exc:
        raise UsageProblem(f"{option} {_name(source)}: {exc.reason}") from None
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline=None)

    def lines() -> Iterator[tuple[int, str]]:
        number = 0
        while True:
            try:
                line = text.readline(MAX_LINE + 1)
            except UnicodeDecodeError:
                raise UsageProblem(f"{option} {_name(source)} is not UTF-8 text") from None
            except OSError as exc:
                raise UsageProblem(f"{option} {_name(source)}: {exc.strerror or exc}") from None
            if not line:
                return
            number += 1
            if len(line.rstrip("\n")) > MAX_LINE:
                raise UsageProblem(f"{option} {_name(source)}: line {number} is longer than {MAX_LINE} "
                                   "characters, more than any row needs")
            problem = unstorable(line)
            if problem is not None:
                raise UsageProblem(f"{option} {_name(source)}: {problem}")
            yield number, line.rstrip("\n")

    try:
        yield lines()
    finally:
        if source == "-":
            text.detach()  # standard input stays open for whoever reads it next
        else:
            text.close()


def _csv_row(line: str, columns: tuple[str, ...]) -> dict[str, str | None]:
    try:
        [fields] = list(csv.reader(io.StringIO(line), strict=True))
    except (csv.Error, ValueError) as exc:
        raise ValueError(f"not CSV ({exc})") from None
    if len(fields) > len(columns):
        raise ValueError(f"{len(fields)} fields, at most {len(columns)} ({', '.join(columns)})")
    return {c: (f.strip() or None) for c, f in zip(columns, fields, strict=False)}


def _json_row(line: str, columns: tuple[str, ...]) -> dict[str, str | None]:
    try:
        found = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg})") from None
    except RecursionError:
        raise ValueError("not JSON (nested too deeply)") from None
    if not isinstance(found, dict):
        raise ValueError("not a JSON object")
    values: dict[str, str | None] = {}
    for column in columns:
        value = found.get(column)
        if value is not None and not isinstance(value, (str, int)) or isinstance(value, bool):
            raise ValueError(f"{column} must be a string")
        values[column] = str(value).strip() or None if value is not None else None
    return values


def _is_header(values: dict[str, str | None], columns: tuple[str, ...]) -> bool:
    given = [(values.get(c) or "").lower() for c in columns if values.get(c)]
    return bool(given) and all(value in columns for value in given)
