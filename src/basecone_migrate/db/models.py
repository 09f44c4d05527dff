"""The tables. Rules that the database can hold are constraints here, not only Python checks.

- one administration per (connection, code) and per (environment, code, name);
- an administration's connection belongs to the administration's environment
  (a composite foreign key onto ``accounting_systems (id, environment_id)``);
- a document's content appears once per administration.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from basecone_migrate.db.types import UTCDateTime
from basecone_migrate.domain.rules import PLANS, ROLES, administration_email

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


# Indexes with dialect options keep them in ``info`` and get them only when DDL is made
# (db/migrations, db/ddl.py): a ``postgresql_where=`` here would import the PostgreSQL
# dialect on every start, SQLite included (about 30 ms).


def partial_index(name: str, *columns: str, where: str, unique: bool = False) -> Index:
    """A partial index (``WHERE``), on both databases."""
    return Index(name, *columns, unique=unique, info={"where": where})


def trigram_index(name: str, column: str) -> Index:
    """A ``pg_trgm`` GIN index for ``LIKE '%text%'``; PostgreSQL only."""
    return Index(name, column, info={"postgresql_only": True, "trigram": True})


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


class Environment(Base):
    """An office's Basecone environment, known by its office code."""

    __tablename__ = "environments"
    __table_args__ = (CheckConstraint(_in("plan", PLANS), name="plan"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    plan: Mapped[str] = mapped_column(String(20))
    storage: Mapped[str | None] = mapped_column(String(1000))


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint(_in("role", ROLES), name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # stored lower-case
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(40))
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id"), index=True)

    environment: Mapped[Environment] = relationship()


class AccountingSystem(Base):
    """A connection to an accounting package (a Twinfield environment, an Exact division...)."""

    __tablename__ = "accounting_systems"
    __table_args__ = (UniqueConstraint("id", "environment_id"),)

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id"), index=True)
    package: Mapped[str] = mapped_column(String(60))
    name: Mapped[str] = mapped_column(String(200))

    environment: Mapped[Environment] = relationship()


class CatalogueEntry(Base):
    """An administration as it exists in the accounting package, ready to be linked to."""

    __tablename__ = "catalogue_entries"
    __table_args__ = (UniqueConstraint("accounting_system_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    accounting_system_id: Mapped[str] = mapped_column(
        ForeignKey("accounting_systems.id", ondelete="CASCADE")
    )
    code: Mapped[str] = mapped_column(String(60))
    name: Mapped[str] = mapped_column(String(200))


class Administration(Base):
    """A client company: linked to one connection under one code, with an archive."""

    __tablename__ = "administrations"
    __table_args__ = (
        UniqueConstraint("accounting_system_id", "code"),
        UniqueConstraint("environment_id", "code", "name"),
        ForeignKeyConstraint(
            ["accounting_system_id", "environment_id"],
            ["accounting_systems.id", "accounting_systems.environment_id"],
            name="fk_administrations_connection_in_environment",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id"), index=True)
    accounting_system_id: Mapped[str] = mapped_column(String(100))
    code: Mapped[str] = mapped_column(String(60))
    name: Mapped[str] = mapped_column(String(200))

    environment: Mapped[Environment] = relationship()
    accounting_system: Mapped[AccountingSystem] = relationship(
        foreign_keys=[accounting_system_id],
        primaryjoin="Administration.accounting_system_id == AccountingSystem.id",
    )

    @property
    def email(self) -> str:
        return administration_email(self.environment.code, self.code)


class Workflow(Base):
    """An authorisation workflow of an administration (1 to 3 authorisers)."""

    __tablename__ = "workflows"
    __table_args__ = (UniqueConstraint("administration_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    administration_id: Mapped[int] = mapped_column(
        ForeignKey("administrations.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(200))


class WorkflowAuthoriser(Base):
    __tablename__ = "workflow_authorisers"

    workflow_id: Mapped[int] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Access(Base):
    """A user who can see an administration (Settings > Administrations > Users > Access)."""

    __tablename__ = "administration_access"

    administration_id: Mapped[int] = mapped_column(
        ForeignKey("administrations.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Document(Base):
    """One archived document. ``storage_key`` is made by the tool, never from the file name."""

    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("administration_id", "sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    administration_id: Mapped[int] = mapped_column(ForeignKey("administrations.id"), index=True)
    filename: Mapped[str] = mapped_column(String(500))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(200))
    added_at: Mapped[datetime]


class AuditEntry(Base):
    """Append-only: nothing in the tool updates or deletes these rows."""

    __tablename__ = "audit_log"
    # `audit --since` reads oldest first from an instant: (at, id) serves the order and the bound.
    __table_args__ = (Index("ix_audit_log_at_id", "at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(40), index=True)
    administration_id: Mapped[int | None] = mapped_column(index=True)
    migration_id: Mapped[int | None] = mapped_column(index=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)



# -- cross-environment migrations (kinds 1 and 4) ---------------------------------------

ITEM_STATUSES = ("offered", "revoked", "expired", "rejected", "in_progress", "completed", "failed")
#: An administration is in at most one migration in these states (a partial unique index).
OPEN_STATUSES = ("offered", "in_progress", "failed")
#: Redeemed, with a transfer that has not finished.
UNFINISHED_STATUSES = ("in_progress", "failed")


class Migration(Base):
    """One offer: administrations of one environment, offered to recipients with one code."""

    __tablename__ = "migrations"
    __table_args__ = (
        # The overview's two sections and `status`, newest first, one page at a time.
        Index("ix_migrations_source_created", "source_environment_id", "created_at"),
        Index("ix_migrations_target_created", "target_environment_id", "created_at"),
        Index("ix_migrations_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source_environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id"))
    target_environment_id: Mapped[int | None] = mapped_column(ForeignKey("environments.id"))
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]  # of the current transfercode
    code_hint: Mapped[str] = mapped_column(String(8))  # the code's last group, for overviews
    checklist_confirmed: Mapped[bool] = mapped_column(default=False)
    redeemed_at: Mapped[datetime | None]  # redeemed or rejected: the code is spent
    redeemed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reject_reason: Mapped[str | None] = mapped_column(String(2000))

    source_environment: Mapped[Environment] = relationship(foreign_keys=[source_environment_id])
    target_environment: Mapped[Environment | None] = relationship(
        foreign_keys=[target_environment_id]
    )
    created_by: Mapped[User] = relationship(foreign_keys=[created_by_id])
    redeemed_by: Mapped[User | None] = relationship(foreign_keys=[redeemed_by_id])


class Recipient(Base):
    __tablename__ = "migration_recipients"

    migration_id: Mapped[int] = mapped_column(
        ForeignKey("migrations.id", ondelete="CASCADE"), primary_key=True
    )
    email: Mapped[str] = mapped_column(String(320), primary_key=True, index=True)


class Transfercode(Base):
    """Only the SHA-256 of a code is kept. A resent offer replaces its code."""

    __tablename__ = "transfercodes"

    code_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    migration_id: Mapped[int] = mapped_column(ForeignKey("migrations.id"), index=True)
    issued_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    replaced_at: Mapped[datetime | None]
    spent_at: Mapped[datetime | None]


class MigrationItem(Base):
    """One administration in one migration, with what it was and what it becomes."""

    __tablename__ = "migration_items"
    __table_args__ = (
        CheckConstraint(_in("status", ITEM_STATUSES), name="status"),
        CheckConstraint("phase IS NULL OR phase IN ('copying', 'switched')", name="phase"),
        partial_index("uq_migration_items_open_administration", "administration_id", unique=True,
                      where=f"status IN {OPEN_STATUSES!r}"),
        # A move that is redeemed but not finished has claimed its target link.
        partial_index("uq_migration_items_claimed_link", "target_accounting_system_id",
                      "target_code", unique=True, where=f"status IN {UNFINISHED_STATUSES!r}"),
        # `expire` finds the offers still open without reading the history.
        partial_index("ix_migration_items_offered", "migration_id", where="status = 'offered'"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    migration_id: Mapped[int] = mapped_column(ForeignKey("migrations.id"), index=True)
    administration_id: Mapped[int] = mapped_column(ForeignKey("administrations.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    # As offered (a snapshot: the administration changes when it moves).
    name: Mapped[str] = mapped_column(String(200))
    source_code: Mapped[str] = mapped_column(String(60))
    source_accounting_system_id: Mapped[str] = mapped_column(String(100))
    package: Mapped[str] = mapped_column(String(60))
    source_email: Mapped[str] = mapped_column(String(400))
    # As linked by the receiver.
    target_accounting_system_id: Mapped[str | None] = mapped_column(String(100))
    target_code: Mapped[str | None] = mapped_column(String(60))
    target_email: Mapped[str | None] = mapped_column(String(400))
    # The transfer.
    phase: Mapped[str | None] = mapped_column(String(20))
    documents_total: Mapped[int] = mapped_column(default=0)
    bytes_total: Mapped[int] = mapped_column(BigInteger, default=0)
    documents_done: Mapped[int] = mapped_column(default=0)
    bytes_done: Mapped[int] = mapped_column(BigInteger, default=0)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(String(4000))
    mode: Mapped[str | None] = mapped_column(String(10))  # rename or stream
    # Seconds spent per phase (copy, switch, clean_up), summed over runs.
    timings: Mapped[dict[str, float] | None] = mapped_column(JSON)

    migration: Mapped[Migration] = relationship()
    administration: Mapped[Administration] = relationship()


class MigrationItemSearch(Base):
    """What `list --search` matches for one item, lower-case (services/migrations/search.py
    keeps it). A table of its own: a change of an item's status (`expire`, a transfer) then
    never writes new entries into the trigram indexes, which cost PostgreSQL three times the
    update itself."""

    __tablename__ = "migration_item_search"
    __table_args__ = (
        # Trigram indexes on PostgreSQL (SQLite scans the narrow columns).
        trigram_index("ix_migration_item_search_offered", "offered"),
        trigram_index("ix_migration_item_search_received", "received"),
    )

    item_id: Mapped[int] = mapped_column(
        ForeignKey("migration_items.id", ondelete="CASCADE"), primary_key=True)
    offered: Mapped[str] = mapped_column(Text, default="", server_default="")
    received: Mapped[str] = mapped_column(Text, default="", server_default="")


class TransferProgress(Base):
    """A document copied and verified at the target (rows are written in batches)."""

    __tablename__ = "transfer_progress"

    item_id: Mapped[int] = mapped_column(
        ForeignKey("migration_items.id", ondelete="CASCADE"), primary_key=True
    )
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"), primary_key=True)


class Charge(Base):
    """The migration fee, charged once per administration to the receiving environment."""

    __tablename__ = "charges"

    id: Mapped[int] = mapped_column(primary_key=True)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("migration_items.id"), unique=True)
    currency: Mapped[str] = mapped_column(String(3))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime]


class FailedRedeem(Base):
    """A redeem attempt with a code that opened no offer (for the lock-out rule)."""

    __tablename__ = "failed_redeems"
    __table_args__ = (Index("ix_failed_redeems_user_at", "user_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    at: Mapped[datetime]


MAIL_STATES = ("queued", "sending", "sent")


class OutboxMail(Base):
    """A mail written in the same transaction as the change it reports; sent after commit."""

    __tablename__ = "outbox"
    __table_args__ = (CheckConstraint(_in("state", MAIL_STATES), name="state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime]
    event: Mapped[str] = mapped_column(String(40))
    migration_id: Mapped[int | None] = mapped_column(ForeignKey("migrations.id"), index=True)
    sender: Mapped[str] = mapped_column(String(320))
    to: Mapped[list[str]] = mapped_column(JSON)
    cc: Mapped[list[str]] = mapped_column(JSON)
    subject: Mapped[str] = mapped_column(String(500))
    body: Mapped[str | None] = mapped_column(Text)  # erased once delivered if it holds a code
    carries_code: Mapped[bool] = mapped_column(default=False)
    state: Mapped[str] = mapped_column(String(20), default="queued", index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(2000))
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    delivered_via: Mapped[str | None] = mapped_column(String(1000))


# -- after-care -------------------------------------------------------------------------


class Alias(Base):
    """A mail address an administration had before a move or a code change.

    Invoices sent to the old address can still be routed to it. An address is an alias
    of one administration at a time; a live address always wins over an alias.
    """

    __tablename__ = "administration_aliases"

    id: Mapped[int] = mapped_column(primary_key=True)
    administration_id: Mapped[int] = mapped_column(
        ForeignKey("administrations.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(400), unique=True)
    created_at: Mapped[datetime]
