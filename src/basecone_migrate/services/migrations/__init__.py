"""Cross-environment migrations (kinds 1 and 4).

Each command checks everything before it changes anything, changes the database in one
transaction, and hands its mails to the outbox in that same transaction; they are
delivered after the commit. Questions at a terminal are asked in a read-only pass first,
and everything is checked again, with the answers, when the change is made. Races are
settled by row locks and guarded UPDATEs (``... WHERE status = 'offered'``) and, for the
transfer, by a lock that dies with its process.

- ``offers``: offer, revoke, resend, expire (the sender's side and cron);
- ``redeem``: redeem, reject, resume (the receiver's side and the transfer);
- ``overview``: list, status.
"""

from basecone_migrate.services.migrations.common import (
    Outcome,
    Questions,
    open_item,
    refuse_while_moving,
)
from basecone_migrate.services.migrations.offers import expire, offer, resend, revoke
from basecone_migrate.services.migrations.overview import list_migrations, status
from basecone_migrate.services.migrations.redeem import redeem, reject, resume

__all__ = ["Outcome", "Questions", "expire", "list_migrations", "offer", "open_item", "redeem",
           "refuse_while_moving", "reject", "resend", "resume", "revoke", "status"]
