"""background transfers: who runs an item, and the task queue on PostgreSQL

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 10:00:00

- ``migration_items.worker``: the process (host:pid, or the worker's name) that runs or
  last ran the item's transfer, for `status` and `status --watch`. A plain ADD COLUMN
  (never a table rebuild on SQLite: see 0006).
- PostgreSQL only: the schema of procrastinate (the task queue that `redeem --background`
  and `worker` use), in the same database and transaction, from the pinned library's own
  ``SchemaManager.get_schema()``. All its objects are named ``procrastinate_*``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("migration_items", sa.Column("worker", sa.String(length=200), nullable=True))
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        exists = bind.execute(sa.text("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")).scalar()
        if not exists:
            from procrastinate.schema import SchemaManager

            op.execute(sa.text(SchemaManager.get_schema()))


#: procrastinate's objects, dropped in this order by `downgrade` (tables first: that drops
#: their triggers and row types).
_CATALOGUE = (
    ("TABLE", "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"),
    ("FUNCTION", "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n "
                 "ON n.oid = p.pronamespace WHERE n.nspname = current_schema()"),
    ("TYPE", "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
             "WHERE n.nspname = current_schema() AND t.typtype IN ('e', 'c')"),
)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for kind, catalogue in _CATALOGUE:
            for (name,) in bind.execute(sa.text(catalogue)).all():
                if name.startswith("procrastinate_"):
                    op.execute(sa.text(f"DROP {kind} IF EXISTS {name} CASCADE"))
    op.drop_column("migration_items", "worker")
