"""The outbox: mails are rows written in the transaction of the change they report,
and delivered only after that transaction commits.

Delivery claims each mail with a guarded UPDATE, so two processes flushing at once
never send one mail twice. With an SMTP host the mails go out through yagmail (which
opens the session); without one they are written as ``.eml`` files to the outbox
folder. A failure leaves the mail queued with its error; ``mail flush`` retries. The
body of a mail that carries a transfercode is erased once it is delivered.

`outbox` holds the queue and its claims, `delivery` the SMTP session and the outbox
folder, `render` the message itself (built with the standard library).
"""

from basecone_migrate.mail.delivery import (
    LOOPBACK,
    NoStartTLS,
    UnsafeOutbox,
    check_mail,
    check_settings,
    refuse_linked_outbox,
    tls_context,
    write_mail_file,
)
from basecone_migrate.mail.outbox import (
    CLAIM_BATCH,
    STALE_CLAIM,
    Delivery,
    Postman,
    mail_detail,
    mail_rows,
    queue,
)
from basecone_migrate.mail.render import message_bytes

__all__ = [
    "CLAIM_BATCH", "LOOPBACK", "STALE_CLAIM", "Delivery", "NoStartTLS", "Postman", "UnsafeOutbox",
    "check_mail", "check_settings", "mail_detail", "mail_rows", "message_bytes", "queue",
    "refuse_linked_outbox", "tls_context", "write_mail_file",
]
