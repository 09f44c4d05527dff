"""`db upgrade`: create or migrate the schema (Alembic), on the settings' database."""

from __future__ import annotations

from typing import Any


def upgrade(settings: Any) -> dict[str, Any]:
    """The database (its URL, password masked) and its revision before and after."""
    from basecone_migrate.db.engine import upgrade as upgrade_engine
    from basecone_migrate.runtime import open_engine
    from basecone_migrate.settings import mask_url_password

    engine = open_engine(settings)
    try:
        before, after = upgrade_engine(engine)
        url = mask_url_password(engine.url.render_as_string(hide_password=True))
    finally:
        engine.dispose()
    return {"database": url, "from_revision": before, "revision": after}
