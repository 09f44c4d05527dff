"""Cross-environment migrations (kinds 1 and 4).

Each command checks everything before it changes anything, changes the database in one
transaction, and hands its mails to the outbox in that same transaction; they are
delivered after the commit. Questions at a terminal are asked in a read-only pass first,
and everything is checked again, with the answers, when the change is made. Races are
settled by row locks and guarded UPDATEs (``... WHERE status = 'offered'``) and, for the
transfer, by a lock that dies with its process.

- ``offers``: offer, revoke, resend, expire (the sender's side and cron);
- ``receiving``: redeem, reject, resume (the receiver's side and the transfer);
- ``overview``: list, status;
- ``common``: what they share (results, questions, lookups, mails, expiry).

Import the module that holds a use case (``from basecone_migrate.services.migrations
import receiving``): this package imports nothing, so `list` and `status` never load the
transfer engine or the mail stack, and no module here is imported back by what it uses.
"""

