"""What a database holds: tables, columns, keys, indexes, triggers and sequences, read from pg_catalog.

Both sides are read the same way; the mapping is resolved against these facts (see :mod:`plan`) so
that an unknown table or column is reported before any data moves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from psycopg import sql

from airflow_provider_confiture.core.db import dbapi
from airflow_provider_confiture.core.db.dbapi import Connection
from airflow_provider_confiture.core.names import QualifiedName

#: OIDs below this are assigned at initdb time and are the same in every PostgreSQL database, so a
#: value of such a type can cross between databases in COPY's binary format.
FIRST_NORMAL_OBJECT_ID = 16384


@dataclass(frozen=True)
class Column:
    name: str
    type_oid: int
    type_name: str  # format_type(atttypid, atttypmod): PostgreSQL's own quoted rendering
    base_type_name: str  # format_type(atttypid, NULL): without the type modifier
    not_null: bool
    has_default: bool
    identity: str  # '' | 'a' (ALWAYS) | 'd' (BY DEFAULT)
    generated: str  # '' | 's' (STORED)
    builtin_type: bool  # the type (and, for an array, its element type) has a fixed, initdb-time OID

    @property
    def writable(self) -> bool:
        """Generated columns are computed by the server and cannot be written."""
        return self.generated == ""

    @property
    def fills_itself(self) -> bool:
        """True when the column gets a value without being written (default, identity or generated)."""
        return self.has_default or self.identity != "" or self.generated != ""


@dataclass(frozen=True)
class Table:
    name: QualifiedName
    oid: int
    relkind: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    estimated_rows: int  # -1 when unknown (never analyzed)
    total_bytes: int

    def column(self, name: str) -> Column | None:
        for c in self.columns:
            if c.name == name:
                return c
        return None

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


@dataclass(frozen=True)
class ForeignKey:
    table: QualifiedName
    name: str
    referenced: QualifiedName
    definition: str  # pg_get_constraintdef
    validated: bool


@dataclass(frozen=True)
class Index:
    """An index, or the constraint it backs (primary key, unique, exclusion)."""

    name: str
    definition: str  # CREATE INDEX ... or the constraint definition
    constraint_type: str | None  # 'p', 'u', 'x' or None for a plain index
    # Properties that live on the index object, not in its definition: lost when it is re-created.
    comment: str | None = None  # COMMENT ON INDEX
    constraint_comment: str | None = None  # COMMENT ON CONSTRAINT
    replica_identity: bool = False  # ALTER TABLE ... REPLICA IDENTITY USING INDEX
    clustered: bool = False  # ALTER TABLE ... CLUSTER ON


@dataclass(frozen=True)
class Trigger:
    name: str
    enabled: str  # 'O' origin, 'D' disabled, 'R' replica, 'A' always


@dataclass(frozen=True)
class OwnedSequence:
    column: str
    sequence: QualifiedName


@dataclass
class Catalog:
    """Tables of a database, looked up by qualified name."""

    tables: dict[QualifiedName, Table] = field(default_factory=dict)

    def get(self, name: QualifiedName) -> Table | None:
        return self.tables.get(name)

    def in_schema(self, schema: str) -> list[Table]:
        return sorted((t for t in self.tables.values() if t.name.schema == schema), key=lambda t: t.name)


_TABLES_SQL = """
SELECT c.oid, n.nspname, c.relname, c.relkind,
       c.reltuples::bigint,
       pg_total_relation_size(c.oid),
       pg_stat_get_live_tuples(c.oid)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = ANY(%s) AND NOT c.relispartition
  AND n.nspname = ANY(%s)
"""
#: Only the named tables: a per-table task reads its own entries, whatever the size of the schema.
_NAMED_TABLES_SQL = """
SELECT c.oid, n.nspname, c.relname, c.relkind,
       c.reltuples::bigint,
       pg_total_relation_size(c.oid),
       pg_stat_get_live_tuples(c.oid)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = ANY(%s) AND NOT c.relispartition
  AND n.nspname = ANY(%s)
  AND (n.nspname, c.relname) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
"""

_COLUMNS_SQL = """
SELECT a.attrelid, a.attname, a.atttypid,
       format_type(a.atttypid, a.atttypmod), format_type(a.atttypid, NULL),
       a.attnotnull, a.atthasdef, a.attidentity, a.attgenerated,
       (a.atttypid < %s AND (t.typelem = 0 OR t.typelem < %s))
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
"""

_PK_SQL = """
SELECT con.conrelid, array_agg(a.attname ORDER BY k.ord)
FROM pg_constraint con
CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
WHERE con.contype = 'p' AND con.conrelid = ANY(%s)
GROUP BY con.conrelid
"""


def read_catalog(
    conn: Connection,
    schemas: list[str] | tuple[str, ...],
    names: Sequence[QualifiedName] | None = None,
    *,
    views: bool = False,
) -> Catalog:
    """Read every table (not partition) of ``schemas`` with columns and primary key; only ``names``
    of them when given (a per-table task reads its own entries, whatever the size of the schema).

    ``views`` also reads views and materialized views (relkind ``v``/``m``): the source side, where
    they may feed a target table read-only. A view has no primary key, no size and (a plain view
    always, a materialized view until analyzed) no row estimate: ``estimated_rows`` is -1.
    """
    kinds = ["r", "p", "v", "m"] if views else ["r", "p"]
    if names is None:
        rows = dbapi.fetch_all(conn, _TABLES_SQL, (kinds, list(schemas)))
    else:
        rows = dbapi.fetch_all(
            conn,
            _NAMED_TABLES_SQL,
            (kinds, list(schemas), [n.schema or "" for n in names], [n.name for n in names]),
        )
    if not rows:
        return Catalog()
    oids = [r[0] for r in rows]
    columns: dict[int, list[Column]] = {}
    for relid, name, typoid, tname, tbase, notnull, hasdef, ident, gen, builtin in dbapi.fetch_all(
        conn, _COLUMNS_SQL, (FIRST_NORMAL_OBJECT_ID, FIRST_NORMAL_OBJECT_ID, oids)
    ):
        columns.setdefault(relid, []).append(
            Column(name, int(typoid), tname, tbase, notnull, hasdef, ident or "", gen or "", bool(builtin))
        )
    pks = {relid: tuple(cols) for relid, cols in dbapi.fetch_all(conn, _PK_SQL, (oids,))}
    catalog = Catalog()
    for oid, schema, name, relkind, reltuples, total_bytes, live in rows:
        qn = QualifiedName(schema, name)
        estimate = int(reltuples) if reltuples is not None and reltuples >= 0 else -1
        if estimate <= 0 and live:
            estimate = int(live)
        catalog.tables[qn] = Table(
            qn,
            int(oid),
            relkind,
            tuple(columns.get(oid, ())),
            pks.get(oid, ()),
            estimate,
            int(total_bytes or 0),
        )
    return catalog


def existing_tables(conn: Connection, names: Sequence[QualifiedName]) -> set[QualifiedName]:
    """Which of ``names`` exist (tables, partitioned tables): names only, cheap for thousands."""
    rows = dbapi.fetch_all(
        conn,
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p', 'v', 'm') AND (n.nspname, c.relname) IN "
        "(SELECT * FROM unnest(%s::text[], %s::text[]))",
        ([n.schema or "" for n in names], [n.name for n in names]),
    )
    return {QualifiedName(schema, name) for schema, name in rows}


def schema_exists(conn: Connection, schema: str) -> bool:
    return bool(dbapi.fetch_value(conn, "SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,)))


def table_oid(conn: Connection, name: QualifiedName) -> int | None:
    oid = dbapi.fetch_value(
        conn,
        "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s",
        (name.schema, name.name),
    )
    return None if oid is None else int(oid)


def count_rows(conn: Connection, name: QualifiedName) -> int:
    return int(dbapi.fetch_value(conn, sql.SQL("SELECT count(*) FROM {}").format(name.identifier())))


def foreign_keys_touching(conn: Connection, tables: list[QualifiedName]) -> list[ForeignKey]:
    """Foreign keys defined on, or referencing, any of ``tables`` (each once)."""
    if not tables:
        return []
    rows = dbapi.fetch_all(
        conn,
        """
        SELECT n.nspname, c.relname, con.conname, rn.nspname, rc.relname,
               pg_get_constraintdef(con.oid), con.convalidated
        FROM pg_constraint con
        JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_class rc ON rc.oid = con.confrelid JOIN pg_namespace rn ON rn.oid = rc.relnamespace
        WHERE con.contype = 'f' AND con.conparentid = 0
          AND ((n.nspname, c.relname) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
            OR (rn.nspname, rc.relname) IN (SELECT * FROM unnest(%s::text[], %s::text[])))
        ORDER BY 1, 2, 3
        """,
        (
            [t.schema for t in tables],
            [t.name for t in tables],
            [t.schema for t in tables],
            [t.name for t in tables],
        ),
    )
    return [
        ForeignKey(QualifiedName(s, t), con, QualifiedName(rs, rt), definition, bool(valid))
        for s, t, con, rs, rt, definition, valid in rows
    ]


def indexes(conn: Connection, table: QualifiedName) -> list[Index]:
    """Indexes of ``table``; constraint-backing ones carry the constraint's definition instead."""
    rows = dbapi.fetch_all(
        conn,
        """
        SELECT ic.relname, pg_get_indexdef(i.indexrelid), con.contype, con.conname,
               pg_get_constraintdef(con.oid), obj_description(i.indexrelid, 'pg_class'),
               obj_description(con.oid, 'pg_constraint'), i.indisreplident, i.indisclustered
        FROM pg_index i
        JOIN pg_class ic ON ic.oid = i.indexrelid
        JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
             AND con.contype IN ('p', 'u', 'x')
        WHERE n.nspname = %s AND c.relname = %s AND NOT EXISTS (
            SELECT 1 FROM pg_inherits inh WHERE inh.inhrelid = i.indexrelid)
        ORDER BY con.contype NULLS LAST, ic.relname
        """,
        (table.schema, table.name),
    )
    out = []
    for index_name, index_def, contype, conname, condef, comment, con_comment, replident, clustered in rows:
        props = {
            "comment": comment,
            "constraint_comment": con_comment,
            "replica_identity": bool(replident),
            "clustered": bool(clustered),
        }
        if contype:
            out.append(Index(conname, condef, contype, **props))
        else:
            out.append(Index(index_name, index_def, None, **props))
    return out


def user_triggers(conn: Connection, table: QualifiedName) -> list[Trigger]:
    rows = dbapi.fetch_all(
        conn,
        """
        SELECT t.tgname, t.tgenabled FROM pg_trigger t
        JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %s AND c.relname = %s AND NOT t.tgisinternal
        ORDER BY t.tgname
        """,
        (table.schema, table.name),
    )
    return [Trigger(name, str(enabled)) for name, enabled in rows]


def owned_sequences(conn: Connection, table: QualifiedName) -> list[OwnedSequence]:
    """Sequences that feed a column of ``table``: owned ones (serial, bigserial, identity), and ones an
    integer column's DEFAULT calls without owning them (``DEFAULT nextval('orders_seq')``, common in
    hand-written DDL, possibly shared by several tables)."""
    rows = dbapi.fetch_all(
        conn,
        """
        SELECT a.attname, sn.nspname, s.relname, a.attnum
        FROM pg_depend d
        JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
        JOIN pg_namespace sn ON sn.oid = s.relnamespace
        JOIN pg_class c ON c.oid = d.refobjid JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.refobjsubid
        WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
          AND d.deptype IN ('a', 'i') AND n.nspname = %s AND c.relname = %s
        UNION
        SELECT a.attname, sn.nspname, s.relname, a.attnum
        FROM pg_attrdef ad
        JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
             AND d.refclassid = 'pg_class'::regclass
        JOIN pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'
        JOIN pg_namespace sn ON sn.oid = s.relnamespace
        JOIN pg_class c ON c.oid = ad.adrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ad.adnum
        WHERE a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)
          AND n.nspname = %s AND c.relname = %s
        ORDER BY 4, 2, 3
        """,
        (table.schema, table.name, table.schema, table.name),
    )
    return [OwnedSequence(col, QualifiedName(s, q)) for col, s, q, _ in rows]


def modification_counters(conn: Connection, table: QualifiedName) -> tuple[int, int, int] | None:
    """Cumulative (inserts, updates, deletes) the statistics system has seen on ``table``.

    Compared before the load and at verify time they tell whether the source moved on since its
    snapshot was taken, so verify can report drift honestly instead of a bare mismatch.
    """
    row = dbapi.fetch_one(
        conn,
        "SELECT n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_all_tables "
        "WHERE schemaname = %s AND relname = %s",
        (table.schema, table.name),
    )
    return None if row is None else (int(row[0]), int(row[1]), int(row[2]))


def is_superuser(conn: Connection) -> bool:
    return bool(dbapi.fetch_value(conn, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"))


def server_version_num(conn: Connection) -> int:
    return int(dbapi.fetch_value(conn, "SELECT current_setting('server_version_num')::int"))
