"""The benchmark's tables: source data, target DDL, and the reference postgres_fdw server.

Three tables, as in the issue: ``narrow(id bigint pk, v int)``, ``events(...)`` with text, jsonb,
timestamptz and numeric columns, and the reference tool's ``old_users -> users`` rename
(``full_name`` becomes ``display_name``). Every target table carries its primary key during every
measurement; the index experiment adds three secondary indexes to ``events``.

All SQL is composed with :mod:`psycopg.sql`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import sql


@dataclass(frozen=True)
class TableSpec:
    key: str  # mapping entry key and target table name
    source: str
    target: str
    source_columns: tuple[str, ...]
    target_columns: tuple[str, ...]
    column_string: str | None  # the mapping's column string (renames), None = same names
    source_ddl: str
    target_ddl: str
    fill: str  # INSERT ... SELECT ... FROM generate_series(1, {rows}) g

    def source_select(self, limit_id: int | None = None) -> sql.Composable:
        """``SELECT cols FROM source [WHERE id <= n]``."""
        query = sql.SQL("SELECT {} FROM {}").format(
            sql.SQL(", ").join(map(sql.Identifier, self.source_columns)), sql.Identifier(self.source)
        )
        if limit_id is not None:
            query = sql.SQL("{} WHERE {} <= {}").format(query, sql.Identifier("id"), sql.Literal(limit_id))
        return query

    def copy_out(self, fmt: str, relation: sql.Composable | None = None) -> sql.Composable:
        """``COPY source (cols) TO STDOUT``: the fastest form a hand-written pipe would use."""
        return sql.SQL("COPY {} ({}) TO STDOUT (FORMAT {})").format(
            relation or sql.Identifier(self.source),
            sql.SQL(", ").join(map(sql.Identifier, self.source_columns)),
            sql.SQL(fmt),
        )

    def copy_in(self, fmt: str) -> sql.Composable:
        return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT {})").format(
            sql.Identifier(self.target),
            sql.SQL(", ").join(map(sql.Identifier, self.target_columns)),
            sql.SQL(fmt),
        )

    def insert_select(self, foreign_schema: str) -> sql.Composable:
        """What the original FDW strategy runs: one INSERT ... SELECT through the foreign table."""
        return sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(
            sql.Identifier(self.target),
            sql.SQL(", ").join(map(sql.Identifier, self.target_columns)),
            sql.SQL(", ").join(map(sql.Identifier, self.source_columns)),
            sql.Identifier(foreign_schema, self.source),
        )

    def foreign_copy_out_csv(self, foreign_schema: str) -> sql.Composable:
        """What the original COPY strategy runs on the target: CSV out of the foreign table."""
        return sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT (FORMAT csv)").format(
            sql.SQL(", ").join(map(sql.Identifier, self.source_columns)),
            sql.Identifier(foreign_schema, self.source),
        )

    def mapping_yaml(self) -> str:
        lines = [f"{self.key}:", f"  source_table: {self.source}"]
        if self.column_string:
            lines.append("  columns:")
            for pair in self.column_string.split(","):
                src, dst = pair.split(":")
                lines.append(f"    {src}: {dst}")
        return "\n".join(lines) + "\n"


TABLES: dict[str, TableSpec] = {
    "narrow": TableSpec(
        key="narrow",
        source="narrow",
        target="narrow",
        source_columns=("id", "v"),
        target_columns=("id", "v"),
        column_string=None,
        source_ddl="CREATE TABLE narrow (id bigint PRIMARY KEY, v int)",
        target_ddl="CREATE TABLE narrow (id bigint PRIMARY KEY, v int)",
        fill="INSERT INTO narrow SELECT g, (g::bigint * 7919 % 1000003)::int FROM generate_series(1, {rows}) g",
    ),
    "events": TableSpec(
        key="events",
        source="events",
        target="events",
        source_columns=("id", "user_id", "kind", "payload", "created_at", "amount"),
        target_columns=("id", "user_id", "kind", "payload", "created_at", "amount"),
        column_string=None,
        source_ddl=(
            "CREATE TABLE events (id bigint PRIMARY KEY, user_id bigint, kind text, payload jsonb, "
            "created_at timestamptz, amount numeric(12,2))"
        ),
        target_ddl=(
            "CREATE TABLE events (id bigint PRIMARY KEY, user_id bigint, kind text, payload jsonb, "
            "created_at timestamptz, amount numeric(12,2))"
        ),
        fill=(
            "INSERT INTO events SELECT g, g % 100003, (ARRAY['click','view','purchase','signup','logout'])[1 + g % 5], "
            "jsonb_build_object('session', md5(g::text), 'n', g % 1000, 'ok', g % 2 = 0, "
            "'tags', jsonb_build_array('a', 'b' || (g % 7))), "
            "timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second', ((g::bigint * 37) % 10000000) / 100.0 "
            "FROM generate_series(1, {rows}) g"
        ),
    ),
    "users": TableSpec(
        key="users",
        source="old_users",
        target="users",
        source_columns=("id", "full_name", "email", "created_at"),
        target_columns=("id", "display_name", "email", "created_at"),
        column_string="full_name:display_name",
        source_ddl="CREATE TABLE old_users (id bigint PRIMARY KEY, full_name text, email text, created_at timestamptz)",
        target_ddl="CREATE TABLE users (id bigint PRIMARY KEY, display_name text, email text, created_at timestamptz)",
        fill=(
            "INSERT INTO old_users SELECT g, 'User ' || g || ' ' || substr(md5(g::text), 1, 10), "
            "'user' || g || '@example.com', timestamptz '2020-01-01 00:00:00+00' + g * interval '1 minute' "
            "FROM generate_series(1, {rows}) g"
        ),
    ),
}

#: Secondary indexes of the index experiment (on the target's events table).
EVENTS_SECONDARY_INDEXES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("events_user_id_idx", ("user_id",)),
    ("events_created_at_idx", ("created_at",)),
    ("events_kind_created_at_idx", ("kind", "created_at")),
)

REFERENCE_SERVER = "bench_original_fdw"
REFERENCE_SCHEMA = "original_fdw"


def run(conn: Any, statement: sql.Composable | str) -> None:
    with conn.cursor() as cur:
        cur.execute(statement)


def build_source(conn: Any, rows: dict[str, int]) -> None:
    """Create and fill the source tables (autocommit connection), then VACUUM ANALYZE them."""
    for key, count in rows.items():
        spec = TABLES[key]
        run(conn, sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(spec.source)))
        run(conn, sql.SQL(spec.source_ddl))
        run(conn, sql.SQL(spec.fill).format(rows=sql.Literal(count)))
        run(conn, sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(spec.source)))


def build_target(conn: Any, keys: list[str]) -> None:
    for key in keys:
        spec = TABLES[key]
        run(conn, sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(spec.target)))
        run(conn, sql.SQL(spec.target_ddl))


def add_events_indexes(conn: Any) -> None:
    for name, cols in EVENTS_SECONDARY_INDEXES:
        run(
            conn,
            sql.SQL("CREATE INDEX {} ON {} ({})").format(
                sql.Identifier(name), sql.Identifier("events"), sql.SQL(", ").join(map(sql.Identifier, cols))
            ),
        )


def drop_events_indexes(conn: Any) -> None:
    for name, _ in EVENTS_SECONDARY_INDEXES:
        run(conn, sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(name)))


def index_definitions(conn: Any, table: str) -> list[tuple[str, str]]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
            "WHERE indrelid = %s::regclass ORDER BY 1",
            (table,),
        )
        return list(cur.fetchall())


def create_reference_server(
    conn: Any, host: str, port: int, dbname: str, user: str, password: str, tables: list[str]
) -> None:
    """A postgres_fdw server exactly as the original creates it: host, port, dbname, nothing else
    (so fetch_size stays at postgres_fdw's default of 100), and its own foreign schema."""
    run(conn, sql.SQL("DROP SERVER IF EXISTS {} CASCADE").format(sql.Identifier(REFERENCE_SERVER)))
    run(conn, sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(REFERENCE_SCHEMA)))
    run(
        conn,
        sql.SQL(
            "CREATE SERVER {} FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host {}, port {}, dbname {})"
        ).format(
            sql.Identifier(REFERENCE_SERVER), sql.Literal(host), sql.Literal(str(port)), sql.Literal(dbname)
        ),
    )
    run(
        conn,
        sql.SQL("CREATE USER MAPPING FOR CURRENT_USER SERVER {} OPTIONS (user {}, password {})").format(
            sql.Identifier(REFERENCE_SERVER), sql.Literal(user), sql.Literal(password)
        ),
    )
    run(conn, sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(REFERENCE_SCHEMA)))
    run(
        conn,
        sql.SQL("IMPORT FOREIGN SCHEMA public LIMIT TO ({}) FROM SERVER {} INTO {}").format(
            sql.SQL(", ").join(sql.Identifier(TABLES[k].source) for k in tables),
            sql.Identifier(REFERENCE_SERVER),
            sql.Identifier(REFERENCE_SCHEMA),
        ),
    )
