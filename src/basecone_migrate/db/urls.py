"""Database URLs as users write them, as SQLAlchemy takes them."""

from __future__ import annotations

from pathlib import Path


def normalise_db_url(value: str) -> str:
    """Accept a plain file path for SQLite and pick psycopg 3 for PostgreSQL."""
    value = value.strip()
    if "://" not in value:
        return f"sqlite:///{Path(value).expanduser().resolve()}"
    scheme, rest = value.split("://", 1)
    if scheme in ("postgres", "postgresql"):
        return f"postgresql+psycopg://{rest}"
    return value
