"""Database connections for the operators, always through ``PostgresHook``.

Defaults make every step fail rather than hang: a connect timeout, TCP keepalives, and (on the
source) read-only sessions, so no step can ever write to the source. Values already set in the
Airflow connection's extras win over these defaults.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

from airflow.providers.postgres.hooks.postgres import PostgresHook
from airflow.sdk.exceptions import AirflowNotFoundException

from airflow_provider_confiture.core.db import dbapi
from airflow_provider_confiture.core.db.dbapi import Connection
from airflow_provider_confiture.core.errors import ConnectionFailedError
from airflow_provider_confiture.core.link.transport import ConnectionSecurity

#: libpq parameters added to a connection's extras unless the connection sets them itself.
LIBPQ_DEFAULTS: dict[str, Any] = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "application_name": "airflow-confiture",
}


def get_airflow_connection(conn_id: str) -> Any:
    """The Airflow connection ``conn_id``; a missing one is explained (which id, how to define it)."""
    try:
        return PostgresHook.get_connection(conn_id)
    except AirflowNotFoundException as exc:
        raise ConnectionFailedError(
            f"Airflow connection {conn_id!r} is not defined: create it (Admin > Connections, `airflow "
            f"connections add {conn_id} ...`, or the environment variable AIRFLOW_CONN_{conn_id.upper()}), "
            "or fix the operator's *_conn_id argument",
            retryable=False,  # nothing changes between attempts: fail at once
        ) from exc


def make_hook(conn_id: str, *, database: str | None = None, options: str | None = None) -> PostgresHook:
    airflow_conn = get_airflow_connection(conn_id)
    extras = dict(airflow_conn.extra_dejson)
    missing = {key: value for key, value in LIBPQ_DEFAULTS.items() if key not in extras}
    # libpq takes one "options" string, and the hook lets the connection's extra replace ours: a
    # connection setting e.g. search_path there silently dropped read-only and the timeouts. Merge
    # them instead, ours last so that they win.
    own_options = extras.pop("options", None)
    if own_options:
        options = f"{own_options} {options}" if options else str(own_options)
    if missing or own_options:
        from copy import deepcopy

        airflow_conn = deepcopy(airflow_conn)
        airflow_conn.extra = json.dumps({**extras, **missing})
    # Handed to the constructor: assigning hook.connection afterwards is a no-op in the SQL hooks
    # (a backward-compatibility setter that only logs a warning), so the defaults never applied.
    return PostgresHook(postgres_conn_id=conn_id, database=database, options=options, connection=airflow_conn)


def session_options(settings: dict[str, str | int | None]) -> str:
    """libpq ``options`` string setting server parameters at connect time (``-c name=value``)."""
    parts = []
    for name, value in settings.items():
        if value is None:
            continue
        text = str(value).replace("\\", "\\\\").replace(" ", "\\ ")
        parts.append(f"-c {name}={text}")
    return " ".join(parts)


@contextlib.contextmanager
def connect(
    conn_id: str,
    *,
    database: str | None = None,
    read_only: bool = False,
    statement_timeout: str | None = None,
    idle_in_transaction_timeout: str | None = "15min",
    autocommit: bool = False,
) -> Iterator[Any]:
    """A DB-API connection (psycopg 3 or psycopg2, as the hook hands out), closed on exit."""
    settings: dict[str, str | int | None] = dict(dbapi.DETERMINISTIC_SETTINGS)
    settings.pop("client_encoding")
    settings["statement_timeout"] = statement_timeout
    settings["idle_in_transaction_session_timeout"] = idle_in_transaction_timeout
    if read_only:
        settings["default_transaction_read_only"] = "on"
    hook = make_hook(conn_id, database=database, options=session_options(settings))
    try:
        conn: Connection = hook.get_conn()  # type: ignore[assignment]  # psycopg 3 or psycopg2
    except dbapi.DB_ERRORS as exc:
        c = hook.connection  # never its password: the server's message does not hold it either
        address = f"{c.host or 'localhost'}:{c.port or 5432}/{database or c.schema or ''} as {c.login!r}"
        text = dbapi.error_text(exc)
        encryption = (
            " The server accepts only encrypted connections: set sslmode in the connection's extras "
            "(verify-full, with sslrootcert naming the CA file on this worker)."
            if "no encryption" in text
            else ""
        )
        raise ConnectionFailedError(
            f"cannot connect to Airflow connection {conn_id!r} ({address}): {text}. Check the "
            "connection's host, port, database, login and password, and that the server accepts "
            f"connections from this worker.{encryption}",
            retryable=False if encryption else None,
        ) from exc
    try:
        conn.autocommit = autocommit
        dbapi.set_session(conn, {"client_encoding": "UTF8"})
        if not autocommit:
            conn.commit()
        yield conn
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def connection_security(conn_id: str) -> ConnectionSecurity:
    """The connection's extras (its libpq settings), for the link's transport security."""
    return ConnectionSecurity(conn_id, dict(get_airflow_connection(conn_id).extra_dejson))


def connection_target(conn_id: str) -> dict[str, Any]:
    """host/port/dbname/login/password of an Airflow connection (for the FDW link; never logged)."""
    c = get_airflow_connection(conn_id)
    return {
        "host": c.host or "localhost",
        "port": int(c.port or 5432),
        "dbname": c.schema or "postgres",
        "user": c.login,
        "password": c.password,
    }
