"""Cleanup step, after cutover and a monitoring period: remove the postgres_fdw link from the target.

It drops exactly what setup made: the foreign tables of our server, the foreign schemas setup
created (only when empty afterwards), the user mappings and the server, the extension only if setup
created it, the target guard (triggers on the migrated tables, their sequences, the trigger
function) and the bookkeeping schema. It never cascades: if a user built a view (or anything else)
on a foreign table, cleanup refuses and names the objects (a ``DROP SCHEMA ... CASCADE`` would silently drop them). It never connects to the source.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

from airflow_provider_confiture.core.db import dbapi, state, target_guard
from airflow_provider_confiture.core.db.dbapi import Connection
from airflow_provider_confiture.core.errors import CleanupError


def _dependents(conn: Connection, server: str) -> list[str]:
    """Objects outside our foreign tables that depend on them (views, functions' rules, ...)."""
    rows = dbapi.fetch_all(
        conn,
        """
        SELECT DISTINCT pg_describe_object(d.classid, d.objid, 0), fn.nspname || '.' || fc.relname
        FROM pg_foreign_table f
        JOIN pg_foreign_server s ON s.oid = f.ftserver
        JOIN pg_class fc ON fc.oid = f.ftrelid JOIN pg_namespace fn ON fn.oid = fc.relnamespace
        JOIN pg_depend d ON d.refobjid = f.ftrelid AND d.refclassid = 'pg_class'::regclass
        WHERE s.srvname = %s AND d.deptype = 'n'
          AND NOT (d.classid = 'pg_class'::regclass AND d.objid = f.ftrelid)
        ORDER BY 1
        """,
        (server,),
    )
    out = []
    for obj, table in rows:
        out.append(f"{obj.replace('rule _RETURN on ', '')} (uses {table})")
    return out


def cleanup(conn: Connection, server: str | None = None, *, keep_state: bool = False) -> dict[str, Any]:
    """Remove the link. Commits. Raises CleanupError (changing nothing) when something would be lost."""
    server = server or state.get_setting(conn, "fdw_server") or "confiture_source"
    pending = state.deferred_foreign_keys(conn)
    if pending:
        names = ", ".join(f"{s}.{t}.{n}" for s, t, n, _ in pending)
        raise CleanupError(
            f"foreign keys {names} are still set aside by the migration: finish it (the finalize step "
            "restores them) before cleaning up"
        )
    exists = dbapi.fetch_value(conn, "SELECT count(*) FROM pg_foreign_server WHERE srvname = %s", (server,))
    report: dict[str, Any] = {
        "server": server,
        "foreign_tables": [],
        "schemas": [],
        "user_mappings": [],
        "extension": "kept",
    }
    if exists:
        deps = _dependents(conn, server)
        if deps:
            dbapi.safe_rollback(conn)
            raise CleanupError(
                "cleanup refused: these objects are built on the migration's foreign tables and would be "
                "lost: " + "; ".join(deps) + ". Drop or rewrite them yourself, then run cleanup again"
            )
        tables = dbapi.fetch_all(
            conn,
            "SELECT n.nspname, c.relname FROM pg_foreign_table f JOIN pg_foreign_server s ON s.oid = f.ftserver "
            "JOIN pg_class c ON c.oid = f.ftrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE s.srvname = %s ORDER BY 1, 2",
            (server,),
        )
        for schema, name in tables:
            dbapi.execute(conn, sql.SQL("DROP FOREIGN TABLE {}").format(sql.Identifier(schema, name)))
            report["foreign_tables"].append(f"{schema}.{name}")
        for (user,) in dbapi.fetch_all(
            conn, "SELECT usename FROM pg_user_mappings WHERE srvname = %s ORDER BY 1", (server,)
        ):
            target = sql.SQL("PUBLIC") if user == "public" else sql.Identifier(user)
            dbapi.execute(
                conn, sql.SQL("DROP USER MAPPING FOR {} SERVER {}").format(target, sql.Identifier(server))
            )
            report["user_mappings"].append(user)
        dbapi.execute(conn, sql.SQL("DROP SERVER {}").format(sql.Identifier(server)))
    for (name,) in dbapi.fetch_all(
        conn,
        sql.SQL(
            "SELECT substr(name, length('created_schema:') + 1) FROM {}.setting "
            "WHERE name LIKE 'created_schema:%%'"
        ).format(sql.Identifier(state.STATE_SCHEMA))
        if state.state_schema_exists(conn)
        else "SELECT NULL WHERE false",
    ):
        empty = not dbapi.fetch_value(
            conn,
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s",
            (name,),
        )
        if empty and dbapi.fetch_value(conn, "SELECT count(*) FROM pg_namespace WHERE nspname = %s", (name,)):
            dbapi.execute(conn, sql.SQL("DROP SCHEMA {}").format(sql.Identifier(name)))
            report["schemas"].append(name)
    if state.get_setting(conn, "created_extension") == "true":
        others = dbapi.fetch_value(
            conn,
            "SELECT count(*) FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw "
            "WHERE w.fdwname = 'postgres_fdw'",
        )
        if not others:
            dbapi.execute(conn, "DROP EXTENSION postgres_fdw")
            report["extension"] = "dropped"
    # The target guard: the migration is over, the application owns the tables now.
    report["guards_removed"] = target_guard.remove_guards(conn)
    if not keep_state and state.state_schema_exists(conn):
        dbapi.execute(conn, sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(state.STATE_SCHEMA)))
        report["state_schema"] = "dropped"
    conn.commit()
    return report
