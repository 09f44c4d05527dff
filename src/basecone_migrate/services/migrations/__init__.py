"""Cross-environment migrations (kinds 1 and 4).

Each command checks everything before it changes anything, changes the database in one
transaction, and hands its mails to the outbox in that same transaction; they are
delivered after the commit. Questions at a terminal are asked in a read-only pass first,
and everything is checked again, with the answers, when the change is made. Races are
settled by row locks and guarded UPDATEs (``... WHERE status = 'offered'``) and, for the
transfer, by a lock that dies with its process.

- ``offers``: offer, revoke, resend, expire (the sender's side and cron);
- ``receiving``: redeem, reject, resume (the receiver's side and the transfer);
- ``overview``: list, status.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from basecone_migrate.services.migrations.common import (
        Outcome,
        Questions,
        open_item,
        refuse_while_moving,
    )
    from basecone_migrate.services.migrations.offers import expire, offer, resend, revoke
    from basecone_migrate.services.migrations.overview import list_migrations, status
    from basecone_migrate.services.migrations.receiving import redeem, reject, resume

#: Each name from the module that holds it, imported when first used: `list` and `status`
#: never load the transfer engine or the mail stack.
_HOME = {
    "Outcome": "common", "Questions": "common", "open_item": "common",
    "refuse_while_moving": "common",
    "expire": "offers", "offer": "offers", "resend": "offers", "revoke": "offers",
    "list_migrations": "overview", "status": "overview",
    "redeem": "receiving", "reject": "receiving", "resume": "receiving",
}

__all__ = ["Outcome", "Questions", "expire", "list_migrations", "offer", "open_item", "redeem",
           "refuse_while_moving", "reject", "resend", "resume", "revoke", "status"]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value
    return value
