"""Who runs this process: the operating-system user and host, written into every audit row
beside the acting (``--as``) user, which anyone running the tool can assert.

On PostgreSQL the database adds the session's role itself (a trigger, revision 0010), which
no option of the tool can set: give each support engineer a role of their own and the audit
names them (docs/operations.md, "Who acted").
"""

from __future__ import annotations

import functools


@functools.cache
def os_operator() -> str:
    """``user@host`` of this process; a user without a name in the system's user database
    (a container's bare uid) reads ``uid N``."""
    import getpass
    import os
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()}"[:200]


def describe(os_part: str | None, db_role: str | None) -> str | None:
    """The operator as `audit` shows it: ``user@host``, with the database role where the
    database recorded one (PostgreSQL)."""
    if not os_part and not db_role:
        return None
    if not db_role:
        return os_part
    return f"{os_part or 'unknown'}, database role {db_role}"
