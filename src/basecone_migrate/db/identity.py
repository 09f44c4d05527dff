"""The database's identity: a random UUID in its one-row ``database_identity`` table, made
by revision 0008, or again by the first process that needs it should the row be gone (two
at once: one INSERT wins, both read the same)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from basecone_migrate.db.tables import database_identity


def identity_of(engine: Engine) -> str:
    query = select(database_identity.c.identity).where(database_identity.c.id == 1)
    with engine.connect() as connection:
        found = connection.execute(query).scalar()
        connection.rollback()
    if found is not None:
        return str(found)
    try:
        with engine.begin() as connection:
            connection.execute(insert(database_identity).values(
                id=1, identity=str(uuid.uuid4()), created_at=datetime.now(UTC)))
    except IntegrityError:
        pass  # another process made it first
    with engine.connect() as connection:
        return str(connection.execute(query).scalar_one())
