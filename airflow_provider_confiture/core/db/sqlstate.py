"""The SQLSTATE codes the engine reacts to, by name (PostgreSQL, Appendix A "Error Codes").

Both drivers expose the code of a server error (``dbapi.sqlstate``); testing names instead of bare
strings says what is meant, and one place decides which failures can heal on a retry.
"""

from __future__ import annotations

#: Class 23, integrity constraint violation (NOT NULL, FOREIGN KEY, UNIQUE, CHECK, EXCLUSION).
INTEGRITY_CONSTRAINT_VIOLATION_CLASS = "23"
#: Class 08, connection exception.
CONNECTION_EXCEPTION_CLASS = "08"
ADMIN_SHUTDOWN = "57P01"
CRASH_SHUTDOWN = "57P02"
CANNOT_CONNECT_NOW = "57P03"
#: A statement_timeout expired, or the statement was cancelled.
QUERY_CANCELED = "57014"
#: lock_timeout expired, or NOWAIT found the lock taken.
LOCK_NOT_AVAILABLE = "55P03"
DEADLOCK_DETECTED = "40P01"
SERIALIZATION_FAILURE = "40001"
#: Out of memory, disk full, too many connections...: class 53, insufficient resources.
INSUFFICIENT_RESOURCES_CLASS = "53"

SERVER_GONE = frozenset({ADMIN_SHUTDOWN, CRASH_SHUTDOWN, CANNOT_CONNECT_NOW})


def is_connection_loss(code: str) -> bool:
    return code in SERVER_GONE or code.startswith(CONNECTION_EXCEPTION_CLASS)


def is_transient(code: str) -> bool:
    """Whether the same statement may succeed when simply tried again."""
    return (
        is_connection_loss(code)
        or code in (QUERY_CANCELED, LOCK_NOT_AVAILABLE, DEADLOCK_DETECTED, SERIALIZATION_FAILURE)
        or code.startswith(INSUFFICIENT_RESOURCES_CLASS)
    )
