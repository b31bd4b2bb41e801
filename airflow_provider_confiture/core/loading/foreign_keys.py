"""Foreign keys between migrated tables: set aside while tables load in parallel, restored at the end.

Tables load in any order and at the same time, and each load starts with TRUNCATE, which PostgreSQL
refuses on a table referenced by a foreign key. So before the fan-out every foreign key touching a
migrated table is dropped and remembered in ``_confiture.deferred_foreign_key``; when every table is
loaded they are re-created and validated, which proves referential integrity of the whole result.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from psycopg import sql

from airflow_provider_confiture.core.db import catalog, dbapi, state
from airflow_provider_confiture.core.db.dbapi import Connection
from airflow_provider_confiture.core.errors import VerificationError
from airflow_provider_confiture.core.names import QualifiedName


@contextlib.contextmanager
def qualified_definitions(conn: Connection) -> Iterator[None]:
    """Make pg_get_*def() schema-qualify every name, so definitions replay under any search_path."""
    previous = dbapi.fetch_value(conn, "SELECT current_setting('search_path')")
    dbapi.execute(conn, "SELECT set_config('search_path', 'pg_catalog', false)")
    try:
        yield
    finally:
        dbapi.execute(
            conn, sql.SQL("SELECT set_config('search_path', {}, false)").format(sql.Literal(previous))
        )


def drop_foreign_key(conn: Connection, table: QualifiedName, name: str) -> None:
    dbapi.execute(
        conn, sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(table.identifier(), sql.Identifier(name))
    )


def add_foreign_key(
    conn: Connection, table: QualifiedName, name: str, definition: str, validate: bool
) -> None:
    dbapi.execute(
        conn,
        sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {} NOT VALID").format(
            table.identifier(), sql.Identifier(name), sql.SQL(definition)
        ),
    )
    if validate:
        validate_foreign_key(conn, table, name)


def validate_foreign_key(conn: Connection, table: QualifiedName, name: str) -> None:
    dbapi.execute(
        conn,
        sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(table.identifier(), sql.Identifier(name)),
    )


def defer_foreign_keys(conn: Connection, tables: list[QualifiedName]) -> list[str]:
    """Drop (and remember) every foreign key on or referencing ``tables``. Commits. Returns names."""
    with qualified_definitions(conn):
        fks = catalog.foreign_keys_touching(conn, tables)
    names = []
    for fk in fks:
        state.record_deferred_foreign_key(conn, fk.table.schema or "", fk.table.name, fk.name, fk.definition)
        drop_foreign_key(conn, fk.table, fk.name)
        names.append(f"{fk.table}.{fk.name}")
    conn.commit()
    return names


def _exists(conn: Connection, table: QualifiedName, name: str) -> bool:
    return bool(
        dbapi.fetch_value(
            conn,
            "SELECT count(*) FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s "
            "AND con.conname = %s",
            (table.schema, table.name, name),
        )
    )


def restore_foreign_keys(conn: Connection, tables: list[QualifiedName] | None = None) -> dict[str, list[str]]:
    """Re-create deferred foreign keys and validate every not-yet-validated one on ``tables``.

    Each constraint is its own transaction, so one bad key does not undo the others. Raises
    VerificationError naming every constraint that fails, with PostgreSQL's offending key.
    """
    restored, validated, failures = [], [], []
    for schema, table_name, name, definition in state.deferred_foreign_keys(conn):
        table = QualifiedName(schema, table_name)
        try:
            if not _exists(conn, table, name):
                add_foreign_key(conn, table, name, definition, validate=False)
            state.forget_deferred_foreign_key(conn, schema, table_name, name)
            conn.commit()
            restored.append(f"{table}.{name}")
        except dbapi.DB_ERRORS as exc:
            dbapi.safe_rollback(conn)
            failures.append(f"{table}.{name}: {dbapi.error_text(exc)}")
    dbapi.safe_rollback(conn)
    for fk in _unvalidated(conn, tables):
        try:
            validate_foreign_key(conn, fk.table, fk.name)
            conn.commit()
            validated.append(f"{fk.table}.{fk.name}")
        except dbapi.DB_ERRORS as exc:
            dbapi.safe_rollback(conn)
            failures.append(f"{fk.table}.{fk.name}: {dbapi.error_text(exc)}")
    if failures:
        raise VerificationError(
            "foreign keys do not hold on the migrated data (fix the data or the mapping, re-run the "
            "table, then this step):\n  " + "\n  ".join(failures)
        )
    return {"restored": restored, "validated": validated}


def _unvalidated(conn: Connection, tables: list[QualifiedName] | None) -> list[catalog.ForeignKey]:
    if tables is None:
        rows = dbapi.fetch_all(
            conn,
            "SELECT n.nspname, c.relname FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE con.contype = 'f' AND NOT con.convalidated",
        )
        tables = [QualifiedName(s, t) for s, t in rows]
    fks = [fk for fk in catalog.foreign_keys_touching(conn, tables) if not fk.validated]
    dbapi.safe_rollback(conn)
    return fks


def foreign_key_report(conn: Connection, tables: list[QualifiedName]) -> list[dict[str, Any]]:
    """Every foreign key touching ``tables`` with whether it is in force and validated."""
    deferred = {(s, t, n) for s, t, n, _ in state.deferred_foreign_keys(conn)}
    out = [
        {
            "table": str(fk.table),
            "constraint": fk.name,
            "references": str(fk.referenced),
            "validated": fk.validated,
            "deferred": False,
        }
        for fk in catalog.foreign_keys_touching(conn, tables)
    ]
    out += [
        {
            "table": str(QualifiedName(s, t)),
            "constraint": n,
            "references": None,
            "validated": False,
            "deferred": True,
        }
        for s, t, n in sorted(deferred)
    ]
    return out
