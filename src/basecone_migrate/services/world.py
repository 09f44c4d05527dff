"""`load WORLD.json`: an idempotent upsert of environments, users, connections,
administrations, workflows, access and documents: the entities in one transaction, then
the documents copied outside it and recorded in batches (see `load_world`).

Everything is checked before anything is written. Errors name the exact place in the
file (``environments[0].administrations[2].accounting_system``). Documents already
in the archive (same administration, same bytes) are neither copied nor counted
again, so loading a file twice changes nothing.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
)
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from basecone_migrate.db.models import (
    Access,
    AccountingSystem,
    Administration,
    AuditEntry,
    CatalogueEntry,
    Document,
    Environment,
    Migration,
    MigrationItem,
    User,
    Workflow,
    WorkflowAuthoriser,
)
from basecone_migrate.db.tables import UNFINISHED_STATUSES
from basecone_migrate.domain.addresses import normalise_address
from basecone_migrate.domain.rules import administration_email
from basecone_migrate.domain.text import unstorable
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
from basecone_migrate.services import audit
from basecone_migrate.settings import mask_url_password
from basecone_migrate.storage import Archive

# -- the file's shape ------------------------------------------------------------

Text = Annotated[str, Field(min_length=1, max_length=200)]
Code = Annotated[str, Field(min_length=1, max_length=60, pattern=r"^\S(.*\S)?$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True, str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        problem = unstorable(value) if isinstance(value, str) else None
        if problem is not None:
            raise ValueError(f"the text {problem}")
        return value


class CatalogueEntryIn(_Model):
    code: Code
    name: Text


class AccountingSystemIn(_Model):
    id: Annotated[str, Field(min_length=1, max_length=100)]
    package: Annotated[str, Field(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    name: Text | None = None
    catalogue: list[CatalogueEntryIn] = []

    @field_validator("package")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()


def _address(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return normalise_address(value)
    except ValueError as exc:
        raise ValueError(str(exc)) from None


Email = Annotated[str, BeforeValidator(_address)]


class UserIn(_Model):
    email: Email
    name: Text | None = None
    role: Literal["superuser", "accountant", "sme_accountant", "authoriser", "client", "restricted_client"]


class WorkflowIn(_Model):
    name: Text
    authorisers: list[Email] = []


def _storable_text(value: str) -> str:
    problem = unstorable(value)
    if problem is not None:
        raise ValueError(f"the text {problem}")
    return value


class DocumentIn(_Model):
    path: Annotated[str, Field(min_length=1)]
    filename: Annotated[str, Field(min_length=1, max_length=500)] | None = None


#: The tag of a document given as an object; left out of the places errors name.
_ENTRY = "document-entry"

# A document is a path, or {"path", "filename"}. Paths stay plain strings: 100,000 documents
# are then 100,000 small strings, not 100,000 models (about a tenth of the memory).
DocumentEntry = Annotated[
    Annotated[Annotated[str, Field(min_length=1), AfterValidator(_storable_text)], Tag("path")]
    | Annotated[DocumentIn, Tag(_ENTRY)],
    Discriminator(lambda value: _ENTRY if isinstance(value, dict | DocumentIn) else "path"),
]


class AdministrationIn(_Model):
    code: Code
    name: Text
    accounting_system: Annotated[str, Field(min_length=1, max_length=100)]
    users: list[Email] = []
    workflows: list[WorkflowIn] = []
    documents: list[DocumentEntry] = []


class EnvironmentIn(_Model):
    code: Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")]
    name: Text
    plan: Literal["premium", "trial"]
    storage: Annotated[str, Field(min_length=1, max_length=1000)] | None = None
    users: list[UserIn] = []
    accounting_systems: list[AccountingSystemIn] = []
    administrations: list[AdministrationIn] = []


class WorldIn(_Model):
    environments: list[EnvironmentIn]


def place(location: tuple[Any, ...]) -> str:
    text = ""
    for part in location:
        if part == _ENTRY:
            continue
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


#: A world file holds at most this many bytes. Parsed JSON takes up to 26 times its size
#: in memory (16 MiB of nested empty lists: 475 MB); a world of 100,000 documents given as
#: {"path", "filename"} objects is 11 MB (177 MB at its peak), as plain paths 5.4 MB.
MAX_WORLD_BYTES = 16 * 1024 * 1024


def parse_world(path: Path) -> WorldIn:
    from basecone_migrate.files import TooLarge, read_regular

    try:
        raw = read_regular(path, MAX_WORLD_BYTES)
    except TooLarge as exc:
        raise UsageProblem(f"{path}: {exc.reason}, more than a world file may hold: split it into "
                           "several files and load each (a load adds to what is there)") from None
    except UnreadableFile as exc:
        raise UsageProblem(f"{path}: {exc.reason}") from None
    try:
        data = json.loads(raw)
    except RecursionError:
        raise UsageProblem(f"{path}: not valid JSON: nested too deeply") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8 text"
        raise UsageProblem(f"{path}: not valid JSON{where}: {reason}") from None
    try:
        return WorldIn.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = errors[0]
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        where = place(first["loc"]) or "top level"
        message = first["msg"].removeprefix("Value error, ")
        raise UsageProblem(f"{path}: {where}: {message}{more}") from None


# -- loading ----------------------------------------------------------------------

KINDS = ("environments", "users", "accounting_systems", "catalogue_entries",
         "administrations", "access", "workflows", "authorisers")


@dataclass
class _Files:
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
class _Target:
    """An administration of the file with the documents to load into it."""

    model: Administration
    documents: _Files
    is_new: bool


@dataclass
class _Documents:
    """What the copy of one administration's documents needs once the entities are in."""

    admin_id: int
    environment_id: int
    archive: Archive  # checked in the entities' transaction; claimed when the first copy starts
    documents: _Files
    place: Any  # the environment's code and storage, for that claim


#: Documents recorded per transaction (one multi-row INSERT each).
DOCUMENT_BATCH = 1000


class _Loader:
    def __init__(self, rt: Runtime, session: Session, path: Path, named: Path | None = None,
                 documents_anywhere: bool = False) -> None:
        self.rt = rt
        self.session = session
        self.path = path
        self.base = path.parent
        #: Where documents may be: the file's folder, resolved and as it was named.
        self.folders = tuple(dict.fromkeys((self.base, (named or path).parent)))
        self.documents_anywhere = documents_anywhere
        self.counts: dict[str, Counter[str]] = {kind: Counter() for kind in KINDS}
        self.documents_count: Counter[str] = Counter()
        self.notes: list[str] = []  # why something in the file was left as it is

    def fail(self, error: type[BaseconeError], where: str, message: str) -> BaseconeError:
        return error(f"{self.path}: {where}: {message}")

    # -- checks that need no writing ---------------------------------------------

    def check_duplicates(self, world: WorldIn) -> None:
        seen: dict[tuple[str, ...], str] = {}

        def once(key: tuple[str, ...], where: str, what: str) -> None:
            if key in seen:
                raise self.fail(Refused, where, f"duplicate {what} (also at {seen[key]})")
            seen[key] = where

        for i, env in enumerate(world.environments):
            e = f"environments[{i}]"
            once(("env", env.code.upper()), f"{e}.code", f"office code {env.code!r}")
            for j, user in enumerate(env.users):
                once(("user", user.email), f"{e}.users[{j}].email", f"user {user.email!r}")
            for j, system in enumerate(env.accounting_systems):
                s = f"{e}.accounting_systems[{j}]"
                once(("system", system.id), f"{s}.id", f"accounting system {system.id!r}")
                for k, entry in enumerate(system.catalogue):
                    once(("entry", system.id, entry.code), f"{s}.catalogue[{k}].code",
                         f"catalogue code {entry.code!r} in {system.id!r}")
            for j, admin in enumerate(env.administrations):
                a = f"{e}.administrations[{j}]"
                once(("admin", env.code.upper(), admin.code), f"{a}.code",
                     f"administration code {admin.code!r} in environment {env.code}")
                for k, workflow in enumerate(admin.workflows):
                    once(("workflow", env.code.upper(), admin.code, workflow.name),
                         f"{a}.workflows[{k}].name", f"workflow {workflow.name!r}")

    # -- upserts -------------------------------------------------------------------

    def _upsert(self, kind: str, existing: Any, make: Callable[[], Any], **fields: Any) -> Any:
        if existing is None:
            created = make()
            self.session.add(created)
            self.counts[kind]["created"] += 1
            return created
        changed = False
        for name, value in fields.items():
            if getattr(existing, name) != value:
                setattr(existing, name, value)
                changed = True
        self.counts[kind]["updated" if changed else "unchanged"] += 1
        return existing

    def environment(self, i: int, env: EnvironmentIn) -> Environment:
        existing = self.session.scalar(select(Environment).where(Environment.code == env.code))
        storage = env.storage
        if storage and "://" not in storage:
            storage = str((self.base / storage).resolve())
        if existing is not None and (existing.storage or None) != (storage or None):
            self._repoint(f"environments[{i}].storage", existing, storage)
        model = self._upsert(
            "environments", existing,
            lambda: Environment(code=env.code, name=env.name, plan=env.plan, storage=storage),
            name=env.name, plan=env.plan, storage=storage,
        )
        self.session.flush()
        return model

    def _repoint(self, where: str, environment: Environment, storage: str | None) -> None:
        """A new ``storage`` for an environment: another spelling of the same place is fine;
        another place is refused while the environment holds documents (they would all be
        missing there), else made and audited."""
        from basecone_migrate.errors import UsageProblem
        from basecone_migrate.storage import environment_root

        before = self.rt.archive_url(environment)
        after = environment_root(self.rt.storage_root, environment.code, storage)
        try:
            moved = not self.rt.open_archive(before).same_place(self.rt.open_archive(after))
        except UsageProblem:  # no driver for one of them: only the same spelling is the same
            moved = before != after
        if moved:
            held = self.session.scalar(
                select(func.count(Document.id)).join(Administration)
                .where(Administration.environment_id == environment.id))
            if held:
                raise self.fail(Refused, where, (
                    f"environment {environment.code} holds {held} documents in {before}; this file "
                    f"would point it at {after}, where they are not: keep its storage as it is "
                    "(or move the documents there first)"))
            moving = self.session.scalar(
                select(MigrationItem.migration_id).join(Migration)
                .where(MigrationItem.status.in_(UNFINISHED_STATUSES),
                       (Migration.source_environment_id == environment.id)
                       | (Migration.target_environment_id == environment.id)).limit(1))
            if moving is not None:
                raise self.fail(Refused, where, (
                    f"environment {environment.code} is in migration {moving}, whose transfer has "
                    "not finished: its documents are on their way between the two archives; "
                    f"finish it first (`basecone-migrate resume {moving}`)"))
        audit.record(self.session, at=self.rt.now(), actor=self.rt.settings.user or audit.SYSTEM,
                     action="storage", environment=environment.code, before=before, after=after,
                     same_place=not moved)

    def check_roots(self) -> None:
        """No two environments share an archive root, under any spelling, or hold one inside
        the other: a move between them would remove what it moved."""
        from basecone_migrate.errors import UsageProblem

        rows = self.session.execute(select(Environment.code, Environment.storage)
                                    .order_by(Environment.code)).all()
        places: list[tuple[tuple[str, ...], str, str]] = []
        folders: dict[tuple[int, int], tuple[str, str]] = {}
        for row in rows:
            url = self.rt.archive_url(row)
            try:
                archive = self.rt.open_archive(url)
            except UsageProblem:  # no driver for it here: nothing can move to or from it anyway
                continue
            places.append((archive.place(), row.code, url))
            inode = archive.device_inode() if archive.is_local else None
            if inode is not None:
                if inode in folders:
                    self._share(folders[inode], (row.code, url), "are one place")
                folders[inode] = (row.code, url)
        outer: list[tuple[tuple[str, ...], str, str]] = []
        for place, code, url in sorted(places):
            while outer and outer[-1][0] != place[:len(outer[-1][0])]:
                outer.pop()
            if outer and outer[-1][0] == place:
                self._share(*sorted([outer[-1][1:], (code, url)]), "are one place")
            if outer:
                self._share(outer[-1][1:], (code, url), "are one inside the other")
            outer.append((place, code, url))

    def _share(self, first: tuple[str, str], second: tuple[str, str], how: str) -> None:
        raise Refused(f"{self.path}: the archive roots of environments {first[0]} ({first[1]}) and "
                      f"{second[0]} ({second[1]}) {how}: a move between them could remove what "
                      "it moved; give each environment a storage of its own")

    def user(self, where: str, environment: Environment, user: UserIn) -> User:
        existing = self.session.scalar(select(User).where(User.email == user.email))
        if existing is not None and existing.environment_id != environment.id:
            raise self.fail(Refused, where, f"user {user.email} belongs to environment "
                            f"{existing.environment.code}; a user has one environment")
        name = user.name or user.email.split("@")[0]
        return self._upsert(
            "users", existing,
            lambda: User(email=user.email, name=name, role=user.role, environment_id=environment.id),
            name=name, role=user.role,
        )

    def system(self, where: str, environment: Environment, system: AccountingSystemIn) -> None:
        existing = self.session.get(AccountingSystem, system.id)
        if existing is not None and existing.environment_id != environment.id:
            raise self.fail(Refused, where, f"accounting system {system.id!r} belongs to "
                            f"environment {existing.environment.code}")
        name = system.name or system.id
        self._upsert(
            "accounting_systems", existing,
            lambda: AccountingSystem(id=system.id, environment_id=environment.id,
                                     package=system.package, name=name),
            package=system.package, name=name,
        )
        self.session.flush()
        for entry in system.catalogue:
            found = self.session.scalar(select(CatalogueEntry).where(
                CatalogueEntry.accounting_system_id == system.id, CatalogueEntry.code == entry.code))
            self._upsert(
                "catalogue_entries", found,
                lambda entry=entry: CatalogueEntry(accounting_system_id=system.id,
                                                   code=entry.code, name=entry.name),
                name=entry.name,
            )

    def _member(self, where: str, environment: Environment, email: str) -> User:
        user = self.session.scalar(select(User).where(User.email == email))
        if user is None:
            raise self.fail(NotFound, where, f"unknown user {email!r} (declare it under "
                            "this environment's users)")
        if user.environment_id != environment.id:
            raise self.fail(Refused, where, f"user {email} belongs to environment "
                            f"{user.environment.code}, not {environment.code}")
        return user

    def administration(self, where: str, environment: Environment,
                       admin: AdministrationIn) -> _Target | None:
        system = self.session.get(AccountingSystem, admin.accounting_system)
        if system is None:
            raise self.fail(NotFound, f"{where}.accounting_system",
                            f"unknown accounting system {admin.accounting_system!r} (declare it "
                            "under this environment's accounting_systems)")
        if system.environment_id != environment.id:
            raise self.fail(Refused, f"{where}.accounting_system",
                            f"accounting system {system.id!r} belongs to environment "
                            f"{system.environment.code}, not {environment.code}")
        documents = _Files(f"{where}.documents", self.folders, admin.documents, self.documents_anywhere)
        try:
            self._check_documents(documents)
        finally:
            documents.close()
        members = [self._member(f"{where}.users[{k}]", environment, email)
                   for k, email in enumerate(admin.users)]
        authorisers = [[self._member(f"{where}.workflows[{k}].authorisers[{m}]", environment, email)
                        for m, email in enumerate(workflow.authorisers)]
                       for k, workflow in enumerate(admin.workflows)]

        matches = list(self.session.scalars(select(Administration).where(
            Administration.environment_id == environment.id, Administration.code == admin.code)))
        existing = next((a for a in matches if a.name == admin.name), None) or next(iter(matches), None)
        if existing is None:
            moved = self._moved_away(environment, admin)
            if moved is not None:  # seed data does not undo a migration
                self.counts["administrations"]["unchanged"] += 1
                self.notes.append(f"{where}: {environment.code}/{admin.code} {admin.name} was "
                                  f"{moved}; left as it is, with its documents, users and workflows")
                return None
        relinked = existing is not None and existing.accounting_system_id != system.id and \
            self._relinked(existing)
        if relinked:
            self.notes.append(f"{where}: {environment.code}/{admin.code} {admin.name} was re-linked "
                              f"to {existing.accounting_system_id} by `link`; it stays linked there")
        model = self._upsert(
            "administrations", existing,
            lambda: Administration(environment_id=environment.id, accounting_system_id=system.id,
                                   code=admin.code, name=admin.name),
            name=admin.name,
            accounting_system_id=existing.accounting_system_id if relinked else system.id,
        )
        self.session.flush()

        have = set(self.session.scalars(select(Access.user_id).where(Access.administration_id == model.id)))
        for user in members:
            if user.id in have:
                self.counts["access"]["unchanged"] += 1
            else:
                self.session.add(Access(administration_id=model.id, user_id=user.id))
                have.add(user.id)
                self.counts["access"]["created"] += 1
        for workflow, users in zip(admin.workflows, authorisers, strict=True):
            found = self.session.scalar(select(Workflow).where(
                Workflow.administration_id == model.id, Workflow.name == workflow.name))
            flow = self._upsert("workflows", found,
                                lambda workflow=workflow: Workflow(administration_id=model.id,
                                                                   name=workflow.name))
            self.session.flush()
            listed = set(self.session.scalars(select(WorkflowAuthoriser.user_id)
                                              .where(WorkflowAuthoriser.workflow_id == flow.id)))
            for user in users:
                if user.id in listed:
                    self.counts["authorisers"]["unchanged"] += 1
                else:
                    self.session.add(WorkflowAuthoriser(workflow_id=flow.id, user_id=user.id))
                    listed.add(user.id)
                    self.counts["authorisers"]["created"] += 1
        return _Target(model, documents, existing is None)

    def _check_documents(self, documents: _Files) -> None:
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

    def _moved_away(self, environment: Environment, admin: AdministrationIn) -> str | None:
        """How the file's administration left this place (another office, or a new code),
        found by its old mail address, which stays an alias of it; None if it never did."""
        from basecone_migrate.services import aliases

        routed = aliases.routed_alias(self.session, administration_email(environment.code, admin.code))
        now = self.session.get(Administration, routed) if routed is not None else None
        if now is None or now.name != admin.name:
            return None
        if now.environment_id != environment.id:
            return f"moved to {now.environment.code} (now {now.environment.code}/{now.code}, id {now.id})"
        return f"re-coded to {now.code} (id {now.id})"

    def _relinked(self, existing: Administration) -> bool:
        """Whether `link` or a move linked it where it is: then the tool, not the file, owns it."""
        return self.session.scalar(select(AuditEntry.id).where(
            AuditEntry.administration_id == existing.id,
            AuditEntry.action.in_(("link", "transfer_complete"))).limit(1)) is not None

    # -- documents ---------------------------------------------------------------

    def hold(self, target: _Target, environment: Environment) -> _Documents | None:
        """In the entities' transaction: refuse, before anything changes, documents for an
        administration that is being moved; what to copy once that transaction is in."""
        from basecone_migrate.services.migrations.common import refuse_while_moving

        if not target.documents:
            return None
        admin = target.model
        self.session.execute(select(Administration.id).where(Administration.id == admin.id)
                             .with_for_update())
        try:
            refuse_while_moving(self.session, admin, "load its documents")
        except Refused as refused:
            raise self.fail(Refused, target.documents.where, refused.message) from None
        from basecone_migrate.services.lookup import Place

        place = Place(environment.id, environment.code, environment.storage)
        return _Documents(admin.id, environment.id, self.rt.archive(place, claim=False),
                          target.documents, place)

    def documents(self, todo: _Documents) -> None:
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
            self.documents_count["added"] += len(pending)
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
                                    + self._loaded_so_far()) from None

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
                                    f"{os_reason(stored)}" + self._loaded_so_far()) from None
                if stored is None or stored.sha256 in known:
                    self.documents_count["already_present"] += 1
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

    def _loaded_so_far(self) -> str:
        added = self.documents_count["added"]
        return (f" ({added} documents before it are loaded; fix this and load the file again "
                "to finish)") if added else ""

    def run(self, world: WorldIn) -> list[_Documents]:
        """Upsert everything but the documents; returns the documents to copy."""
        self.check_duplicates(world)
        # Everything an administration can refer to exists before the first one is read.
        environments = []
        for i, env_in in enumerate(world.environments):
            e = f"environments[{i}]"
            environment = self.environment(i, env_in)
            environments.append(environment)
            for j, user in enumerate(env_in.users):
                self.user(f"{e}.users[{j}].email", environment, user)
            self.session.flush()
            for j, system in enumerate(env_in.accounting_systems):
                self.system(f"{e}.accounting_systems[{j}].id", environment, system)
        self.session.flush()
        self.check_roots()
        targets: list[tuple[_Target, Environment]] = []
        for i, (env_in, environment) in enumerate(zip(world.environments, environments, strict=True)):
            for j, admin in enumerate(env_in.administrations):
                target = self.administration(f"environments[{i}].administrations[{j}]", environment,
                                             admin)
                if target is not None:
                    targets.append((target, environment))
        self.session.flush()
        copies = [self.hold(target, environment) for target, environment in targets]
        self.session.flush()
        return [todo for todo in copies if todo is not None]

    def report(self) -> dict[str, dict[str, int]]:
        report = {
            kind: {state: counter[state] for state in ("created", "updated", "unchanged")}
            for kind, counter in self.counts.items()
        }
        report["documents"] = {state: self.documents_count[state]
                               for state in ("added", "already_present")}
        return report


def load_world(rt: Runtime, path: Path, documents_anywhere: bool = False) -> tuple[dict[str, Any], list[str]]:
    """Load the file; returns the counts per kind and why anything was left as it is.

    Documents must lie in the file's folder, reached without a symbolic link, unless
    ``documents_anywhere``.

    Every check runs first (the file, every document path, the moves in progress); the
    environments, users, connections and administrations go in one transaction; then the
    documents are copied outside it and recorded in batches, so a big archive holds
    neither SQLite's write lock nor the memory for minutes. Loading is an idempotent
    upsert: a load that stopped while copying is finished by loading the file again.
    """
    path = Path(path)
    world = parse_world(path)
    with rt.uow() as uow:
        loader = _Loader(rt, uow.session, path.resolve(), Path(os.path.abspath(path)),
                         documents_anywhere)
        try:
            copies = loader.run(world)
            uow.commit()
        except IntegrityError as exc:
            raise Refused(f"{path}: conflicts with what the database holds: "
                          f"{_constraint(exc)}") from None
    del world
    try:
        for todo in copies:
            loader.documents(todo)
    except IntegrityError as exc:  # another load recorded the same document meanwhile
        raise Refused(f"{path}: conflicts with what the database holds: {_constraint(exc)}; "
                      "load the file again") from None
    finally:
        report = loader.report()
        changed = report["documents"]["added"] or any(
            counts["created"] or counts["updated"]
            for kind, counts in report.items() if kind != "documents")
        if changed:  # a load that changes nothing leaves no trace either
            with rt.uow() as uow:
                audit.record(uow.session, at=rt.now(), actor=rt.settings.user or audit.SYSTEM,
                             action="load", file=str(path.resolve()), summary=report)
                uow.commit()
    return report, loader.notes


def _constraint(exc: IntegrityError) -> str:
    return str(exc.orig).strip().splitlines()[0]
