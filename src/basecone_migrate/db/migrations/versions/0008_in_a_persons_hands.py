"""in a person's hands: the database's identity, an offer's target, a link's new name

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 17:00:00

- ``database_identity``: one row, a random identity made on first use (not here: a copied
  template or a restored dump must not share it with its original by accident of this
  revision). Storage roots and the outbox are marked with it, so that a second database
  never reads, writes or removes the first one's documents or mails.
- ``migrations.offered_to_environment_id``: the environment an offer is for, fixed when
  it is made (rule 5: one offer, one target); only a Superuser of it may redeem.
- ``migration_items.target_name``: the name an administration takes when it is linked to a
  catalogue entry of another name on purpose (`--take-catalogue-name`).

Plain ADD COLUMNs and a CREATE TABLE: never a table rebuild on SQLite (see 0006).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import basecone_migrate.db.types

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "database_identity",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("identity", sa.String(length=36), nullable=False),
        sa.Column("created_at", basecone_migrate.db.types.UTCDateTime(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_database_identity_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_database_identity")),
    )
    if op.get_bind().dialect.name == "sqlite":  # a reference in place, without a table rebuild
        op.execute("ALTER TABLE migrations ADD COLUMN offered_to_environment_id INTEGER "
                   "CONSTRAINT fk_migrations_offered_to_environment_id_environments "
                   "REFERENCES environments (id)")
    else:
        op.add_column("migrations", sa.Column("offered_to_environment_id", sa.Integer(), nullable=True))
        op.create_foreign_key(op.f("fk_migrations_offered_to_environment_id_environments"),
                              "migrations", "environments", ["offered_to_environment_id"], ["id"])
    op.add_column("migration_items", sa.Column("target_name", sa.String(length=200), nullable=True))


def downgrade() -> None:
    op.drop_column("migration_items", "target_name")
    if op.get_bind().dialect.name == "postgresql":  # SQLite drops it with the column
        op.drop_constraint(op.f("fk_migrations_offered_to_environment_id_environments"),
                           "migrations", type_="foreignkey")
    op.drop_column("migrations", "offered_to_environment_id")
    op.drop_table("database_identity")
