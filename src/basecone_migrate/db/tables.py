"""The tables, in SQLAlchemy Core: the one definition of the schema.

Rules that the database can hold are constraints here, not only Python checks:

- one administration per (connection, code) and per (environment, code, name);
- an administration's connection belongs to the administration's environment
  (a composite foreign key onto ``accounting_systems (id, environment_id)``);
- a document's content appears once per administration;
- one open migration per administration, and a claimed target link once (partial
  unique indexes).

Read commands query these tables directly and never load the ORM: importing
``sqlalchemy.orm`` and mapping the classes cost more than a third of a command's start
(`benchmarks/scale.py`, start-up). Writing services use the classes of `db/models.py`,
which are mapped onto these same tables.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from basecone_migrate.db.types import UTCDateTime
from basecone_migrate.domain import lifecycle
from basecone_migrate.domain.rules import PLANS, ROLES

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

#: A migration item's statuses, from its lifecycle (plain strings, as stored).
ITEM_STATUSES = tuple(status.value for status in lifecycle.ItemStatus)
#: An administration is in at most one migration in these states (a partial unique index).
OPEN_STATUSES = tuple(status.value for status in lifecycle.OPEN)
#: Redeemed, with a transfer that has not finished: it holds its target code.
UNFINISHED_STATUSES = tuple(status.value for status in lifecycle.UNFINISHED)
MAIL_STATES = ("queued", "sending", "sent")


def _os_operator() -> str:
    from basecone_migrate.whoami import os_operator

    return os_operator()


def _real_now() -> datetime:
    """The machine's clock, never BASECONE_MIGRATE_NOW."""
    return datetime.now(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


# Indexes with dialect options keep them in ``info`` and get them only when DDL is made
# (db/migrations): a ``postgresql_where=`` here would import the PostgreSQL dialect on
# every start, SQLite included (about 30 ms).


def partial_index(name: str, *columns: str, where: str, unique: bool = False) -> Index:
    """A partial index (``WHERE``), on both databases."""
    return Index(name, *columns, unique=unique, info={"where": where})


def trigram_index(name: str, column: str) -> Index:
    """A ``pg_trgm`` GIN index for ``LIKE '%text%'``; PostgreSQL only."""
    return Index(name, column, info={"postgresql_only": True, "trigram": True})


def _id() -> Column[int]:
    return Column("id", Integer, primary_key=True)


def _at(name: str, nullable: bool = False) -> Column:  # type: ignore[type-arg]
    return Column(name, UTCDateTime(), nullable=nullable)


def _text(name: str, length: int, nullable: bool = False, **kwargs: object) -> Column[str]:
    return Column(name, String(length), nullable=nullable, **kwargs)  # type: ignore[arg-type]


def _ref(name: str, target: str, nullable: bool = False, **kwargs: object) -> Column[int]:
    ondelete = kwargs.pop("ondelete", None)
    return Column(name, Integer, ForeignKey(target, ondelete=ondelete),  # type: ignore[arg-type]
                  nullable=nullable, **kwargs)


environments = Table(
    "environments", metadata,
    _id(),
    _text("code", 40, unique=True),
    _text("name", 200),
    _text("plan", 20),
    _text("storage", 1000, nullable=True),
    CheckConstraint(_in("plan", PLANS), name="plan"),
)

users = Table(
    "users", metadata,
    _id(),
    _text("email", 320, unique=True),  # stored lower-case
    _text("name", 200),
    _text("role", 40),
    _ref("environment_id", "environments.id", index=True),
    CheckConstraint(_in("role", ROLES), name="role"),
)

accounting_systems = Table(  # connections to a package (a Twinfield environment, an Exact division)
    "accounting_systems", metadata,
    _text("id", 100, primary_key=True),
    _ref("environment_id", "environments.id", index=True),
    _text("package", 60),
    _text("name", 200),
    UniqueConstraint("id", "environment_id"),
)

catalogue_entries = Table(  # administrations as they exist in the package, ready to be linked to
    "catalogue_entries", metadata,
    _id(),
    Column("accounting_system_id", String(100),
           ForeignKey("accounting_systems.id", ondelete="CASCADE"), nullable=False),
    _text("code", 60),
    _text("name", 200),
    UniqueConstraint("accounting_system_id", "code"),
)

administrations = Table(  # client companies: linked to one connection under one code
    "administrations", metadata,
    _id(),
    _ref("environment_id", "environments.id", index=True),
    _text("accounting_system_id", 100),
    _text("code", 60),
    _text("name", 200),
    UniqueConstraint("accounting_system_id", "code"),
    UniqueConstraint("environment_id", "code", "name"),
    ForeignKeyConstraint(
        ["accounting_system_id", "environment_id"],
        ["accounting_systems.id", "accounting_systems.environment_id"],
        name="fk_administrations_connection_in_environment",
    ),
)

workflows = Table(  # authorisation workflows (1 to 3 authorisers)
    "workflows", metadata,
    _id(),
    _ref("administration_id", "administrations.id", ondelete="CASCADE"),
    _text("name", 200),
    UniqueConstraint("administration_id", "name"),
)

workflow_authorisers = Table(
    "workflow_authorisers", metadata,
    _ref("workflow_id", "workflows.id", ondelete="CASCADE", primary_key=True),
    _ref("user_id", "users.id", ondelete="CASCADE", primary_key=True, index=True),
)

administration_access = Table(  # users who can see an administration
    "administration_access", metadata,
    _ref("administration_id", "administrations.id", ondelete="CASCADE", primary_key=True),
    _ref("user_id", "users.id", ondelete="CASCADE", primary_key=True, index=True),
)

documents = Table(  # ``storage_key`` is made by the tool, never from the file name
    "documents", metadata,
    _id(),
    _ref("administration_id", "administrations.id", index=True),
    _text("filename", 500),
    Column("size", BigInteger, nullable=False),
    _text("sha256", 64),
    _text("storage_key", 200),
    _at("added_at"),
    UniqueConstraint("administration_id", "sha256"),
)

audit_log = Table(  # append-only: triggers refuse UPDATE and DELETE
    "audit_log", metadata,
    _id(),
    _at("at"),
    _text("actor", 320),
    _text("action", 40, index=True),
    Column("administration_id", Integer, nullable=True, index=True),
    Column("migration_id", Integer, nullable=True, index=True),
    Column("details", JSON, nullable=False, default=dict),
    # Who ran the process (`operator.os_operator`), and on PostgreSQL the session's database
    # role, set by a trigger whatever the tool sends (revision 0010). NULL in older rows.
    Column("operator", String(200), nullable=True, default=_os_operator),
    Column("db_role", String(200), nullable=True),
    # The database's own time (PostgreSQL's clock_timestamp() by the same trigger; on SQLite,
    # which is a file on this machine, the machine's clock), beside ``at``, which follows
    # BASECONE_MIGRATE_NOW when it is set.
    Column("recorded_at", UTCDateTime(), nullable=True, default=_real_now),
    # `audit --since` reads oldest first from an instant: (at, id) serves the order and the bound.
    Index("ix_audit_log_at_id", "at", "id"),
)

# -- cross-environment migrations (kinds 1 and 4) ---------------------------------------

migrations = Table(  # one offer: administrations of one environment, to recipients, one code
    "migrations", metadata,
    _id(),
    _ref("source_environment_id", "environments.id"),
    _ref("target_environment_id", "environments.id", nullable=True),
    _ref("created_by_id", "users.id"),
    _at("created_at"),
    _at("expires_at"),  # of the current transfercode
    _text("code_hint", 8),  # the code's last group, for overviews
    Column("checklist_confirmed", Boolean, nullable=False, default=False),
    _at("redeemed_at", nullable=True),  # redeemed or rejected: the code is spent
    _ref("redeemed_by_id", "users.id", nullable=True),
    _text("reject_reason", 2000, nullable=True),
    # The environment the offer is for, fixed when it is made (rule 5: one offer, one target).
    _ref("offered_to_environment_id", "environments.id", nullable=True),
    # The overview's two sections and `status`, newest first, one page at a time.
    Index("ix_migrations_source_created", "source_environment_id", "created_at"),
    Index("ix_migrations_target_created", "target_environment_id", "created_at"),
    Index("ix_migrations_created_at", "created_at"),
)

migration_recipients = Table(
    "migration_recipients", metadata,
    _ref("migration_id", "migrations.id", ondelete="CASCADE", primary_key=True),
    _text("email", 320, primary_key=True, index=True),
)

transfercodes = Table(  # only the SHA-256 of a code is kept; a resent offer replaces its code
    "transfercodes", metadata,
    _text("code_sha256", 64, primary_key=True),
    _ref("migration_id", "migrations.id", index=True),
    _at("issued_at"),
    _at("expires_at"),
    _at("replaced_at", nullable=True),
    _at("spent_at", nullable=True),
)

migration_items = Table(  # one administration in one migration: what it was and becomes
    "migration_items", metadata,
    _id(),
    _ref("migration_id", "migrations.id", index=True),
    _ref("administration_id", "administrations.id", index=True),
    _text("status", 20, index=True),
    # As offered (a snapshot: the administration changes when it moves).
    _text("name", 200),
    _text("source_code", 60),
    _text("source_accounting_system_id", 100),
    _text("package", 60),
    _text("source_email", 400),
    # As linked by the receiver.
    _text("target_accounting_system_id", 100, nullable=True),
    _text("target_code", 60, nullable=True),
    _text("target_email", 400, nullable=True),
    # The catalogue's name, when the receiver linked it to an entry of another name on purpose.
    _text("target_name", 200, nullable=True),
    # The transfer.
    _text("phase", 20, nullable=True),
    Column("documents_total", Integer, nullable=False, default=0),
    Column("bytes_total", BigInteger, nullable=False, default=0),
    Column("documents_done", Integer, nullable=False, default=0),
    Column("bytes_done", BigInteger, nullable=False, default=0),
    _at("started_at", nullable=True),
    _at("finished_at", nullable=True),
    _text("error", 4000, nullable=True),
    _text("mode", 10, nullable=True),  # rename or stream
    _text("worker", 200, nullable=True),  # the process that runs (or last ran) the transfer
    # Seconds spent per phase (copy, switch, clean_up), summed over runs.
    Column("timings", JSON, nullable=True),
    # The receipt of the archive as it arrived (domain/receipts.py), with documents_total and
    # bytes_total: written when the item completes.
    _text("digest", 64, nullable=True),
    # What the switch took away in the sending environment ({"access": [user ids],
    # "workflows": [{"name", "authorisers": [user ids]}]}), for an undo to give back; "told":
    # true once both sides were mailed that it is back (services/migrations/returning.py).
    Column("kept", JSON, nullable=True),
    # A cancelled or undone item: when it was back in the sending environment (NULL: not yet).
    _at("returned_at", nullable=True),
    _at("scheduled_for", nullable=True),  # a scheduled item's start (redeem --start-after)
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

# What `list --search` matches for one item, lower-case (services/migrations/search.py keeps
# it). A table of its own: a change of an item's status (`expire`, a transfer) then never
# writes new entries into the trigram indexes, which cost PostgreSQL three times the update.
migration_item_search = Table(
    "migration_item_search", metadata,
    _ref("item_id", "migration_items.id", ondelete="CASCADE", primary_key=True),
    Column("offered", Text, nullable=False, default="", server_default=""),
    Column("received", Text, nullable=False, default="", server_default=""),
    # Trigram indexes on PostgreSQL (SQLite scans the narrow columns).
    trigram_index("ix_migration_item_search_offered", "offered"),
    trigram_index("ix_migration_item_search_received", "received"),
)

transfer_progress = Table(  # documents copied and verified at the target, written in batches
    "transfer_progress", metadata,
    _ref("item_id", "migration_items.id", ondelete="CASCADE", primary_key=True),
    _ref("document_id", "documents.id", primary_key=True),
)

#: A charge is the fee, charged to the receiving environment when an administration is
#: redeemed, or its credit (a negative amount) when the move is cancelled or undone.
CHARGE_KINDS = ("fee", "credit")

charges = Table(  # at most one fee and one credit per migration item
    "charges", metadata,
    _id(),
    _ref("environment_id", "environments.id", index=True),
    _ref("item_id", "migration_items.id"),
    _text("currency", 3),
    Column("amount_cents", BigInteger, nullable=False),
    _at("created_at"),
    Column("kind", String(6), nullable=False, default="fee", server_default="fee"),
    UniqueConstraint("item_id", "kind"),
    CheckConstraint(_in("kind", CHARGE_KINDS), name="kind"),
)

failed_redeems = Table(  # redeem attempts with a code that opened no offer (the lock-out rule)
    "failed_redeems", metadata,
    _id(),
    _ref("user_id", "users.id"),
    _at("at"),
    Index("ix_failed_redeems_user_at", "user_id", "at"),
)

outbox = Table(  # mails written with the change they report, sent after the commit
    "outbox", metadata,
    _id(),
    _at("created_at"),
    _text("event", 40),
    _ref("migration_id", "migrations.id", nullable=True, index=True),
    _text("sender", 320),
    Column("to", JSON, nullable=False),
    Column("cc", JSON, nullable=False),
    _text("subject", 500),
    Column("body", Text, nullable=True),  # erased once delivered if it holds a code
    Column("carries_code", Boolean, nullable=False, default=False),
    _text("state", 20, default="queued", index=True),
    Column("attempts", Integer, nullable=False, default=0),
    _text("last_error", 2000, nullable=True),
    _at("claimed_at", nullable=True),
    _at("sent_at", nullable=True),
    _text("delivered_via", 1000, nullable=True),
    CheckConstraint(_in("state", MAIL_STATES), name="state"),
)

# The database's own identity, made on first use: storage roots and the outbox are marked
# with it, so that no other database ever touches their documents and mails.
database_identity = Table(
    "database_identity", metadata,
    Column("id", Integer, primary_key=True),
    _text("identity", 36),
    _at("created_at"),
    CheckConstraint("id = 1", name="one_row"),
)

# -- after-care -------------------------------------------------------------------------

# Mail addresses an administration had before a move or a code change: invoices sent to the
# old address can still be routed to it. An address is an alias of one administration at a
# time; a live address always wins over an alias.
administration_aliases = Table(
    "administration_aliases", metadata,
    _id(),
    _ref("administration_id", "administrations.id", ondelete="CASCADE", index=True),
    _text("email", 400, unique=True),
    _at("created_at"),
)
