"""the lifecycle's statuses: scheduled, paused, cancelled and undone

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 23:30:00

The statuses of ``migration_items`` come from one enum (``domain/lifecycle.py``), which
adds ``scheduled``, ``paused``, ``cancelled`` and ``undone``: the CHECK constraint admits
them, and the two partial unique indexes count the new unfinished ones (``scheduled`` and
``paused``) as open (the administration is in no other migration) and as holding their
target code. The lists are written out here, as they are at this revision, so that the
revision never changes with the code.

On SQLite a CHECK constraint cannot be altered, and a table rebuild would drop the old
table, which with foreign keys on deletes every row that references it (see 0006): the
constraint's text is rewritten in the schema instead, as SQLite documents for changes
that leave the stored rows as they are ("ALTER TABLE: making other kinds of table schema
changes"), in this revision's transaction. Widening it needs no check of the rows.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "migration_items"
CHECK = "ck_migration_items_status"
OLD = {
    "all": ("offered", "revoked", "expired", "rejected", "in_progress", "completed", "failed"),
    "open": ("offered", "in_progress", "failed"),
    "unfinished": ("in_progress", "failed"),
}
NEW = {
    "all": ("offered", "scheduled", "in_progress", "paused", "failed", "completed", "revoked",
            "expired", "rejected", "cancelled", "undone"),
    "open": ("offered", "scheduled", "in_progress", "paused", "failed"),
    "unfinished": ("scheduled", "in_progress", "paused", "failed"),
}


def _in(values: tuple[str, ...]) -> str:
    return f"status IN ({', '.join(repr(v) for v in values)})"


def _where(values: tuple[str, ...]) -> sa.TextClause:
    return sa.text(f"status IN {values!r}")  # as db/tables.py spells a partial index's condition


def _indexes(statuses: dict[str, tuple[str, ...]]) -> None:
    for name in ("uq_migration_items_open_administration", "uq_migration_items_claimed_link"):
        op.drop_index(name, table_name=TABLE)
    op.create_index("uq_migration_items_open_administration", TABLE, ["administration_id"], unique=True,
                    postgresql_where=_where(statuses["open"]), sqlite_where=_where(statuses["open"]))
    op.create_index("uq_migration_items_claimed_link", TABLE, ["target_accounting_system_id", "target_code"],
                    unique=True, postgresql_where=_where(statuses["unfinished"]),
                    sqlite_where=_where(statuses["unfinished"]))


def _check(old: tuple[str, ...], new: tuple[str, ...]) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        op.execute(f"ALTER TABLE {TABLE} DROP CONSTRAINT {CHECK}")
        op.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {CHECK} CHECK ({_in(new)})")
        return
    sql = bind.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?",
                               (TABLE,)).scalar_one()
    before = f"CONSTRAINT {CHECK} CHECK ({_in(old)})"
    if sql.count(before) != 1:
        raise RuntimeError(f"revision {revision}: the table {TABLE} does not hold the constraint "
                           f"{CHECK} as revision 0002 made it; its schema is: {sql}")
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    try:
        bind.exec_driver_sql("UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?",
                             (sql.replace(before, f"CONSTRAINT {CHECK} CHECK ({_in(new)})"), TABLE))
        bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    finally:
        bind.exec_driver_sql("PRAGMA writable_schema = OFF")
    problems = bind.exec_driver_sql("PRAGMA quick_check").scalars().all()
    if problems != ["ok"]:
        raise RuntimeError(f"revision {revision}: SQLite's check after the new constraint: {problems}")


def upgrade() -> None:
    _check(OLD["all"], NEW["all"])
    _indexes(NEW)


def downgrade() -> None:
    newer = op.get_bind().exec_driver_sql(
        f"SELECT count(*) FROM {TABLE} WHERE NOT ({_in(OLD['all'])})").scalar_one()
    if newer:
        raise RuntimeError(f"revision {revision} cannot be undone: {newer} migration items are in "
                           "a status the older revisions do not know")
    _check(NEW["all"], OLD["all"])
    _indexes(OLD)
