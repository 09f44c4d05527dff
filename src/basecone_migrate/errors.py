"""The domain's exceptions, each knowing the exit code the contract gives it.

Only the CLI turns these into an ``Error: ...`` line and an exit status; the
library raises them and never prints.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, ClassVar


class ExitCode(IntEnum):
    """Exit statuses: the contract's table (docs/cli.md), plus 70 for a bug and 130 for Ctrl-C."""

    OK = 0
    REFUSED = 1  # refused by a rule
    USAGE = 2  # missing or malformed option
    NOT_FOUND = 3  # a named thing does not exist
    NOT_ALLOWED = 4  # no acting user, wrong role, not a recipient, locked out
    INCOMPLETE = 5  # a transfer did not finish; `resume` can finish it
    INTERNAL = 70  # an unexpected failure (EX_SOFTWARE): a bug or an unreachable service
    INTERRUPTED = 130  # Ctrl-C (SIGINT), as shells report it: 128 + 2


class BaseconeError(Exception):
    """A refusal the user can act on. ``payload`` is still printed under ``--json``."""

    exit_code: ClassVar[ExitCode] = ExitCode.REFUSED

    def __init__(self, message: str, *, payload: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.payload = payload


class Refused(BaseconeError):
    exit_code = ExitCode.REFUSED


class UsageProblem(BaseconeError):
    exit_code = ExitCode.USAGE


class NotFound(BaseconeError):
    exit_code = ExitCode.NOT_FOUND


class NotAllowed(BaseconeError):
    exit_code = ExitCode.NOT_ALLOWED


class TransferIncomplete(BaseconeError):
    exit_code = ExitCode.INCOMPLETE


class Undelivered(BaseconeError):
    """Mail that stays queued after `mail flush`: exit 5, like an unfinished transfer, so that
    cron notices something is left to do."""

    exit_code = ExitCode.INCOMPLETE
