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

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(40), index=True)
    administration_id: Mapped[int | None] = mapped_column(index=True)
    migration_id: Mapped[int | None] = mapped_column(index=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


Index("ix_audit_log_at", AuditEntry.at)
