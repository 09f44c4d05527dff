"""the way back: what a switch took away, the return of a cancelled or undone move, a start later

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 05:10:00

- ``migration_items.kept``: at the switch, the users with access to the administration and
  its workflows in the sending environment (user ids), which the switch removes: an undo
  (or a cancel after the switch) gives them back.
- ``migration_items.returned_at``: for a ``cancelled`` or ``undone`` item, when the
  administration and every document were back in the sending environment; NULL while that
  return is unfinished (`cancel` and `undo` run again finish it).
- ``migration_items.scheduled_for``: a ``scheduled`` item's start (`redeem --start-after`).

Plain ADD COLUMNs: never a table rebuild on SQLite (see 0006).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import basecone_migrate.db.types

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("migration_items", sa.Column("kept", sa.JSON(), nullable=True))
    op.add_column("migration_items", sa.Column("returned_at", basecone_migrate.db.types.UTCDateTime(),
                                               nullable=True))
    op.add_column("migration_items", sa.Column("scheduled_for", basecone_migrate.db.types.UTCDateTime(),
                                               nullable=True))


def downgrade() -> None:
    for column in ("scheduled_for", "returned_at", "kept"):
        op.drop_column("migration_items", column)
