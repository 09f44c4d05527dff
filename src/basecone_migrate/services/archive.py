"""`archive add / list / verify`: the documents of one administration."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from basecone_migrate.db.tables import documents
from basecone_migrate.domain.lifecycle import ItemStatus
from basecone_migrate.errors import Refused, UsageProblem
from basecone_migrate.files import UnreadableFile, check_regular, os_reason
from basecone_migrate.inflight import in_flight
from basecone_migrate.runtime import Runtime
from basecone_migrate.services import audit, lookup
from basecone_migrate.services.receipts import archive_receipt
from basecone_migrate.settings import mask_url_password
from basecone_migrate.storage import Archive, Stored, ThreadBuffers, new_buffer

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

IO_THREADS = 4


#: The columns of `document_row`.
DOCUMENT_COLUMNS = (documents.c.id, documents.c.filename, documents.c.size, documents.c.sha256,
                    documents.c.added_at, documents.c.storage_key)


def document_rounds(rt: Runtime, admin_id: int, columns: Sequence[Any], size: int,
                    *where: Any) -> Iterator[Sequence[Any]]:
    """An administration's documents by id, ``size`` rows at a time, each round in a short
    read of its own: memory holds one round, whatever the archive's size. ``columns``
    start with the document's id; ``where`` narrows them further."""
    last = 0
    while True:
        with rt.reading() as db:
            rows = db.execute(
                select(*columns).where(documents.c.administration_id == admin_id,
                                       documents.c.id > last, *where)
                .order_by(documents.c.id).limit(size)).all()
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def document_row(document: Any) -> dict[str, Any]:
    """A document (a model, or a row of DOCUMENT_COLUMNS) as --json shows it."""
    return {
        "id": document.id,
        "filename": document.filename,
        "size": document.size,
        "sha256": document.sha256,
        "added_at": document.added_at,
        "storage_key": document.storage_key,
    }


def add(rt: Runtime, reference: str, files: list[Path]) -> dict[str, Any]:
    """Copy files into the archive, hashing in the same pass; identical content is kept once.

    The copying happens outside any transaction (a large file holds no lock); the rows are
    then written in one short transaction that holds the administration's row, so a move
    cannot start in between and miss them.
    """
    from basecone_migrate.db.models import Document
    from basecone_migrate.services.migrations.common import refuse_while_moving

    for file in files:
        try:
            check_regular(file)
        except UnreadableFile as exc:
            raise UsageProblem(f"{file}: {exc.reason}") from None
    with rt.uow(read_only=True) as uow:
        admin = lookup.administration_for(rt, uow.session, reference)
        refuse_while_moving(uow.session, admin, "add documents")
        admin_id, environment_id = admin.id, admin.environment_id
        archive = rt.archive(admin.environment)

    stored: list[tuple[Path, Stored]] = []
    buffer = new_buffer()
    try:
        for file in files:
            try:
                stored.append((file, archive.put_file(file, admin_id, buffer)))
            except UnreadableFile as exc:
                raise Refused(f"cannot read {file}: {exc.reason}") from None
            except OSError as exc:
                raise Refused(f"cannot write to the archive {mask_url_password(archive.url)}: "
                              f"{os_reason(exc)}") from None
        with rt.uow() as uow:
            session = uow.session
            hold_for_documents(session, admin_id, environment_id, "add documents")
            existing = {d.sha256: d for d in session.scalars(select(Document).where(
                Document.administration_id == admin_id))}
            results: list[dict[str, Any]] = []
            now = rt.now()
            for file, document in stored:
                if document.sha256 in existing:
                    results.append({**document_row(existing[document.sha256]), "added": False})
                    continue
                row = Document(administration_id=admin_id, filename=file.name, size=document.size,
                               sha256=document.sha256, storage_key=document.key, added_at=now)
                session.add(row)
                session.flush()
                existing[document.sha256] = row
                results.append({**document_row(row), "added": True})
            added = [r for r in results if r["added"]]
            if added:
                audit.record(session, at=now, actor=rt.settings.user or audit.SYSTEM,
                             action="archive_add", administration_id=admin_id,
                             documents=[r["id"] for r in added], bytes=sum(r["size"] for r in added))
            uow.commit()
    except BaseException:
        discard_unrecorded(rt, archive, admin_id, [d for _, d in stored])
        raise
    return {"administration_id": admin_id, "documents": results}


def hold_for_documents(session: Session, admin_id: int, environment_id: int, to_do: str) -> None:
    """Before documents copied outside a transaction are recorded: hold the administration's
    row, so that no move starts before they are in, and refuse when one started or finished
    meanwhile (the copies are then in the wrong archive)."""
    from basecone_migrate.db.models import Administration
    from basecone_migrate.services.migrations.common import refuse_while_moving

    admin = session.scalar(select(Administration).where(Administration.id == admin_id)
                           .with_for_update())
    assert admin is not None
    refuse_while_moving(session, admin, to_do)
    if admin.environment_id != environment_id:
        raise Refused(f"administration {admin_id} moved to another environment while its "
                      f"documents were copied: {to_do} again")


def discard_unrecorded(rt: Runtime, archive: Archive, admin_id: int, stored: list[Stored]) -> None:
    """Remove the files a failed add wrote that no document row points at."""
    with rt.reading() as db:
        recorded = set(db.scalars(select(documents.c.sha256).where(
            documents.c.administration_id == admin_id)))
    for document in stored:
        if document.sha256 not in recorded:
            archive.remove(document.key)


def list_documents(rt: Runtime, reference: str) -> list[dict[str, Any]]:
    with rt.reading() as db:
        admin = lookup.administration_row_for(rt, db, reference)
        return [document_row(d) for d in db.execute(select(*DOCUMENT_COLUMNS).where(
            documents.c.administration_id == admin.id).order_by(documents.c.id))]


#: Documents read from the database, and hashed, per round of `verify`.
VERIFY_BATCH = 2000


def verify(rt: Runtime, reference: str) -> dict[str, Any]:
    """Re-hash every stored document; refused (exit 1) when one is missing or differs.

    The rows come in batches by id, each hashed on a small thread pool, so memory holds
    one batch (and the damage found) whatever the archive's size.
    """
    with rt.reading() as db:
        admin = lookup.administration_row_for(rt, db, reference)
    archive = rt.archive(lookup.Place.of_administration(admin), claim=False)  # reads only
    admin_id, admin_label = admin.id, f"{admin.environment_code}/{admin.code}"

    buffers = ThreadBuffers(for_store=archive.object_store)

    def check(document: dict[str, Any]) -> tuple[dict[str, Any], tuple[int, str] | None]:
        return document, archive.checksum(document["storage_key"], buffers.get(), document["size"])

    missing: list[dict[str, Any]] = []
    different: list[dict[str, Any]] = []
    checked = 0
    documents = (document_row(row) for rows in document_rounds(rt, admin_id, DOCUMENT_COLUMNS, VERIFY_BATCH)
                 for row in rows)
    threads = archive.transfers if archive.object_store else IO_THREADS
    for _, (document, found) in in_flight(check, documents, threads, "verify"):
        if found is None:
            missing.append(document)
        elif found != (document["size"], document["sha256"]):
            different.append({**document, "found_size": found[0], "found_sha256": found[1]})
        checked += 1
    missing.sort(key=lambda d: d["id"])  # in the order of the archive, whatever finished first
    different.sort(key=lambda d: d["id"])
    with rt.reading() as db:  # the receipt of the archive as the database records it now
        receipt = archive_receipt(db, admin_id)
    result = {
        "administration_id": admin_id,
        "checked": checked,
        "ok": checked - len(missing) - len(different),
        "missing": missing,
        "different": different,
        **receipt.as_dict(),
    }
    moving = _elsewhere(rt, admin, missing) if missing else None
    if moving is not None:
        migration_id, status, code, found = moving
        what = {ItemStatus.CANCELLED: f"which is being cancelled: run `basecone-migrate cancel {migration_id}` "
                                      "again to finish bringing it back",
                ItemStatus.UNDONE: f"which is being undone: run `basecone-migrate undo {migration_id}` again "
                                   "to finish bringing it back"}.get(
            status, f"which did not finish: finish it with `basecone-migrate resume {migration_id}` or take "
                    f"it back with `basecone-migrate cancel {migration_id}`")
        raise Refused(f"archive of {admin_label}: {found} of the {len(missing)} missing documents are in "
                      f"{code}'s storage, the other side of migration {migration_id}, {what}", payload=result)
    if missing or different:
        raise Refused(
            f"archive of {admin_label} is damaged: {len(missing)} missing and "
            f"{len(different)} different of {checked} documents "
            "(restore them from a backup; `archive list` shows the expected SHA-256)",
            payload=result,
        )
    return result


def _elsewhere(rt: Runtime, admin: Any, missing: list[dict[str, Any]]) -> tuple[int, str, str, int] | None:
    """Where documents missing here are, when a move of the administration did not finish
    (a streamed copy removes each source behind it): (migration, the item's status, the
    other environment's code, how many of them it holds); each such document gets ``"at"``:
    that code."""
    from basecone_migrate.db.tables import environments, migration_items, migrations
    from basecone_migrate.domain.lifecycle import UNFINISHED

    items, envs = migration_items.c, environments.c
    with rt.reading() as db:
        move = db.execute(select(migrations.c.id, items.status, migrations.c.source_environment_id,
                                 migrations.c.target_environment_id)
                          .join(migration_items, items.migration_id == migrations.c.id)
                          .where(items.administration_id == admin.id,
                                 items.status.in_([*UNFINISHED, ItemStatus.CANCELLED, ItemStatus.UNDONE]),
                                 items.returned_at.is_(None) | items.status.in_(UNFINISHED))
                          .order_by(migrations.c.id.desc())).first()
        if move is None or move.target_environment_id is None:
            return None
        other_id = (move.target_environment_id if admin.environment_id == move.source_environment_id
                    else move.source_environment_id)
        other = db.execute(select(envs.id, envs.code, envs.storage).where(envs.id == other_id)).one()
    there = rt.archive(lookup.Place(other.id, other.code, other.storage), claim=False)
    found = 0
    for document in missing:
        if there.holds(document["storage_key"], document["size"], document["sha256"]):
            document["at"] = other.code
            found += 1
    return (move.id, move.status, other.code, found) if found else None
