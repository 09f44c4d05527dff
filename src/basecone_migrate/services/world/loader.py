"""The upsert of a world file's entities (environments, users, connections, catalogues,
administrations, access, workflows) in one transaction, and `load_world`, which then has
the documents copied (`copying`)."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from basecone_migrate.db.models import (
    Access,
    AccountingSystem,
    Administration,
    AuditEntry,
    CatalogueEntry,
    Environment,
    User,
    Workflow,
    WorkflowAuthoriser,
)
from basecone_migrate.domain.rules import administration_email
from basecone_migrate.errors import BaseconeError, NotFound, Refused
from basecone_migrate.runtime import Runtime
from basecone_migrate.services import audit
from basecone_migrate.services.world.copying import Copier, Documents, Files
from basecone_migrate.services.world.roots import check_roots, repoint
from basecone_migrate.services.world.schema import (
    AccountingSystemIn,
    AdministrationIn,
    EnvironmentIn,
    UserIn,
    WorldIn,
    parse_world,
)

KINDS = ("environments", "users", "accounting_systems", "catalogue_entries",
         "administrations", "access", "workflows", "authorisers")



@dataclass
class _Target:
    """An administration of the file with the documents to load into it."""

    model: Administration
    documents: Files
    is_new: bool



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
        self.copier = Copier(rt, path)
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
            repoint(self.rt, self.session, self.path, f"environments[{i}].storage", existing, storage)
        model = self._upsert(
            "environments", existing,
            lambda: Environment(code=env.code, name=env.name, plan=env.plan, storage=storage),
            name=env.name, plan=env.plan, storage=storage,
        )
        self.session.flush()
        return model

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
        documents = Files(f"{where}.documents", self.folders, admin.documents, self.documents_anywhere)
        try:
            self.copier.check(documents)
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
        self._add_missing("access", have, members,
                          lambda user_id: Access(administration_id=model.id, user_id=user_id))
        for workflow, users in zip(admin.workflows, authorisers, strict=True):
            found = self.session.scalar(select(Workflow).where(
                Workflow.administration_id == model.id, Workflow.name == workflow.name))
            flow = self._upsert("workflows", found,
                                lambda workflow=workflow: Workflow(administration_id=model.id,
                                                                   name=workflow.name))
            self.session.flush()
            listed = set(self.session.scalars(select(WorkflowAuthoriser.user_id)
                                              .where(WorkflowAuthoriser.workflow_id == flow.id)))
            self._add_missing("authorisers", listed, users,
                              lambda user_id, flow=flow: WorkflowAuthoriser(workflow_id=flow.id, user_id=user_id))
        return _Target(model, documents, existing is None)

    def _add_missing(self, kind: str, present: set[int], users: Any, make: Any) -> None:
        """Link each of ``users`` not linked yet (``make(user_id)``), counting both kinds."""
        for user in users:
            if user.id in present:
                self.counts[kind]["unchanged"] += 1
            else:
                self.session.add(make(user.id))
                present.add(user.id)
                self.counts[kind]["created"] += 1


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


    def run(self, world: WorldIn) -> list[Documents]:
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
        check_roots(self.rt, self.session, self.path)
        targets: list[tuple[_Target, Environment]] = []
        for i, (env_in, environment) in enumerate(zip(world.environments, environments, strict=True)):
            for j, admin in enumerate(env_in.administrations):
                target = self.administration(f"environments[{i}].administrations[{j}]", environment,
                                             admin)
                if target is not None:
                    targets.append((target, environment))
        self.session.flush()
        copies = [self.copier.hold(self.session, target.model, target.documents, environment)
                  for target, environment in targets]
        self.session.flush()
        return [todo for todo in copies if todo is not None]

    def report(self) -> dict[str, dict[str, int]]:
        report = {
            kind: {state: counter[state] for state in ("created", "updated", "unchanged")}
            for kind, counter in self.counts.items()
        }
        report["documents"] = {state: self.copier.counts[state]
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
            loader.copier.copy(todo)
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
