"""who acted, and when: the operator and the database's own time in every audit row

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 05:00:00

- ``audit_log.operator``: the operating-system user and host of the process that wrote the
  row (the tool sets it; ``--as`` names only the acting user, which anyone can assert).
- ``audit_log.db_role``: on PostgreSQL the session's role (``session_user``), set by a
  trigger before each insert whatever the tool sends: no option can fake it.
- ``audit_log.recorded_at``: the database's own time, beside ``at`` (which follows
  BASECONE_MIGRATE_NOW when it is set). On PostgreSQL the same trigger sets it to
  ``clock_timestamp()``; on SQLite, a file on the machine that runs the tool, the tool
  writes the machine's clock.

Rows written before this revision keep NULL in all three. Plain ADD COLUMNs: never a table
rebuild on SQLite (see 0006), whose triggers keep the log append-only.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import basecone_migrate.db.types

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("audit_log", sa.Column("operator", sa.String(length=200), nullable=True))
    op.add_column("audit_log", sa.Column("db_role", sa.String(length=200), nullable=True))
    op.add_column("audit_log", sa.Column("recorded_at", basecone_migrate.db.types.UTCDateTime(),
                                         nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_log_who_and_when() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN NEW.db_role := session_user; NEW.recorded_at := clock_timestamp(); "
            "RETURN NEW; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_log_who_and_when BEFORE INSERT ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION audit_log_who_and_when()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_log_who_and_when ON audit_log")
        op.execute("DROP FUNCTION audit_log_who_and_when()")
    for column in ("recorded_at", "db_role", "operator"):
        op.drop_column("audit_log", column)
