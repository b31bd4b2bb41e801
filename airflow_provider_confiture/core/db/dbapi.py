"""Driver-neutral access to a DB-API connection: psycopg 3 or psycopg2.

``PostgresHook.get_conn()`` hands out a psycopg 3 connection by default and a psycopg2 one on older
stacks; users may also configure a dict/namedtuple cursor in the connection's extras. The engine must
work with whichever it gets, so every query goes through these helpers:

* SQL is always composed with :mod:`psycopg.sql` (``Identifier``/``Literal``); for a psycopg2
  connection the composed statement is rendered by psycopg itself (never by string formatting here).
* Cursors are always plain tuple cursors, whatever the connection's default row factory is.
* Database errors of either driver are recognised and their diagnostics read the same way.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, TypeGuard

import psycopg
import psycopg2
import psycopg2.extensions
from psycopg import sql
from psycopg.rows import tuple_row

Query = sql.Composable | str


class Connection(Protocol):
    """What the engine needs of a DB-API connection: a psycopg 3 ``Connection`` or a psycopg2
    ``connection`` (as ``PostgresHook.get_conn()`` hands out) satisfies it. The engine never relies
    on anything driver-specific outside this module."""

    autocommit: bool

    def cursor(self, *args: Any, **kwargs: Any) -> Any: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def close(self) -> None: ...

    def fileno(self) -> int: ...


#: Exceptions raised by the server or the client library of either driver.
DB_ERRORS: tuple[type[BaseException], ...] = (psycopg.Error, psycopg2.Error)


def is_psycopg3(conn: Connection) -> TypeGuard[psycopg.Connection[Any]]:
    return isinstance(conn, psycopg.Connection)


def driver_name(conn: Connection) -> str:
    return "psycopg3" if is_psycopg3(conn) else "psycopg2"


def render(conn: Connection, query: Query) -> Any:
    """Return ``query`` in the form ``conn``'s driver executes."""
    if isinstance(query, str) or is_psycopg3(conn):
        return query
    return query.as_string(None)


@contextmanager
def cursor(conn: Connection) -> Iterator[Any]:
    """A plain tuple cursor, whatever row factory the connection was configured with."""
    if is_psycopg3(conn):
        cur = conn.cursor(row_factory=tuple_row)
    else:
        cur = conn.cursor(cursor_factory=psycopg2.extensions.cursor)
    try:
        yield cur
    finally:
        cur.close()


def execute(conn: Connection, query: Query, params: Sequence[Any] | None = None) -> int:
    """Run one statement; return its rowcount."""
    with cursor(conn) as cur:
        cur.execute(render(conn, query), params)
        return int(cur.rowcount)


def fetch_all(conn: Connection, query: Query, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
    with cursor(conn) as cur:
        cur.execute(render(conn, query), params)
        return list(cur.fetchall())


def fetch_one(conn: Connection, query: Query, params: Sequence[Any] | None = None) -> tuple[Any, ...] | None:
    with cursor(conn) as cur:
        cur.execute(render(conn, query), params)
        row: tuple[Any, ...] | None = cur.fetchone()
        return row


def fetch_value(conn: Connection, query: Query, params: Sequence[Any] | None = None) -> Any:
    row = fetch_one(conn, query, params)
    return None if row is None else row[0]


def shutdown_socket(conn: Connection) -> None:
    """Break a connection stuck on the network: shutting its socket down wakes any blocked call
    (in this process, whichever thread is waiting) with an error instead of waiting forever."""
    import os
    import socket

    try:
        sock = socket.socket(fileno=os.dup(conn.fileno()))
    except Exception:  # noqa: BLE001 - already closed: nothing to break
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.close()


def sqlstate(exc: BaseException) -> str | None:
    return getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)


def diag(exc: BaseException, field: str) -> str | None:
    """Read a diagnostic field (``constraint_name``, ``message_detail``, ``table_name``...)."""
    d = getattr(exc, "diag", None)
    return getattr(d, field, None) if d is not None else None


def error_text(exc: BaseException) -> str:
    """The server's message (primary + detail + hint) without the driver's decorations."""
    primary = (
        diag(exc, "message_primary") or str(exc).strip().splitlines()[0]
        if str(exc).strip()
        else type(exc).__name__
    )
    parts = [primary]
    for field, label in (("message_detail", "DETAIL"), ("message_hint", "HINT")):
        value = diag(exc, field)
        if value:
            parts.append(f"{label}: {value}")
    return "; ".join(parts).rstrip(".")  # callers continue the sentence


def backend_pid(conn: Connection) -> int:
    return int(fetch_value(conn, "SELECT pg_backend_pid()"))


def safe_rollback(conn: Connection) -> None:
    """Roll back, ignoring a connection that is already broken (the server rolls it back anyway)."""
    try:
        conn.rollback()
    except DB_ERRORS:
        pass
    except Exception:  # noqa: BLE001 - a closed or half-dead connection must not hide the real error
        pass


#: Session settings that make text output identical on both sides (checksums compare text).
DETERMINISTIC_SETTINGS: dict[str, str] = {
    "TimeZone": "UTC",
    "DateStyle": "ISO, MDY",
    "IntervalStyle": "postgres",
    "extra_float_digits": "1",
    "bytea_output": "hex",
    "client_encoding": "UTF8",
}


def set_session(conn: Connection, settings: Mapping[str, str | int | None]) -> None:
    """``SET`` each setting (session level), skipping None values; commits nothing."""
    for name, value in settings.items():
        if value is None:
            continue
        execute(
            conn,
            sql.SQL("SELECT set_config({}, {}, false)").format(sql.Literal(name), sql.Literal(str(value))),
        )


def use_deterministic_output(conn: Connection) -> None:
    """Pin the settings that shape text output (TimeZone, DateStyle, ...) for the session.

    COPY's text format and verify's checksums compare text produced by two different servers, whose
    defaults may differ. Commits (a SET inside a rolled-back transaction would be undone).
    """
    set_session(conn, DETERMINISTIC_SETTINGS)
    conn.commit()
