"""in a person's hands: the database's identity, an offer's target, a link's new name

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 17:00:00

- ``database_identity``: one row, a random identity (made here; made again on first use
  should the row ever be gone). Storage roots and the outbox are marked with it, so that a
  second database never reads, writes or removes the first one's documents or mails. A
  copy of a database (a restored dump, a copied SQLite file) shares its original's
  identity, and so its folders: give a copy that lives on its own folders of its own.
- ``migrations.offered_to_environment_id``: the environment an offer is for, fixed when
  it is made (rule 5: one offer, one target); only a Superuser of it may redeem.
- ``migration_items.target_name``: the name an administration takes when it is linked to a
  catalogue entry of another name on purpose (`--take-catalogue-name`).

Plain ADD COLUMNs and a CREATE TABLE: never a table rebuild on SQLite (see 0006).
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

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
    identity = sa.table("database_identity", sa.column("id", sa.Integer()),
                        sa.column("identity", sa.String()),
                        sa.column("created_at", basecone_migrate.db.types.UTCDateTime()))
    op.bulk_insert(identity, [{"id": 1, "identity": str(uuid.uuid4()), "created_at": datetime.now(UTC)}])
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
