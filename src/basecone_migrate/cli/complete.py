"""Shell completion of values (`--install-completion` installs it for the shell).

Commands, options and fixed values (statuses) complete as Typer does. Administrations,
migrations, connections and offices complete from the database, with one small query,
when it is cheap and harmless: the database the command would use, as the global options
and settings name it, already exists. Anything that goes wrong completes nothing: a shell
must never see a traceback.
"""

from __future__ import annotations

from collections.abc import Callable

import typer

from basecone_migrate.domain.lifecycle import ItemStatus

#: A migration item's statuses, from its lifecycle.
STATUSES = tuple(status.value for status in ItemStatus)


def statuses(incomplete: str) -> list[str]:
    return [s for s in STATUSES if s.startswith(incomplete)]


def _quietly(name: str) -> Callable[..., list[tuple[str, str]]]:
    """Completion of values from `services.completion.<name>`: nothing, whatever goes wrong."""

    def complete(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
        try:
            from basecone_migrate.services import completion
            from basecone_migrate.settings import Settings

            root = ctx.find_root().params
            settings = Settings.load({"user": root.get("as_"), "db": root.get("db"),
                                      "storage": root.get("storage")}, config_path=root.get("config"))
            with completion.reading(settings) as db:
                if db is None:
                    return []
                return getattr(completion, name)(db, settings.user, incomplete)[:completion.LIMIT]
        except Exception:  # noqa: BLE001 - a shell must never see a traceback
            return []

    return complete


administrations = _quietly("administrations")
migrations = _quietly("migrations")
connections = _quietly("connections")
offices = _quietly("offices")
