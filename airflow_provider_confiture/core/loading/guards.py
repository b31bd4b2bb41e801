"""What a table load sets aside inside its own transaction, and puts back before it commits.

* Foreign keys on or referencing the table (TRUNCATE refuses otherwise): dropped, re-added NOT VALID
  (in force for new rows; the finalize step validates them once every table is loaded).
* Enabled user triggers: disabled, so audit or "updated_at" triggers do not rewrite migrated rows,
  then re-enabled in their original mode. The target guard's trigger (``confiture_guard``) stays as it
  is: the load marks its writes as its own instead (``target_guard.mark_own_writes``), so the guard
  never has a moment off while the application may write.
* Indexes and the constraints they back (primary key, unique, exclusion): dropped and rebuilt after
  the data with the same names and definitions; a sorted bulk build is much faster than maintaining
  each index row by row.

Everything happens in the load's transaction: if the load fails, PostgreSQL puts it all back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from psycopg import sql

from airflow_provider_confiture.core.db import catalog, dbapi, target_guard
from airflow_provider_confiture.core.db.dbapi import Connection
from airflow_provider_confiture.core.loading.foreign_keys import (
    add_foreign_key,
    drop_foreign_key,
    qualified_definitions,
)
from airflow_provider_confiture.core.names import QualifiedName

_ENABLE = {"O": sql.SQL(""), "R": sql.SQL(" REPLICA"), "A": sql.SQL(" ALWAYS")}


@dataclass
class SetAside:
    foreign_keys: list[catalog.ForeignKey] = field(default_factory=list)
    triggers: list[catalog.Trigger] = field(default_factory=list)
    indexes: list[catalog.Index] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        return {
            "foreign_keys": len(self.foreign_keys),
            "triggers": len(self.triggers),
            "indexes": len(self.indexes),
        }


def set_aside(conn: Connection, table: QualifiedName, *, foreign_keys: bool, indexes: bool) -> SetAside:
    aside = SetAside()
    with qualified_definitions(conn):
        if foreign_keys:
            aside.foreign_keys = catalog.foreign_keys_touching(conn, [table])
        if indexes:
            aside.indexes = catalog.indexes(conn, table)
    for fk in aside.foreign_keys:
        drop_foreign_key(conn, fk.table, fk.name)
    aside.triggers = [
        t
        for t in catalog.user_triggers(conn, table)
        if t.enabled != "D" and t.name != target_guard.TRIGGER_NAME
    ]
    for trig in aside.triggers:
        dbapi.execute(
            conn,
            sql.SQL("ALTER TABLE {} DISABLE TRIGGER {}").format(
                table.identifier(), sql.Identifier(trig.name)
            ),
        )
    for index in aside.indexes:
        if index.constraint_type:
            dbapi.execute(
                conn,
                sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                    table.identifier(), sql.Identifier(index.name)
                ),
            )
        else:
            dbapi.execute(
                conn, sql.SQL("DROP INDEX {}").format(sql.Identifier(table.schema or "public", index.name))
            )
    return aside


def put_back(conn: Connection, table: QualifiedName, aside: SetAside) -> None:
    for index in aside.indexes:
        if index.constraint_type:
            dbapi.execute(
                conn,
                sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                    table.identifier(), sql.Identifier(index.name), sql.SQL(index.definition)
                ),
            )
        else:
            # pg_get_indexdef() output, read under search_path=pg_catalog: fully qualified.
            dbapi.execute(conn, sql.SQL(index.definition))
        _restore_index_properties(conn, table, index)
    for fk in aside.foreign_keys:
        add_foreign_key(conn, fk.table, fk.name, fk.definition, validate=False)
    for trig in aside.triggers:
        dbapi.execute(
            conn,
            sql.SQL("ALTER TABLE {} ENABLE{} TRIGGER {}").format(
                table.identifier(), _ENABLE.get(trig.enabled, sql.SQL("")), sql.Identifier(trig.name)
            ),
        )


def _restore_index_properties(conn: Connection, table: QualifiedName, index: catalog.Index) -> None:
    """What a re-created index would otherwise lose: its comments, its role as the table's replica
    identity (logical replication of UPDATE/DELETE depends on it) and the CLUSTER marker."""
    name = sql.Identifier(table.schema or "public", index.name)
    if index.comment is not None:
        dbapi.execute(conn, sql.SQL("COMMENT ON INDEX {} IS {}").format(name, sql.Literal(index.comment)))
    if index.constraint_comment is not None:
        dbapi.execute(
            conn,
            sql.SQL("COMMENT ON CONSTRAINT {} ON {} IS {}").format(
                sql.Identifier(index.name), table.identifier(), sql.Literal(index.constraint_comment)
            ),
        )
    if index.replica_identity:
        dbapi.execute(
            conn,
            sql.SQL("ALTER TABLE {} REPLICA IDENTITY USING INDEX {}").format(
                table.identifier(), sql.Identifier(index.name)
            ),
        )
    if index.clustered:
        dbapi.execute(
            conn,
            sql.SQL("ALTER TABLE {} CLUSTER ON {}").format(table.identifier(), sql.Identifier(index.name)),
        )
