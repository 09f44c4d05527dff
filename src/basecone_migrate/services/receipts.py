"""An administration's archive as a receipt (`domain/receipts.py`), read from the database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from basecone_migrate.db.tables import documents
from basecone_migrate.domain.receipts import Digest, Receipt

#: Rows fetched at a time: 100,000 documents are read as a stream, in flat memory.
BATCH = 5000


def archive_receipt(db: Any, administration_id: int) -> Receipt:
    """The receipt of the archive as the database records it now, in ascending SHA-256 order
    (the unique index on (administration, sha256) serves it)."""
    running = Digest()
    rows = db.execute(select(documents.c.sha256, documents.c.size)
                      .where(documents.c.administration_id == administration_id)
                      .order_by(documents.c.sha256).execution_options(yield_per=BATCH))
    for sha256, size in rows:
        running.add(sha256, size)
    return running.receipt()
