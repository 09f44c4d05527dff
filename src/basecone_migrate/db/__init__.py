"""Persistence: SQLAlchemy models, the unit of work and Alembic migrations.

``SCHEMA_HEAD`` is the Alembic revision this code expects; checking it costs one
query instead of importing Alembic (tests assert it matches the scripts' head).
"""

SCHEMA_HEAD = "0013"
