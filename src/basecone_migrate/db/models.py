"""The ORM classes that writing services use, mapped onto the Core tables of
`db/tables.py` (the one definition of the schema and its constraints).

The annotations give each column's Python type; the columns themselves come from the
table. Read commands never import this module (see `db/tables.py`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import DeclarativeBase, Mapped, relationship

from basecone_migrate.db import tables
from basecone_migrate.db.tables import (  # noqa: F401 - the names writing services use
    ITEM_STATUSES,
    MAIL_STATES,
    OPEN_STATUSES,
    UNFINISHED_STATUSES,
)
from basecone_migrate.domain.rules import administration_email


class Base(DeclarativeBase):
    metadata = tables.metadata


class Environment(Base):
    """An office's Basecone environment, known by its office code."""

    __table__ = tables.environments

    id: Mapped[int]
    code: Mapped[str]
    name: Mapped[str]
    plan: Mapped[str]
    storage: Mapped[str | None]


class User(Base):
    __table__ = tables.users

    id: Mapped[int]
    email: Mapped[str]
    name: Mapped[str]
    role: Mapped[str]
    environment_id: Mapped[int]

    environment: Mapped[Environment] = relationship()


class AccountingSystem(Base):
    """A connection to an accounting package (a Twinfield environment, an Exact division...)."""

    __table__ = tables.accounting_systems

    id: Mapped[str]
    environment_id: Mapped[int]
    package: Mapped[str]
    name: Mapped[str]

    environment: Mapped[Environment] = relationship()


class CatalogueEntry(Base):
    """An administration as it exists in the accounting package, ready to be linked to."""

    __table__ = tables.catalogue_entries

    id: Mapped[int]
    accounting_system_id: Mapped[str]
    code: Mapped[str]
    name: Mapped[str]


class Administration(Base):
    """A client company: linked to one connection under one code, with an archive."""

    __table__ = tables.administrations

    id: Mapped[int]
    environment_id: Mapped[int]
    accounting_system_id: Mapped[str]
    code: Mapped[str]
    name: Mapped[str]

    environment: Mapped[Environment] = relationship()
    accounting_system: Mapped[AccountingSystem] = relationship(
        foreign_keys=[tables.administrations.c.accounting_system_id],
        primaryjoin="Administration.accounting_system_id == AccountingSystem.id",
    )

    @property
    def email(self) -> str:
        return administration_email(self.environment.code, self.code)


class Workflow(Base):
    """An authorisation workflow of an administration (1 to 3 authorisers)."""

    __table__ = tables.workflows

    id: Mapped[int]
    administration_id: Mapped[int]
    name: Mapped[str]


class WorkflowAuthoriser(Base):
    __table__ = tables.workflow_authorisers

    workflow_id: Mapped[int]
    user_id: Mapped[int]


class Access(Base):
    """A user who can see an administration (Settings > Administrations > Users > Access)."""

    __table__ = tables.administration_access

    administration_id: Mapped[int]
    user_id: Mapped[int]


class Document(Base):
    """One archived document. ``storage_key`` is made by the tool, never from the file name."""

    __table__ = tables.documents

    id: Mapped[int]
    administration_id: Mapped[int]
    filename: Mapped[str]
    size: Mapped[int]
    sha256: Mapped[str]
    storage_key: Mapped[str]
    added_at: Mapped[datetime]


class AuditEntry(Base):
    """Append-only: nothing in the tool updates or deletes these rows."""

    __table__ = tables.audit_log

    id: Mapped[int]
    at: Mapped[datetime]
    actor: Mapped[str]
    action: Mapped[str]
    administration_id: Mapped[int | None]
    migration_id: Mapped[int | None]
    details: Mapped[dict[str, Any]]


class Migration(Base):
    """One offer: administrations of one environment, offered to recipients with one code."""

    __table__ = tables.migrations

    id: Mapped[int]
    source_environment_id: Mapped[int]
    target_environment_id: Mapped[int | None]
    created_by_id: Mapped[int]
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    code_hint: Mapped[str]
    checklist_confirmed: Mapped[bool]
    redeemed_at: Mapped[datetime | None]
    redeemed_by_id: Mapped[int | None]
    reject_reason: Mapped[str | None]
    offered_to_environment_id: Mapped[int | None]

    source_environment: Mapped[Environment] = relationship(
        foreign_keys=[tables.migrations.c.source_environment_id])
    target_environment: Mapped[Environment | None] = relationship(
        foreign_keys=[tables.migrations.c.target_environment_id])
    #: The receiving environment the offer fixed (the target once redeemed).
    offered_to_environment: Mapped[Environment | None] = relationship(
        foreign_keys=[tables.migrations.c.offered_to_environment_id])
    created_by: Mapped[User] = relationship(foreign_keys=[tables.migrations.c.created_by_id])
    redeemed_by: Mapped[User | None] = relationship(foreign_keys=[tables.migrations.c.redeemed_by_id])


class Recipient(Base):
    __table__ = tables.migration_recipients

    migration_id: Mapped[int]
    email: Mapped[str]


class Transfercode(Base):
    """Only the SHA-256 of a code is kept. A resent offer replaces its code."""

    __table__ = tables.transfercodes

    code_sha256: Mapped[str]
    migration_id: Mapped[int]
    issued_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    replaced_at: Mapped[datetime | None]
    spent_at: Mapped[datetime | None]


class MigrationItem(Base):
    """One administration in one migration, with what it was and what it becomes."""

    __table__ = tables.migration_items

    id: Mapped[int]
    migration_id: Mapped[int]
    administration_id: Mapped[int]
    status: Mapped[str]
    name: Mapped[str]
    source_code: Mapped[str]
    source_accounting_system_id: Mapped[str]
    package: Mapped[str]
    source_email: Mapped[str]
    target_accounting_system_id: Mapped[str | None]
    target_code: Mapped[str | None]
    target_email: Mapped[str | None]
    target_name: Mapped[str | None]
    phase: Mapped[str | None]
    documents_total: Mapped[int]
    bytes_total: Mapped[int]
    documents_done: Mapped[int]
    bytes_done: Mapped[int]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None]
    mode: Mapped[str | None]
    worker: Mapped[str | None]
    timings: Mapped[dict[str, float] | None]
    digest: Mapped[str | None]
    kept: Mapped[dict[str, Any] | None]
    returned_at: Mapped[datetime | None]
    scheduled_for: Mapped[datetime | None]

    migration: Mapped[Migration] = relationship()
    administration: Mapped[Administration] = relationship()


class MigrationItemSearch(Base):
    """What `list --search` matches for one item, lower-case."""

    __table__ = tables.migration_item_search

    item_id: Mapped[int]
    offered: Mapped[str]
    received: Mapped[str]


class TransferProgress(Base):
    """A document copied and verified at the target (rows are written in batches)."""

    __table__ = tables.transfer_progress

    item_id: Mapped[int]
    document_id: Mapped[int]


class Charge(Base):
    """The migration fee charged to the receiving environment, or its credit (negative)."""

    __table__ = tables.charges

    id: Mapped[int]
    environment_id: Mapped[int]
    item_id: Mapped[int]
    currency: Mapped[str]
    amount_cents: Mapped[int]
    created_at: Mapped[datetime]
    kind: Mapped[str]


class FailedRedeem(Base):
    """A redeem attempt with a code that opened no offer (for the lock-out rule)."""

    __table__ = tables.failed_redeems

    id: Mapped[int]
    user_id: Mapped[int]
    at: Mapped[datetime]


class OutboxMail(Base):
    """A mail written in the same transaction as the change it reports; sent after commit."""

    __table__ = tables.outbox

    id: Mapped[int]
    created_at: Mapped[datetime]
    event: Mapped[str]
    migration_id: Mapped[int | None]
    sender: Mapped[str]
    to: Mapped[list[str]]
    cc: Mapped[list[str]]
    subject: Mapped[str]
    body: Mapped[str | None]
    carries_code: Mapped[bool]
    state: Mapped[str]
    attempts: Mapped[int]
    last_error: Mapped[str | None]
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    delivered_via: Mapped[str | None]


class Alias(Base):
    """A mail address an administration had before a move or a code change."""

    __table__ = tables.administration_aliases

    id: Mapped[int]
    administration_id: Mapped[int]
    email: Mapped[str]
    created_at: Mapped[datetime]
