"""SQL that both databases need and SQLAlchemy does not spell in one form."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Integer, String, any_, bindparam, cast, func, select


def dialect_of(db: Any) -> str:
    """The database a Core connection or an ORM session talks to."""
    bind = db.get_bind() if hasattr(db, "get_bind") else db
    return str(bind.dialect.name)


def among(db: Any, column: Any, ids: Sequence[int]) -> Any:
    """``column IN (ids)`` with the ids as one bound value, whatever their count: a
    PostgreSQL array (``= ANY``), a JSON array on SQLite (``json_each``). An IN list of
    thousands of ids costs more to render, send and parse than the statement costs to run
    (`expire` works in groups of 5,000). On PostgreSQL the array travels as its text form,
    ``{1,2,3}``, cast on the server: psycopg's list dumper costs about 160 ms per 5,000 ids
    on the client, the join below a millisecond."""
    values = [int(i) for i in ids]
    if dialect_of(db) == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        text_form = "{" + ",".join(map(str, values)) + "}"
        return column == any_(cast(bindparam(None, text_form, type_=String()), ARRAY(Integer())))
    listed = func.json_each(bindparam(None, json.dumps(values), type_=String())).table_valued("value")
    return column.in_(select(listed.c.value))
