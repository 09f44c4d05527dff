"""`archive add / list / verify`: the documents of one administration."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from threading import local
from typing import Any

from sqlalchemy import select

from basecone_migrate.db.models import Document
from basecone_migrate.errors import Refused, UsageProblem
from basecone_migrate.runtime import Runtime
from basecone_migrate.services import audit, lookup
from basecone_migrate.storage import Archive, new_buffer

IO_THREADS = 4


def document_row(document: Document) -> dict[str, Any]:
    return {
        "id": document.id,
        "filename": document.filename,
        "size": document.size,
        "sha256": document.sha256,
        "added_at": document.added_at,
        "storage_key": document.storage_key,
    }


def add(rt: Runtime, reference: str, files: list[Path]) -> dict[str, Any]:
    """Copy files into the archive, hashing in the same pass; identical content is kept once."""
    for file in files:
        if not file.is_file():
            raise UsageProblem(f"{file}: no such file")
    stored_now: list[tuple[Archive, str]] = []
    with rt.uow() as uow:
        session = uow.session
        admin = lookup.administration_for(rt, session, reference)
        from basecone_migrate.services.migrations import refuse_while_moving

        refuse_while_moving(session, admin, "add documents")
        archive = rt.archive(admin.environment)
        known = set(session.scalars(select(Document.sha256)
                                    .where(Document.administration_id == admin.id)))
        results: list[dict[str, Any]] = []
        now = rt.now()
        try:
            for file in files:
                try:
                    stored = archive.put_file(file, admin.id)
                except OSError as exc:
                    raise Refused(f"cannot read {file}: {exc.strerror or exc}") from None
                if stored.sha256 in known:
                    existing = session.scalar(select(Document).where(
                        Document.administration_id == admin.id, Document.sha256 == stored.sha256))
                    results.append({**document_row(existing), "added": False})
                    continue
                stored_now.append((archive, stored.key))
                known.add(stored.sha256)
                document = Document(administration_id=admin.id, filename=file.name,
                                    size=stored.size, sha256=stored.sha256,
                                    storage_key=stored.key, added_at=now)
                session.add(document)
                session.flush()
                results.append({**document_row(document), "added": True})
            added = [r for r in results if r["added"]]
            if added:
                audit.record(session, at=now, actor=rt.settings.user or audit.SYSTEM,
                             action="archive_add", administration_id=admin.id,
                             documents=[r["id"] for r in added],
                             bytes=sum(r["size"] for r in added))
            uow.commit()
        except BaseException:
            for written_archive, key in stored_now:
                written_archive.remove(key)
            raise
    return {"administration_id": admin.id, "documents": results}


def list_documents(rt: Runtime, reference: str) -> list[dict[str, Any]]:
    with rt.uow() as uow:
        admin = lookup.administration_for(rt, uow.session, reference)
        documents = uow.session.scalars(select(Document).where(
            Document.administration_id == admin.id).order_by(Document.id))
        return [document_row(d) for d in documents]


def verify(rt: Runtime, reference: str) -> dict[str, Any]:
    """Re-hash every stored document; refused (exit 1) when one is missing or differs."""
    with rt.uow() as uow:
        admin = lookup.administration_for(rt, uow.session, reference)
        archive = rt.archive(admin.environment)
        documents = [document_row(d) for d in uow.session.scalars(select(Document).where(
            Document.administration_id == admin.id).order_by(Document.id))]
        admin_id, admin_label = admin.id, f"{admin.environment.code}/{admin.code}"

    buffers = local()

    def check(document: dict[str, Any]) -> tuple[dict[str, Any], tuple[int, str] | None]:
        if not hasattr(buffers, "buffer"):
            buffers.buffer = new_buffer()
        return document, archive.checksum(document["storage_key"], buffers.buffer)

    missing: list[dict[str, Any]] = []
    different: list[dict[str, Any]] = []
    with ThreadPoolExecutor(max_workers=IO_THREADS) as pool:
        for document, found in pool.map(check, documents):
            if found is None:
                missing.append(document)
            elif found != (document["size"], document["sha256"]):
                different.append({**document, "found_size": found[0], "found_sha256": found[1]})
    result = {
        "administration_id": admin_id,
        "checked": len(documents),
        "ok": len(documents) - len(missing) - len(different),
        "missing": missing,
        "different": different,
    }
    if missing or different:
        raise Refused(
            f"archive of {admin_label} is damaged: {len(missing)} missing and "
            f"{len(different)} different of {len(documents)} documents "
            "(restore them from a backup; `archive list` shows the expected SHA-256)",
            payload=result,
        )
    return result
