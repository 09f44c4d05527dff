"""Batch files: many rows for one command (`link --from`, `offer --from`, `redeem --links`).

A batch is CSV or JSON lines, told apart by its first row (``{`` starts JSON lines):

- CSV: one row per line, the columns in the command's order (``admin,system,code``);
  a first row naming the columns is a header and is skipped; an empty field is left out.
- JSON lines: one object per line, keyed by the column names
  (``{"admin": "1001", "code": "7003"}``); other keys are ignored.

Blank lines and lines starting with ``#`` are skipped. ``-`` reads standard input. The
file is read whole (a batch is small) after the same checks as every input file: a FIFO
or a device is refused, never read. Every malformed row is named in one usage error.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from basecone_migrate.domain.text import printable, unstorable
from basecone_migrate.errors import UsageProblem
from basecone_migrate.files import UnreadableFile, read_regular

#: Rows per batch at most: a batch is one transaction.
MAX_ROWS = 10_000
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
    text = _text(source, option)
    rows: list[Row] = []
    problems: list[str] = []
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1)
             if line.strip() and not line.lstrip().startswith("#")]
    as_json = bool(lines) and lines[0][1].lstrip().startswith("{")
    for position, (number, line) in enumerate(lines):
        try:
            values = _json_row(line, columns) if as_json else _csv_row(line, columns)
        except ValueError as exc:
            problems.append(f"line {number}: {exc}")
            continue
        if position == 0 and not as_json and _is_header(values, columns):
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
    if len(rows) > MAX_ROWS:
        raise UsageProblem(f"{option} {_name(source)} holds {len(rows)} rows; split it into batches "
                           f"of at most {MAX_ROWS}")
    return rows


def summary(problems: Sequence[str]) -> str:
    """The first NAMED problems of a batch, joined, and how many more there are."""
    more = f"; and {len(problems) - NAMED} more" if len(problems) > NAMED else ""
    return "; ".join(problems[:NAMED]) + more


def _name(source: str) -> str:
    return "(standard input)" if source == "-" else printable(source)


def _text(source: str, option: str) -> str:
    try:
        data = sys.stdin.buffer.read() if source == "-" else read_regular(source)
    except UnreadableFile as exc:
        raise UsageProblem(f"{option} {_name(source)}: {exc.reason}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UsageProblem(f"{option} {_name(source)} is not UTF-8 text") from None
    problem = unstorable(text.replace("\n", " ").replace("\r", " ").replace("\t", " "))
    if problem is not None:
        raise UsageProblem(f"{option} {_name(source)}: {problem}")
    return text


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
