"""Alembic environment: metadata from the tables, the connection from the caller.

Run from code (`basecone-migrate db upgrade`, or on first use), which passes an open
connection inside a transaction. Used from the `alembic` command line (for
``alembic revision --autogenerate`` while developing) it takes the URL from the
tool's own settings.
"""

from alembic import context

from basecone_migrate.db.tables import metadata

config = context.config
target_metadata = metadata


def _include(obj, name, type_, reflected, compare_to, *, dialect: str) -> bool:
    """Indexes the models mark PostgreSQL-only (trigram) do not exist on SQLite; the task
    queue's own objects (``procrastinate_*``, PostgreSQL) are procrastinate's, not ours."""
    if type_ == "index" and not reflected and obj.info.get("postgresql_only"):
        return dialect == "postgresql"
    if reflected and name and "procrastinate_" in name:
        return False
    return True


def _configure_and_run(connection) -> None:
    dialect = connection.dialect.name
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=dialect == "sqlite",
        compare_type=True,
        include_object=lambda *args: _include(*args, dialect=dialect),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    from basecone_migrate.db.engine import make_engine
    from basecone_migrate.settings import Settings

    engine = make_engine(Settings.load().db_url)
    with engine.begin() as connection:
        _configure_and_run(connection)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("basecone-migrate migrations run online only")
run_migrations_online()
