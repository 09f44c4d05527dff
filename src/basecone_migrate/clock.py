"""The tool's clock: the real time, unless BASECONE_MIGRATE_NOW sets another instant.

That setting exists for tests and for replaying cron: it decides what has expired, whether
a user is locked out, when a `--start-after` instant comes (`real_time_of`) and the ``at``
of every audit row. It is read from the environment
only (never a config file, which could be left behind), and while it is in force every
command says so on stderr. The audit's ``recorded_at`` keeps the real time regardless.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

VARIABLE = "BASECONE_MIGRATE_NOW"
#: The one line every command prints on stderr (after ``Warning: ``) while it is in force.
WARNING = ("the clock is set by BASECONE_MIGRATE_NOW to {value}, not the real time: expiry, "
           "lock-outs, scheduled starts and the audit's `at` follow it (`recorded_at` keeps the "
           "real time)")


def warning(environ: Mapping[str, str]) -> str | None:
    """The warning for a clock set in ``environ``; None while the real clock is in force."""
    value = environ.get(VARIABLE, "").strip()
    return WARNING.format(value=value) if value else None


def parse_instant(text: str) -> datetime:
    """An ISO-8601 instant; without an offset it is taken as UTC."""
    value = datetime.fromisoformat(text.strip())
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def real_time_of(instant: datetime, clock_now: datetime | None) -> datetime:
    """The real time at which the tool's clock will read ``instant``: ``instant`` itself on
    the real clock; with the clock set to ``clock_now`` (BASECONE_MIGRATE_NOW), as far from
    the real time now as ``instant`` is from ``clock_now``. A worker compares a job's start
    with the database's real clock, so a `--start-after` a day after the set clock starts a
    day from now, not at once because the set clock lies in the past."""
    if clock_now is None:
        return instant
    return datetime.now(UTC) + (instant - clock_now)
