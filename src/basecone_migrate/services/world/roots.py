"""The environments' archive roots as a world file sets them: a new ``storage`` for an
environment that holds documents is refused unless it is another name of the same place, and
no two environments may share a root, under any spelling, or hold one inside the other."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from basecone_migrate.db.models import (
    Administration,
    Document,
    Environment,
    Migration,
    MigrationItem,
)
from basecone_migrate.db.tables import UNFINISHED_STATUSES
from basecone_migrate.errors import Refused
from basecone_migrate.runtime import Runtime
from basecone_migrate.services import audit


def repoint(rt: Runtime, session: Session, path: Path, where: str, environment: Environment,
            storage: str | None) -> None:
    """A new ``storage`` for an environment: another spelling of the same place is fine;
    another place is refused while the environment holds documents (they would all be
    missing there), else made and audited."""
    from basecone_migrate.errors import UsageProblem
    from basecone_migrate.storage import environment_root

    before = rt.archive_url(environment)
    after = environment_root(rt.storage_root, environment.code, storage)
    try:
        moved = not rt.open_archive(before).same_place(rt.open_archive(after))
    except UsageProblem:  # no driver for one of them: only the same spelling is the same
        moved = before != after
    if moved:
        held = session.scalar(
            select(func.count(Document.id)).join(Administration)
            .where(Administration.environment_id == environment.id))
        if held:
            raise _refused(path, where, (
                f"environment {environment.code} holds {held} documents in {before}; this file "
                f"would point it at {after}, where they are not: keep its storage as it is "
                "(or move the documents there first)"))
        moving = session.scalar(
            select(MigrationItem.migration_id).join(Migration)
            .where(MigrationItem.status.in_(UNFINISHED_STATUSES),
                   (Migration.source_environment_id == environment.id)
                   | (Migration.target_environment_id == environment.id)).limit(1))
        if moving is not None:
            raise _refused(path, where, (
                f"environment {environment.code} is in migration {moving}, whose transfer has "
                "not finished: its documents are on their way between the two archives; "
                f"finish it first (`basecone-migrate resume {moving}`)"))
    audit.record(session, at=rt.now(), actor=rt.settings.user or audit.SYSTEM,
                 action="storage", environment=environment.code, before=before, after=after,
                 same_place=not moved)


def _refused(path: Path, where: str, message: str) -> Refused:
    return Refused(f"{path}: {where}: {message}")


def check_roots(rt: Runtime, session: Session, path: Path) -> None:
    """No two environments share an archive root, under any spelling, or hold one inside
    the other: a move between them would remove what it moved."""
    from basecone_migrate.errors import UsageProblem

    rows = session.execute(select(Environment.code, Environment.storage)
                           .order_by(Environment.code)).all()
    places: list[tuple[tuple[str, ...], str, str]] = []
    folders: dict[tuple[int, int], tuple[str, str]] = {}
    for row in rows:
        url = rt.archive_url(row)
        try:
            archive = rt.open_archive(url)
        except UsageProblem:  # no driver for it here: nothing can move to or from it anyway
            continue
        places.append((archive.place(), row.code, url))
        inode = archive.device_inode() if archive.is_local else None
        if inode is not None:
            if inode in folders:
                _share(path, folders[inode], (row.code, url), "are one place")
            folders[inode] = (row.code, url)
    outer: list[tuple[tuple[str, ...], str, str]] = []
    for place, code, url in sorted(places):
        while outer and outer[-1][0] != place[:len(outer[-1][0])]:
            outer.pop()
        if outer and outer[-1][0] == place:
            _share(path, *sorted([outer[-1][1:], (code, url)]), "are one place")
        if outer:
            _share(path, outer[-1][1:], (code, url), "are one inside the other")
        outer.append((place, code, url))


def _share(path: Path, first: tuple[str, str], second: tuple[str, str], how: str) -> None:
    raise Refused(f"{path}: the archive roots of environments {first[0]} ({first[1]}) and "
                  f"{second[0]} ({second[1]}) {how}: a move between them could remove what "
                  "it moved; give each environment a storage of its own")
