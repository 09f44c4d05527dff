"""receipts: the digest of an archive as it arrived

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 05:30:00

``migration_items.digest``: written when the item completes, from the documents of the
archive that arrived (`domain/receipts.py`); with ``documents_total`` and ``bytes_total``
it is the receipt `status --json` and the completion mail give. NULL for items that never
completed, and for those completed before this revision. A plain ADD COLUMN.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("migration_items", sa.Column("digest", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("migration_items", "digest")
