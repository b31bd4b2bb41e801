"""The new database itself: created if missing, then built from a directory of DDL files, once.

DDL files are applied in sorted order of their path relative to the directory (recursively), all in
one transaction with their record in ``_confiture.applied_ddl``: a failing file leaves the database as
it was. A file already applied is skipped; a file that changed after it was applied is an error,
because silently re-running or ignoring changed DDL against a populated database is how schemas drift.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from psycopg import sql

from airflow_provider_confiture.core.db import dbapi, state
from airflow_provider_confiture.core.db.dbapi import Connection
from airflow_provider_confiture.core.errors import SetupError


def database_exists(admin_conn: Connection, dbname: str) -> bool:
    return bool(
        dbapi.fetch_value(admin_conn, "SELECT count(*) FROM pg_database WHERE datname = %s", (dbname,))
    )


def ensure_database(admin_conn: Connection, dbname: str) -> bool:
    """CREATE DATABASE ``dbname`` unless it exists (``admin_conn`` must be in autocommit). True if created."""
    if database_exists(admin_conn, dbname):
        return False
    try:
        dbapi.execute(admin_conn, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    except dbapi.DB_ERRORS as exc:
        raise SetupError(
            f"could not create target database {dbname!r}: {dbapi.error_text(exc)}. Create it yourself "
            "or give the target role CREATEDB"
        ) from exc
    return True


def ddl_files(path: str | Path) -> list[tuple[str, Path]]:
    """(relative name, path) of every .sql file under ``path`` (or ``path`` itself), sorted."""
    root = Path(path)
    if not root.exists():
        raise SetupError(f"DDL path {str(root)!r} does not exist (ddl_path is relative to the DAG file)")
    if root.is_file():
        return [(root.name, root)]
    files = sorted((p.relative_to(root).as_posix(), p) for p in root.rglob("*.sql") if p.is_file())
    if not files:
        raise SetupError(f"DDL directory {str(root)!r} holds no .sql files")
    return files


def apply_ddl(conn: Connection, path: str | Path) -> dict[str, list[str]]:
    """Apply the DDL files not applied yet, in one transaction. Commits."""
    files = ddl_files(path)
    state.ensure_state_schema(conn)
    done = state.applied_ddl(conn)
    applied, skipped = [], []
    for name, file in files:
        text = file.read_text(encoding="utf-8")
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if name in done:
            if done[name] != digest:
                dbapi.safe_rollback(conn)
                raise SetupError(
                    f"DDL file {name!r} changed after it was applied to the target: the target schema is "
                    "built once. Put the change in a new file (applied next), or drop the target database "
                    "to rebuild it from scratch"
                )
            skipped.append(name)
            continue
        try:
            dbapi.execute(conn, text)
        except dbapi.DB_ERRORS as exc:
            dbapi.safe_rollback(conn)
            raise SetupError(
                f"DDL file {name!r} failed: {dbapi.error_text(exc)}. Nothing was applied; fix the file and "
                "re-run setup"
            ) from exc
        state.record_ddl(conn, name, digest)
        applied.append(name)
    conn.commit()
    return {"applied": applied, "already_applied": skipped}
