"""The migration's own bookkeeping, kept in schema ``_confiture`` of the target database.

State lives next to the data it describes, so any worker (and a re-run days later) sees the same
facts: which DDL files were applied, which foreign keys are deferred until the load ends, what each
table's last load saw on the source, the guard on each migrated table (``target_guard``: has anyone
else written to it since?), and whether setup created the postgres_fdw extension (cleanup
drops it only then). Cleanup removes the schema when the migration is finished.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

from airflow_provider_confiture.core.db import dbapi
from airflow_provider_confiture.core.db.dbapi import Connection

STATE_SCHEMA = "_confiture"

_DDL = [
    "CREATE SCHEMA IF NOT EXISTS {s}",
    """CREATE TABLE IF NOT EXISTS {s}.applied_ddl (
        file text PRIMARY KEY, sha256 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())""",
    """CREATE TABLE IF NOT EXISTS {s}.deferred_foreign_key (
        table_schema text NOT NULL, table_name text NOT NULL, constraint_name text NOT NULL,
        definition text NOT NULL, deferred_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (table_schema, table_name, constraint_name))""",
    """CREATE TABLE IF NOT EXISTS {s}.table_load (
        table_schema text NOT NULL, table_name text NOT NULL, part text NOT NULL DEFAULT '',
        strategy text NOT NULL, rows bigint NOT NULL, seconds double precision NOT NULL,
        source_inserts bigint, source_updates bigint, source_deletes bigint, source_snapshot text,
        loaded_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (table_schema, table_name, part))""",
    """CREATE TABLE IF NOT EXISTS {s}.setting (
        name text PRIMARY KEY, value text NOT NULL)""",
    # The target guard of each migrated table (core/db/target_guard.py): its trigger's sequences and
    # the counter value its last load started from (writes beyond it are not the migration's).
    """CREATE TABLE IF NOT EXISTS {s}.target_guard (
        table_schema text NOT NULL, table_name text NOT NULL, table_oid oid NOT NULL,
        counter_sequence text NOT NULL, first_sequence text NOT NULL, last_sequence text NOT NULL,
        baseline bigint NOT NULL DEFAULT 0, installed_at timestamptz NOT NULL DEFAULT now(),
        loaded_at timestamptz, PRIMARY KEY (table_schema, table_name))""",
    # What a DAG run has done to each table: its load committed (written in the load's own
    # transaction, so the record exists exactly when the data does), then its verification.
    """CREATE TABLE IF NOT EXISTS {s}.run_progress (
        table_schema text NOT NULL, table_name text NOT NULL, part text NOT NULL DEFAULT '',
        run_id text NOT NULL, loaded_at timestamptz, verified_at timestamptz, verified_ok boolean,
        PRIMARY KEY (table_schema, table_name, part))""",
]


def _q(template: str) -> sql.Composable:
    return sql.SQL(template).format(s=sql.Identifier(STATE_SCHEMA))


def ensure_state_schema(conn: Connection) -> None:
    """Create the bookkeeping schema and tables (idempotent). Does not commit."""
    for statement in _DDL:
        dbapi.execute(conn, _q(statement))


def state_schema_exists(conn: Connection) -> bool:
    return bool(
        dbapi.fetch_value(conn, "SELECT count(*) FROM pg_namespace WHERE nspname = %s", (STATE_SCHEMA,))
    )


def get_setting(conn: Connection, name: str) -> str | None:
    if not state_schema_exists(conn):
        return None
    value = dbapi.fetch_value(conn, _q("SELECT value FROM {s}.setting WHERE name = %s"), (name,))
    return None if value is None else str(value)


def set_setting(conn: Connection, name: str, value: str) -> None:
    dbapi.execute(
        conn,
        _q(
            "INSERT INTO {s}.setting (name, value) VALUES (%s, %s) ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value"
        ),
        (name, value),
    )


def delete_setting(conn: Connection, name: str) -> None:
    dbapi.execute(conn, _q("DELETE FROM {s}.setting WHERE name = %s"), (name,))


def applied_ddl(conn: Connection) -> dict[str, str]:
    return dict(dbapi.fetch_all(conn, _q("SELECT file, sha256 FROM {s}.applied_ddl")))


def record_ddl(conn: Connection, file: str, sha256: str) -> None:
    dbapi.execute(conn, _q("INSERT INTO {s}.applied_ddl (file, sha256) VALUES (%s, %s)"), (file, sha256))


def record_deferred_foreign_key(
    conn: Connection, schema: str, table: str, name: str, definition: str
) -> None:
    dbapi.execute(
        conn,
        _q(
            "INSERT INTO {s}.deferred_foreign_key (table_schema, table_name, constraint_name, definition) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING"
        ),
        (schema, table, name, definition),
    )


def deferred_foreign_keys(conn: Connection) -> list[tuple[str, str, str, str]]:
    if not state_schema_exists(conn):
        return []
    return dbapi.fetch_all(
        conn,
        _q(
            "SELECT table_schema, table_name, constraint_name, definition FROM {s}.deferred_foreign_key "
            "ORDER BY 1, 2, 3"
        ),
    )


def forget_deferred_foreign_key(conn: Connection, schema: str, table: str, name: str) -> None:
    dbapi.execute(
        conn,
        _q(
            "DELETE FROM {s}.deferred_foreign_key WHERE table_schema = %s AND table_name = %s AND constraint_name = %s"
        ),
        (schema, table, name),
    )


def record_table_load(
    conn: Connection,
    schema: str,
    table: str,
    part: str,
    strategy: str,
    rows: int,
    seconds: float,
    counters: tuple[int, int, int] | None,
    snapshot: str | None,
) -> None:
    ins, upd, dele = counters if counters else (None, None, None)
    dbapi.execute(
        conn,
        _q(
            "INSERT INTO {s}.table_load (table_schema, table_name, part, strategy, rows, seconds, "
            "source_inserts, source_updates, source_deletes, source_snapshot) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (table_schema, table_name, part) "
            "DO UPDATE SET strategy = EXCLUDED.strategy, rows = EXCLUDED.rows, seconds = EXCLUDED.seconds, "
            "source_inserts = EXCLUDED.source_inserts, source_updates = EXCLUDED.source_updates, "
            "source_deletes = EXCLUDED.source_deletes, source_snapshot = EXCLUDED.source_snapshot, "
            "loaded_at = now()"
        ),
        (schema, table, part, strategy, rows, seconds, ins, upd, dele, snapshot),
    )


def table_loads(conn: Connection, schema: str, table: str) -> list[dict[str, Any]]:
    if not state_schema_exists(conn):
        return []
    rows = dbapi.fetch_all(
        conn,
        _q(
            "SELECT part, strategy, rows, seconds, source_inserts, source_updates, source_deletes, "
            "source_snapshot, loaded_at::text FROM {s}.table_load WHERE table_schema = %s AND table_name = %s "
            "ORDER BY part"
        ),
        (schema, table),
    )
    keys = (
        "part",
        "strategy",
        "rows",
        "seconds",
        "source_inserts",
        "source_updates",
        "source_deletes",
        "source_snapshot",
        "loaded_at",
    )
    return [dict(zip(keys, r, strict=True)) for r in rows]


def record_loaded_in_run(conn: Connection, schema: str, table: str, part: str, run_id: str) -> None:
    """This run loaded the table (call inside the load's transaction); forgets an older verification."""
    dbapi.execute(
        conn,
        _q(
            "INSERT INTO {s}.run_progress (table_schema, table_name, part, run_id, loaded_at) "
            "VALUES (%s, %s, %s, %s, now()) ON CONFLICT (table_schema, table_name, part) DO UPDATE SET "
            "run_id = EXCLUDED.run_id, loaded_at = EXCLUDED.loaded_at, verified_at = NULL, verified_ok = NULL"
        ),
        (schema, table, part, run_id),
    )


def record_verified_in_run(
    conn: Connection, schema: str, table: str, part: str, run_id: str, ok: bool
) -> None:
    """This run verified the table it loaded (a verification of another run's load is not recorded)."""
    dbapi.execute(
        conn,
        _q(
            "UPDATE {s}.run_progress SET verified_at = now(), verified_ok = %s "
            "WHERE table_schema = %s AND table_name = %s AND part = %s AND run_id = %s"
        ),
        (ok, schema, table, part, run_id),
    )


def run_progress(conn: Connection, run_id: str) -> dict[tuple[str, str, str], bool | None]:
    """(schema, table, part) -> verified_ok (None: loaded, not verified yet) for what ``run_id`` loaded."""
    if not state_schema_exists(conn):
        return {}
    if not dbapi.fetch_value(
        conn,
        "SELECT count(*) FROM pg_tables WHERE schemaname = %s AND tablename = 'run_progress'",
        (STATE_SCHEMA,),
    ):
        return {}
    rows = dbapi.fetch_all(
        conn,
        _q("SELECT table_schema, table_name, part, verified_ok FROM {s}.run_progress WHERE run_id = %s"),
        (run_id,),
    )
    return {(s, t, p): ok for s, t, p, ok in rows}
