"""the search texts in a table of their own

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 00:40:00

``migration_items.search_offered`` / ``search_received`` move to ``migration_item_search``
(one row per item, deleted with it), with their trigram indexes on PostgreSQL. A change of
an item's status is not a HOT update (``status`` is indexed), so with the texts in the row
every `expire` or transfer wrote a row's worth of trigrams into two GIN indexes: on
PostgreSQL, expiring 5,000 offers took 560 ms, 170 ms without them.

The columns go with ``ALTER TABLE ... DROP COLUMN`` (SQLite 3.35 or newer), not with a
batch rebuild: on SQLite a rebuild drops the old table, and with foreign keys on, that
deletes every row that references it with ``ON DELETE CASCADE`` (the new search rows, the
progress of unfinished transfers).
"""

import sqlite3
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _trigram_indexes(table: str, prefix: str, columns: tuple[str, ...], create: bool) -> None:
    for column in columns:
        name = f"ix_{table}_{prefix}{column}"
        if create:
            op.create_index(name, table, [f"{prefix}{column}"], postgresql_using="gin",
                            postgresql_ops={f"{prefix}{column}": "gin_trgm_ops"})
        else:
            op.drop_index(name, table_name=table)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite" and sqlite3.sqlite_version_info < (3, 35):
        from basecone_migrate.errors import Refused

        raise Refused(f"revision 0006 needs SQLite 3.35 or newer (ALTER TABLE DROP COLUMN), this "
                      f"Python has {sqlite3.sqlite_version}: use a Python built with a newer SQLite")
    postgres = bind.dialect.name == "postgresql"
    op.create_table(
        'migration_item_search',
        sa.Column('item_id', sa.Integer(), nullable=False),
        sa.Column('offered', sa.Text(), server_default='', nullable=False),
        sa.Column('received', sa.Text(), server_default='', nullable=False),
        sa.ForeignKeyConstraint(['item_id'], ['migration_items.id'],
                                name=op.f('fk_migration_item_search_item_id_migration_items'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('item_id', name=op.f('pk_migration_item_search')),
    )
    op.execute("INSERT INTO migration_item_search (item_id, offered, received) "
               "SELECT id, search_offered, search_received FROM migration_items")
    if postgres:
        _trigram_indexes("migration_items", "search_", ("offered", "received"), create=False)
        _trigram_indexes("migration_item_search", "", ("offered", "received"), create=True)
    for column in ("search_received", "search_offered"):
        op.execute(f"ALTER TABLE migration_items DROP COLUMN {column}")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for column in ("search_offered", "search_received"):
        op.add_column("migration_items", sa.Column(column, sa.Text(), server_default='', nullable=False))
    op.execute("UPDATE migration_items SET "
               "search_offered = (SELECT offered FROM migration_item_search s WHERE s.item_id = migration_items.id), "
               "search_received = (SELECT received FROM migration_item_search s WHERE s.item_id = migration_items.id) "
               "WHERE id IN (SELECT item_id FROM migration_item_search)")
    if postgres:
        _trigram_indexes("migration_item_search", "", ("offered", "received"), create=False)
        _trigram_indexes("migration_items", "search_", ("offered", "received"), create=True)
    op.drop_table('migration_item_search')
