"""The hand-over of one item: the switch (the administration takes its new environment,
connection and code in one transaction) and, once the last item is done, the completion mail."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from basecone_migrate.db.models import (
    Access,
    Administration,
    Environment,
    Migration,
    MigrationItem,
    User,
    Workflow,
    WorkflowAuthoriser,
)
from basecone_migrate.domain import mails
from basecone_migrate.domain.lifecycle import ItemStatus
from basecone_migrate.domain.receipts import Receipt
from basecone_migrate.domain.rules import administration_email
from basecone_migrate.runtime import Runtime
from basecone_migrate.services import aliases
from basecone_migrate.services.receipts import archive_receipt
from basecone_migrate.services.transfer.copying import Blocked, Plan, Stopped, archive_totals


def switch(rt: Runtime, plan: Plan) -> bool:
    """The administration changes hands, in one transaction: its environment, connection,
    code (and name, when linked to a catalogue entry of another name on purpose); its users'
    access and workflows go; the old address becomes an alias. False when its archive gained
    documents since the copy: then the copy runs again first."""
    with rt.uow() as uow:
        s = uow.session
        # The item's row first: a cancel or pause that changed it waits for this switch, or
        # this switch sees it and stops.
        item = s.get(MigrationItem, plan.item_id, with_for_update=True)
        admin = s.scalar(select(Administration).where(Administration.id == plan.administration_id)
                         .with_for_update())
        assert item is not None and admin is not None
        if item.status != ItemStatus.IN_PROGRESS:
            raise Stopped(item.status)
        count, _, last_id = archive_totals(s, admin.id)
        if (count, last_id) != (plan.documents, plan.last_id):
            return False
        migration = item.migration
        target: Environment = migration.target_environment  # type: ignore[assignment]
        item.kept = kept_in_source(s, admin.id)
        s.execute(delete(Access).where(Access.administration_id == admin.id))
        s.execute(delete(Workflow).where(Workflow.administration_id == admin.id))
        admin.environment_id = target.id
        admin.accounting_system_id = item.target_accounting_system_id  # type: ignore[assignment]
        admin.code = item.target_code  # type: ignore[assignment]
        if item.target_name is not None:  # linked to a catalogue entry of another name, on purpose
            admin.name = item.target_name
        item.target_email = administration_email(target.code, admin.code)
        item.phase = "switched"
        # The receipt of exactly what moved: read under the administration's lock, before
        # anyone at the target can add to the archive.
        receipt = archive_receipt(s, admin.id)
        item.digest, item.documents_total, item.bytes_total = receipt.digest, receipt.documents, receipt.bytes
        aliases.record_change(s, admin.id, item.source_email, item.target_email, rt.now())
        try:
            uow.commit()
        except IntegrityError as exc:
            raise Blocked(
                f"the switch to {item.target_accounting_system_id} code {item.target_code} is "
                f"blocked by the database ({str(exc.orig).splitlines()[0]}): that link was taken "
                "meanwhile; free it, then resume") from None
    return True


def kept_in_source(s: Any, administration_id: int) -> dict[str, Any]:
    """The access and workflows a switch removes (user ids), for an undo to give back."""
    access = sorted(s.scalars(select(Access.user_id).where(Access.administration_id == administration_id)))
    workflows = []
    for workflow in s.scalars(select(Workflow).where(Workflow.administration_id == administration_id)
                              .order_by(Workflow.id)):
        authorisers = sorted(s.scalars(select(WorkflowAuthoriser.user_id)
                                       .where(WorkflowAuthoriser.workflow_id == workflow.id)))
        workflows.append({"name": workflow.name, "authorisers": authorisers})
    return {"access": access, "workflows": workflows}


def queue_completed(rt: Runtime, s: Any, migration: Migration) -> int:
    items = list(s.scalars(select(MigrationItem).where(
        MigrationItem.migration_id == migration.id, MigrationItem.status == ItemStatus.COMPLETED.value)
        .order_by(MigrationItem.id)))
    sender = migration.created_by
    receiver: User = migration.redeemed_by  # type: ignore[assignment]
    mail = mails.completed(
        migration_id=migration.id,
        sender=mails.Party(sender.name, sender.email),
        receiver=mails.Party(receiver.name, receiver.email),
        source=f"{migration.source_environment.name} ({migration.source_environment.code})",
        target=f"{migration.target_environment.name} ({migration.target_environment.code})",  # type: ignore[union-attr]
        admins=[mails.AdminLine(f"{i.target_name} (was {i.name})" if i.target_name else i.name,
                                i.target_code or i.source_code, i.package, i.target_email or "")
                for i in items],
        receipts=[Receipt(i.digest, i.documents_total, i.bytes_total) if i.digest else None for i in items],
    )
    from basecone_migrate.services.migrations.common import queue_mail

    return queue_mail(rt, s, mail, migration.id)
