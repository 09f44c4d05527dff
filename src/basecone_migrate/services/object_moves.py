"""Moves between two roots of one object store: server-side copies, many in flight.

A document on S3 answers in tens of milliseconds, so a move is bound by waiting, not by
bytes (none pass through this machine). The source is read as listings, a thousand
objects a request, each page matched with the database by SHA-256 (the unique index);
then ``Archive.transfers`` copies are in flight at once (`inflight.in_flight`), each one
request that asks the server for the copy's SHA-256 and is checked against the recorded
one (read back and hashed where the server keeps no checksum), copied only while the
source still has the ETag it was listed with (If-Match). What is verified is recorded
(``transfer_progress``) in batches, and only then are those sources deleted, a thousand a
request: killed at any moment, a run leaves every document at the source, at the target,
or at both with its source to be removed, never at neither.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from sqlalchemy import select

from basecone_migrate.db.models import Document, TransferProgress
from basecone_migrate.inflight import in_flight
from basecone_migrate.runtime import Runtime
from basecone_migrate.storage import Archive, ChecksumMismatch, ThreadBuffers, is_document_key

MISMATCH = ("document {}: the source bytes do not match the recorded SHA-256 (restore the "
            "document, then resume)")


@dataclass(frozen=True)
class Listed:
    """An object as a listing shows it: its document key, size and ETag."""

    key: str
    size: int
    etag: str


@dataclass(frozen=True)
class Found:
    """A document of the database, matched with the object listed under its key."""

    id: int
    key: str
    size: int
    sha256: str
    recorded: bool  # a progress row says its copy was verified at the target


def listing(archive: Archive, administration_id: int) -> Iterator[list[Listed]]:
    """One administration's documents in an object-store root, a page (up to 1,000) at a
    time, as ListObjectsV2 gives them; anything but a document key is left out."""
    for page in archive.object_pages(f"{administration_id}/"):
        yield [Listed(entry["Key"], int(entry["Size"]), str(entry.get("ETag", "")))
               for entry in page if is_document_key(entry["Key"])]


def matched(rt: Runtime, item_id: int, administration_id: int, last_id: int | None,
            page: list[Listed]) -> dict[str, Found]:
    """The documents (up to ``last_id``, if given) behind a page of listed keys, by key."""
    if not page:
        return {}
    recorded = (select(TransferProgress.document_id)
                .where(TransferProgress.item_id == item_id,
                       TransferProgress.document_id == Document.id).exists())
    shas = [listed.key.rsplit("/", 1)[1] for listed in page]
    with rt.uow(read_only=True) as uow:
        rows = uow.session.execute(
            select(Document.id, Document.storage_key, Document.size, Document.sha256, recorded)
            .where(Document.administration_id == administration_id,
                   *([Document.id <= last_id] if last_id is not None else []),
                   Document.sha256.in_(shas))).all()
    return {row[1]: Found(*row) for row in rows}


def problem_of(document_id: int, exc: OSError | ChecksumMismatch) -> str:
    if isinstance(exc, ChecksumMismatch):
        return MISMATCH.format(document_id)
    if isinstance(exc, FileNotFoundError):
        return f"document {document_id}: missing from the source archive"
    return f"document {document_id}: {exc.strerror or exc}"


def copy_listed(rt: Runtime, source: Archive, target: Archive, item_id: int,
                administration_id: int, last_id: int) -> Iterator[tuple[Found, str | None]]:
    """Copy, on the server, every listed document not yet recorded as arrived: each with
    None once its copy is verified at the target, else the problem. Sources are left
    alone (the caller records, then removes them)."""
    def jobs() -> Iterator[tuple[Listed, Found]]:
        for page in listing(source, administration_id):
            found = matched(rt, item_id, administration_id, last_id, page)
            for listed in page:
                document = found.get(listed.key)
                if document is not None and not document.recorded:
                    yield listed, document

    def copy(job: tuple[Listed, Found]) -> str | None:
        listed, document = job
        try:  # no buffer: one is made only where a copy must be read back to be checked
            source.copy_object_to(target, listed.key, document.sha256, listed.etag, None)
        except (OSError, ChecksumMismatch) as exc:
            return problem_of(document.id, exc)
        return None

    for (_, document), problem in in_flight(copy, jobs(), source.transfers, "copy"):
        yield document, problem


def holds_each(archive: Archive, documents: Iterable[tuple[int, str, int, str]]
               ) -> Iterator[tuple[tuple[int, str, int, str], bool]]:
    """Whether ``archive`` holds each document (id, key, size, sha256) intact
    (`Archive.holds`), many in flight at once: each with its answer, as they come."""
    buffers = ThreadBuffers(for_store=archive.object_store)

    def one(document: tuple[int, str, int, str]) -> bool:
        return archive.holds(document[1], document[2], document[3], buffers.get())

    yield from in_flight(one, documents, archive.transfers, "check")


def reconcile(rt: Runtime, source: Archive, target: Archive, item_id: int,
              administration_id: int) -> None:
    """After the switch: remove what a run left at the source. A document recorded as
    arrived goes at once; any other only once the target holds it (copied there first
    when it does not). Objects that are none of this administration's documents stay."""
    for page in listing(source, administration_id):
        found = matched(rt, item_id, administration_id, None, page)
        settled = [found[listed.key] for listed in page if listed.key in found]
        doubtful = [(d.id, d.key, d.size, d.sha256) for d in settled if not d.recorded]
        removable = [d.key for d in settled if d.recorded]
        for (_, key, _size, sha256), held in holds_each(target, doubtful):
            if not held:
                source.copy_object_to(target, key, sha256, None, None)
            removable.append(key)
        source.delete_objects(removable)
