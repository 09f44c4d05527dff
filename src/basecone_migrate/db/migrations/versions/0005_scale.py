"""indexes for a million migrations: search columns, trigram indexes, keyset orders

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 08:00:00

- ``migration_items.search_offered`` / ``search_received``: what `list --search` matches,
  lower-case, filled here for the rows that exist; on PostgreSQL each has a ``pg_trgm``
  GIN index (the extension is created here when it is not there yet).
- ``ix_migration_items_offered``: the offers still open, for `expire`.
- ``migrations (source_environment_id, created_at)``, ``(target_environment_id,
  created_at)`` and ``(created_at)`` replace the two single-column indexes: every overview
  page is newest first.
- ``audit_log (at, id)`` replaces ``(at)``: `audit --since` reads in that order.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 5000


# What the overview's search texts were at this revision, frozen here so that the revision
# never changes with the code (services/migrations/search.py keeps today's).
HINT_PREFIX = "****-****-****-****-"


def _moments(value: Any) -> str:
    return f"{value:%Y-%m-%d %H:%M} {value.isoformat()}"


def offered_text(*, migration_id: int, administration_id: int, name: str, code: str, email: str,
                 created_at: Any, expires_at: Any, code_hint: str, target: str | None,
                 recipients: Sequence[str]) -> str:
    parts = [str(migration_id), str(administration_id), name, code, email, _moments(created_at),
             _moments(expires_at), HINT_PREFIX + code_hint, target or "", *recipients]
    return " | ".join(parts).lower()


def received_text(*, migration_id: int, administration_id: int, name: str, created_at: Any,
                  system: str, source: str, package: str) -> str:
    parts = [str(migration_id), str(administration_id), name, system, _moments(created_at), source,
             package]
    return " | ".join(parts).lower()


def _backfill() -> None:
    bind = op.get_bind()
    meta = sa.MetaData()
    items = sa.Table("migration_items", meta, autoload_with=bind)
    migrations = sa.Table("migrations", meta, autoload_with=bind)
    environments = sa.Table("environments", meta, autoload_with=bind)
    recipients = sa.Table("migration_recipients", meta, autoload_with=bind)
    source = environments.alias("source")
    target = environments.alias("target")
    from basecone_migrate.db.types import UTCDateTime

    stamp = UTCDateTime()
    last = 0
    while True:
        rows = bind.execute(
            sa.select(items.c.id, items.c.migration_id, items.c.administration_id, items.c.name,
                      items.c.source_code, items.c.source_email, items.c.package,
                      items.c.target_accounting_system_id, migrations.c.created_at,
                      migrations.c.expires_at, migrations.c.code_hint,
                      source.c.code.label("source"), target.c.code.label("target"))
            .join(migrations, migrations.c.id == items.c.migration_id)
            .join(source, source.c.id == migrations.c.source_environment_id)
            .outerjoin(target, target.c.id == migrations.c.target_environment_id)
            .where(items.c.id > last).order_by(items.c.id).limit(BATCH)).all()
        if not rows:
            return
        wanted = {r.migration_id for r in rows}
        emails: dict[int, list[str]] = {}
        for mid, email in bind.execute(sa.select(recipients.c.migration_id, recipients.c.email)
                                       .where(recipients.c.migration_id.in_(wanted))
                                       .order_by(recipients.c.email)):
            emails.setdefault(mid, []).append(email)
        values = []
        for r in rows:
            created = stamp.process_result_value(r.created_at, bind.dialect)
            expires = stamp.process_result_value(r.expires_at, bind.dialect)
            assert created is not None and expires is not None  # NOT NULL columns
            values.append({
                "row_id": r.id,
                "offered": offered_text(
                    migration_id=r.migration_id, administration_id=r.administration_id, name=r.name,
                    code=r.source_code, email=r.source_email, created_at=created, expires_at=expires,
                    code_hint=r.code_hint, target=r.target, recipients=emails.get(r.migration_id, [])),
                "received": received_text(
                    migration_id=r.migration_id, administration_id=r.administration_id, name=r.name,
                    created_at=created, system=r.target_accounting_system_id or r.package,
                    source=r.source, package=r.package),
            })
        bind.execute(items.update().where(items.c.id == sa.bindparam("row_id"))
                     .values(search_offered=sa.bindparam("offered"),
                             search_received=sa.bindparam("received")), values)
        last = rows[-1].id


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table('migration_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('search_offered', sa.Text(), server_default='', nullable=False))
        batch_op.add_column(sa.Column('search_received', sa.Text(), server_default='', nullable=False))
        batch_op.create_index('ix_migration_items_offered', ['migration_id'], unique=False,
                              postgresql_where=sa.text("status = 'offered'"),
                              sqlite_where=sa.text("status = 'offered'"))
    _backfill()
    if postgres:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for column in ("search_offered", "search_received"):
            op.create_index(f"ix_migration_items_{column}", "migration_items", [column],
                            postgresql_using="gin", postgresql_ops={column: "gin_trgm_ops"})
    with op.batch_alter_table('migrations', schema=None) as batch_op:
        batch_op.drop_index('ix_migrations_source_environment_id')
        batch_op.drop_index('ix_migrations_target_environment_id')
        batch_op.create_index('ix_migrations_source_created', ['source_environment_id', 'created_at'])
        batch_op.create_index('ix_migrations_target_created', ['target_environment_id', 'created_at'])
        batch_op.create_index('ix_migrations_created_at', ['created_at'])
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_at')
        batch_op.create_index('ix_audit_log_at_id', ['at', 'id'])


def downgrade() -> None:
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_at_id')
        batch_op.create_index('ix_audit_log_at', ['at'])
    with op.batch_alter_table('migrations', schema=None) as batch_op:
        batch_op.drop_index('ix_migrations_created_at')
        batch_op.drop_index('ix_migrations_target_created')
        batch_op.drop_index('ix_migrations_source_created')
        batch_op.create_index('ix_migrations_target_environment_id', ['target_environment_id'])
        batch_op.create_index('ix_migrations_source_environment_id', ['source_environment_id'])
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index('ix_migration_items_search_received', table_name='migration_items')
        op.drop_index('ix_migration_items_search_offered', table_name='migration_items')
    op.drop_index('ix_migration_items_offered', table_name='migration_items')
    # Not a batch rebuild: on SQLite that drops the table, and with foreign keys on, the
    # progress rows of unfinished transfers (ON DELETE CASCADE) with it. SQLite 3.35+.
    for column in ("search_received", "search_offered"):
        op.execute(f"ALTER TABLE migration_items DROP COLUMN {column}")
