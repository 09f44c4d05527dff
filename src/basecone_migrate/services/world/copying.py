"""A world file's documents: where they may be (`Files`), and their copy into the archive,
outside the entities' transaction, recorded in batches (`Copier`). Documents already in the
archive (same administration, same bytes) are neither copied nor counted again."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from basecone_migrate.db.models import Administration, Document, Environment
from basecone_migrate.errors import BaseconeError, NotFound, Refused, UsageProblem
from basecone_migrate.files import (
    Folder,
    OutsideFolder,
    SymbolicLink,
    UnreadableFile,
    check_regular,
    inside,
    open_regular,
    os_reason,
)
from basecone_migrate.runtime import Runtime
from basecone_migrate.services.world.schema import DocumentIn
from basecone_migrate.settings import mask_url_password
from basecone_migrate.storage import Archive


@dataclass
class Files:
    """An administration's documents as the file lists them, read one at a time: a list of
    100,000 (place, path, filename) tuples would cost more than the rest of the load.

    A document must lie in the world file's folder (``folders``: that folder resolved, then
    as it was named, for an absolute path that names it so), reached without a symbolic
    link; ``anywhere`` (``load --documents-anywhere``) allows any path and follows links."""

    where: str  # "environments[0].administrations[0].documents"
    folders: tuple[Path, ...]
    entries: list[str | DocumentIn]
    anywhere: bool = False

    def __post_init__(self) -> None:
        self._within = tuple(Folder(folder) for folder in self.folders)

    def close(self) -> None:
        """Close the folders kept open between documents."""
        for folder in self._within:
            folder.close()

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[tuple[str, str, str]]:
        """(place, path as the file gives it, filename) of each document."""
        for k, entry in enumerate(self.entries):
            path, filename = (entry, None) if isinstance(entry, str) else (entry.path, entry.filename)
            yield f"{self.where}[{k}]", path, filename or Path(path).name

    def _locate(self, path: str) -> tuple[Folder | None, Path]:
        """(the folder it must stay within or None, the file)."""
        file = Path(path)
        if self.anywhere:
            return None, file if file.is_absolute() else self.folders[0] / file
        folder = next((f for f in self._within if inside(f.path, file) is not None), self._within[0])
        return folder, Path(folder.path) / file

    def check(self, path: str) -> os.stat_result:
        folder, file = self._locate(path)
        return check_regular(file) if folder is None else folder.check(file)

    def open(self, path: str) -> int:
        folder, file = self._locate(path)
        return open_regular(file) if folder is None else folder.open(file)


@dataclass
class Documents:
    """What the copy of one administration's documents needs once the entities are in."""

    admin_id: int
    environment_id: int
    archive: Archive  # checked in the entities' transaction; claimed when the first copy starts
    documents: Files
    place: Any  # the environment's code and storage, for that claim


#: Documents recorded per transaction (one multi-row INSERT each).
DOCUMENT_BATCH = 1000


class Copier:
    """Checks a file's documents, holds their administration, copies and records them,
    counting what was added and what was there already."""

    def __init__(self, rt: Runtime, path: Path) -> None:
        self.rt = rt
        self.path = path
        self.base = path.parent
        self.counts: Counter[str] = Counter()

    def fail(self, error: type[BaseconeError], where: str, message: str) -> BaseconeError:
        return error(f"{self.path}: {where}: {message}")

    def check(self, documents: Files) -> None:
        """Every document file is there, a regular file, in the world file's folder and
        reached without a symbolic link (unless --documents-anywhere)."""
        for place_of, given, _ in documents:
            try:
                documents.check(given)
            except OutsideFolder:
                raise self.fail(UsageProblem, place_of, f"document file {given!r} is outside the "
                                f"world file's folder {self.base}: move it there, or load with "
                                "--documents-anywhere") from None
            except SymbolicLink as exc:
                raise self.fail(UsageProblem, place_of, f"document file {given!r} {exc.reason}, "
                                "and load follows none: copy the file into place, or load with "
                                "--documents-anywhere") from None
            except UnreadableFile as exc:
                if exc.reason == "no such file":
                    raise self.fail(NotFound, place_of, f"document file {given!r} not found (paths "
                                    f"are relative to {self.base})") from None
                raise self.fail(UsageProblem, place_of, f"document file {given!r}: {exc.reason}") from None

    def hold(self, session: Session, admin: Administration, documents: Files,
             environment: Environment) -> Documents | None:
        """In the entities' transaction: refuse, before anything changes, documents for an
        administration that is being moved; what to copy once that transaction is in."""
        from basecone_migrate.services.migrations.common import refuse_while_moving

        if not documents:
            return None
        session.execute(select(Administration.id).where(Administration.id == admin.id)
                        .with_for_update())
        try:
            refuse_while_moving(session, admin, "load its documents")
        except Refused as refused:
            raise self.fail(Refused, documents.where, refused.message) from None
        from basecone_migrate.services.lookup import Place

        place = Place(environment.id, environment.code, environment.storage)
        return Documents(admin.id, environment.id, self.rt.archive(place, claim=False),
                         documents, place)

    def copy(self, todo: Documents) -> None:
        """Copy one administration's documents outside any transaction (one buffer a
        thread; on an object store S3_TRANSFERS of them in flight, taken in the world file's
        order), then record them DOCUMENT_BATCH at a time, in that order, each batch in a
        short transaction that holds the administration (so no move starts before they are
        in). Memory holds one batch, whatever the archive's size. A failure removes what was
        written and not recorded, in flight included."""
        from basecone_migrate.inflight import in_flight
        from basecone_migrate.services.archive import discard_unrecorded, hold_for_documents
        from basecone_migrate.storage import Stored, ThreadBuffers, hash_stream

        files = todo.documents
        archive = self.rt.archive(todo.place)  # marked as this database's (it was checked)
        with self.rt.uow(read_only=True) as uow:
            rows = uow.session.execute(select(Document.filename, Document.size, Document.sha256)
                                       .where(Document.administration_id == todo.admin_id)).all()
        known = {row.sha256 for row in rows}
        by_name_size = {(row.filename, row.size) for row in rows}
        del rows
        now = self.rt.now()
        pending: list[tuple[str, Stored]] = []

        def record() -> None:
            if not pending:
                return
            with self.rt.uow() as uow:
                try:
                    hold_for_documents(uow.session, todo.admin_id, todo.environment_id,
                                       "load its documents")
                except Refused as refused:
                    raise self.fail(Refused, todo.documents.where, refused.message) from None
                uow.session.execute(insert(Document), [
                    {"administration_id": todo.admin_id, "filename": filename, "size": stored.size,
                     "sha256": stored.sha256, "storage_key": stored.key, "added_at": now}
                    for filename, stored in pending])
                uow.commit()
            self.counts["added"] += len(pending)
            for _, stored in pending:
                unrecorded.pop(stored.sha256, None)
            pending.clear()

        buffers = ThreadBuffers(for_store=archive.object_store)
        # Written to the archive and not yet recorded: what a failure removes again (with
        # many in flight, some finish after the one that failed).
        unrecorded: dict[str, Stored] = {}

        def opened() -> Iterator[tuple[str, str, int]]:
            for where, given, filename in files:
                try:
                    # One descriptor per document, opened as checked: what is hashed is what
                    # is copied, whatever is put in the name's place meanwhile.
                    yield where, filename, files.open(given)
                except UnreadableFile as exc:
                    raise self.fail(Refused, where, f"cannot read {exc.path}: {exc.reason}"
                                    + self.loaded_so_far()) from None

        def store(job: tuple[str, str, int]) -> Stored | OSError | None:
            """Into the archive (None: loaded before, confirmed by reading, not copied)."""
            _, filename, descriptor = job
            buffer = buffers.get()
            try:
                with open(descriptor, "rb", buffering=0) as handle:
                    if (filename, os.fstat(handle.fileno()).st_size) in by_name_size:
                        if hash_stream(handle, buffer)[1] in known:
                            return None
                        handle.seek(0)
                    stored = archive.write(handle, todo.admin_id, buffer=buffer)
                    unrecorded.setdefault(stored.sha256, stored)
                    return stored
            except OSError as exc:
                return exc

        # On an object store a document waits tens of milliseconds for its PUT: many are in
        # flight. Locally one at a time on this thread (the disk is no faster in parallel).
        threads = archive.transfers if archive.object_store else 1
        try:
            for (where, filename, _), stored in in_flight(store, opened(), threads, "load", ordered=True):
                if isinstance(stored, OSError):
                    raise self.fail(Refused, where, "cannot write to the archive "
                                    f"{mask_url_password(archive.url)}: "
                                    f"{os_reason(stored)}" + self.loaded_so_far()) from None
                if stored is None or stored.sha256 in known:
                    self.counts["already_present"] += 1
                    continue
                known.add(stored.sha256)
                pending.append((filename, stored))
                if len(pending) >= DOCUMENT_BATCH:
                    record()
            record()
        except BaseException:
            discard_unrecorded(self.rt, archive, todo.admin_id, list(unrecorded.values()))
            raise
        finally:
            files.close()

    def loaded_so_far(self) -> str:
        added = self.counts["added"]
        return (f" ({added} documents before it are loaded; fix this and load the file again "
                "to finish)") if added else ""
