"""`charges`: the fees charged to receiving environments, and their credits.

A fee is charged when an administration is redeemed (the costs line of the flow, invoiced
to the receiving environment); a cancelled or undone move gets it back as a credit, a
charge of the negative amount, so that the list adds up to what is owed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from basecone_migrate.db.tables import charges, environments, migration_items
from basecone_migrate.domain.money import Money
from basecone_migrate.services import lookup

if TYPE_CHECKING:
    from basecone_migrate.runtime import Runtime


def listing(rt: Runtime, *, env: str | None = None, limit: int = 1000,
            after: int | None = None) -> list[dict[str, Any]]:
    """The charges in the order they were made (of one environment, by office code: exit 3
    for one that does not exist); ``after`` is the id of the last row of the previous page."""
    c, items = charges.c, migration_items.c
    query = (select(c.id, environments.c.code, items.administration_id, items.migration_id, c.kind,
                    c.amount_cents, c.currency, c.created_at)
             .join(environments, environments.c.id == c.environment_id)
             .join(migration_items, items.id == c.item_id)
             .order_by(c.id).limit(limit))
    with rt.reading() as db:
        if env is not None:
            query = query.where(c.environment_id == lookup.environment_row(db, env).id)
        if after is not None:
            query = query.where(c.id > after)
        return [{"id": row.id, "environment": row.code, "administration_id": row.administration_id,
                 "migration_id": row.migration_id, "kind": row.kind,
                 # A number, as any JSON reader adds and compares it (49.5, -49.5: cents over
                 # 100 print exactly); the cents beside it for sums to the cent.
                 "amount": row.amount_cents / 100,
                 "amount_cents": row.amount_cents, "currency": row.currency, "at": row.created_at}
                for row in db.execute(query)]


def totals(rows: list[dict[str, Any]]) -> list[tuple[str, Money]]:
    """What the rows add up to, per environment and currency, by office code."""
    sums: dict[tuple[str, str], int] = {}
    for row in rows:
        key = (row["environment"], row["currency"])
        sums[key] = sums.get(key, 0) + row["amount_cents"]
    return [(code, Money(currency, cents)) for (code, currency), cents in sorted(sums.items())]
