"""charges you can see: a fee and its credit

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 05:10:00

``charges.kind``: ``fee`` (charged to the receiving environment at the redeem, as before)
or ``credit`` (the fee given back, a negative amount, when the move is cancelled or
undone). One of each per item at most: the unique constraint on ``item_id`` becomes one on
``(item_id, kind)``. Existing rows are fees.

On SQLite the unique constraint is part of the table, so the table is rebuilt (Alembic's
batch mode). That is safe here, unlike for the tables 0006 and 0009 leave alone: no table
references ``charges``, so dropping the old one deletes nothing else.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("charges") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=6), server_default="fee", nullable=False))
        batch.drop_constraint(op.f("uq_charges_item_id"), type_="unique")
        batch.create_unique_constraint(op.f("uq_charges_item_id_kind"), ["item_id", "kind"])
        batch.create_check_constraint(op.f("ck_charges_kind"), "kind IN ('fee', 'credit')")


def downgrade() -> None:
    credits = op.get_bind().exec_driver_sql("SELECT count(*) FROM charges WHERE kind <> 'fee'").scalar_one()
    if credits:
        raise RuntimeError(f"revision {revision} cannot be undone: {credits} charges are credits, "
                           "which the older revisions do not know")
    with op.batch_alter_table("charges") as batch:
        batch.drop_constraint(op.f("ck_charges_kind"), type_="check")
        batch.drop_constraint(op.f("uq_charges_item_id_kind"), type_="unique")
        batch.create_unique_constraint(op.f("uq_charges_item_id"), ["item_id"])
        batch.drop_column("kind")
