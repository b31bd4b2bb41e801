#!/usr/bin/env python3
"""Create and fill the OLD database of the example migration (dags/example_schema_to_schema/).

The data is deterministic (pure arithmetic on ``generate_series``, no ``random()``), generated on the
server in a handful of ``INSERT ... SELECT`` statements: a few hundred thousand rows take seconds, and
two runs with the same ``--rows`` give byte-identical tables. ``--rows`` is the size of the largest
table (``order_line``); the others scale with it:

=============  ==================  ==========================================
table          rows                notes
=============  ==================  ==========================================
categories     12
tb_user        rows / 15 (>= 10)   blank/NULL full names, mixed-case e-mails, JSON-in-text settings
product        rows / 150 (>= 20)
orders         rows / 3 (>= 1)     notes with quotes, tabs, newlines and non-ASCII text
order_line     rows
=============  ==================  ==========================================

Usage::

    python scripts/seed_demo.py "host=127.0.0.1 port=5432 dbname=shop user=... password=..." [--rows N]
    python scripts/seed_demo.py --sql [--rows N] > seed.sql     # the same statements, for psql

The first form creates the old schema (``old_schema.sql``) unless ``--no-schema`` is given, then seeds.
The second prints the seed statements (not the schema) as one psql-runnable script: the docker-compose
``postgres-old`` service runs it as an init script (``docker/postgres-old/02_seed.sql``).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg import sql

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_DIR = REPO / "dags" / "example_schema_to_schema"
OLD_SCHEMA_SQL = EXAMPLE_DIR / "old_schema.sql"

#: Rows in the largest table (``order_line``) when nothing else is asked for.
DEFAULT_ROWS = 300_000

CATEGORY_NAMES = (
    "Books", "Music", "Films", "Games", "Garden", "Kitchen", "Toys", "Sports", "Outdoor", "Office",
    "Health", "Pets",
)  # fmt: skip
FIRST_NAMES = (
    "Ada", "Alan", "Barbara", "Claude", "Donald", "Edsger", "Frances", "Grace", "Hedy", "Ivan", "Jean",
    "Ken", "Linus", "Margaret", "Niklaus", "Ole", "Radia", "Sophie", "Tim", "Zoë",
)  # fmt: skip
LAST_NAMES = (
    "Lovelace", "Turing", "Liskov", "Shannon", "Knuth", "Dijkstra", "Allen", "Hopper", "Lamarr",
    "Sutherland", "Sammet", "Thompson", "Torvalds", "Hamilton", "Wirth", "Dahl", "Perlman", "Wilson",
    "Berners-Lee", "O'Neil", "Backus", "Kay", "Ritchie", "Stroustrup", "Goldberg",
)  # fmt: skip
PRODUCT_WORDS = (
    "Classic", "Deluxe", "Compact", "Family", "Travel", "Pro", "Mini", "Eco", "Vintage", "Smart",
)  # fmt: skip
ORDER_NOTES = (
    "Leave it at the door; ring twice",
    'Gift: write "Happy birthday!" on the card',
    "Deliver after 6 pm\tback entrance",
    "Second floor\nflat 2B",
    "Café crème, s'il vous plaît ☕",
    "C:\\Users\\shop\\invoice.pdf",
)


@dataclass(frozen=True)
class Sizes:
    """Row counts of every table for one ``--rows``."""

    categories: int
    users: int
    products: int
    orders: int
    order_lines: int

    @classmethod
    def for_rows(cls, rows: int) -> Sizes:
        if rows < 1:
            raise ValueError(f"--rows must be at least 1, got {rows}")
        return cls(
            categories=len(CATEGORY_NAMES),
            users=max(10, rows // 15),
            products=max(20, rows // 150),
            orders=max(1, rows // 3),
            order_lines=rows,
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "categories": self.categories,
            "tb_user": self.users,
            "product": self.products,
            "orders": self.orders,
            "order_line": self.order_lines,
        }

    @property
    def total(self) -> int:
        return sum(self.as_dict().values())


def _text_array(values: tuple[str, ...]) -> sql.Composable:
    """``ARRAY['a', 'b']::text[]`` with every element a literal."""
    return sql.SQL("ARRAY[{}]::text[]").format(sql.SQL(", ").join(sql.Literal(v) for v in values))


def _pick(values: tuple[str, ...], index_sql: str) -> sql.Composable:
    """Element ``1 + (index mod len)`` of a literal array: a deterministic choice driven by ``g``."""
    return sql.SQL("({})[1 + mod({}, {})]").format(
        _text_array(values), sql.SQL(index_sql), sql.Literal(len(values))
    )


def seed_statements(rows: int = DEFAULT_ROWS) -> list[sql.Composed]:
    """The statements that fill an empty old schema (in order; the caller runs them in one transaction).

    Only ``%``-free SQL (``mod()`` instead of ``%``), so the text also runs unchanged under psql.
    """
    n = Sizes.for_rows(rows)
    lit = sql.Literal
    statements = [
        sql.SQL(
            "INSERT INTO categories (id, name, slug) "
            "SELECT g, ({names})[g], lower(({names})[g]) FROM generate_series(1, {n}) AS g"
        ).format(names=_text_array(CATEGORY_NAMES), n=lit(n.categories)),
        sql.SQL(
            "INSERT INTO tb_user (id, username, full_name, nickname, email, settings, legacy_flags, created) "
            "SELECT g, 'user' || g, "
            "CASE WHEN mod(g, 10) = 0 THEN NULL WHEN mod(g, 10) = 5 THEN '  ' "
            "ELSE {first} || ' ' || {last} END, "
            "CASE WHEN mod(g, 3) = 0 THEN 'nick' || g END, "
            "{first} || '.' || g || '@Example.COM', "
            "CASE mod(g, 4) WHEN 0 THEN NULL WHEN 1 THEN '' "
            "ELSE '{{\"theme\": \"' || (ARRAY['light', 'dark'])[1 + mod(g, 2)] "
            "|| '\", \"newsletter\": ' || (mod(g, 3) = 0)::text || '}}' END, "
            "mod(g, 4), "
            "timestamp '2019-01-01 00:00:00' + g * interval '37 minutes 11 seconds' "
            "FROM generate_series(1::bigint, {n}) AS g"
        ).format(first=_pick(FIRST_NAMES, "g"), last=_pick(LAST_NAMES, "g * 7"), n=lit(n.users)),
        sql.SQL(
            "INSERT INTO product (id, sku, title, category_id, price_cents, active) "
            "SELECT g, 'SKU-' || lpad(g::text, 6, '0'), {word} || ' ' || {category} || ' #' || g, "
            "1 + mod(g, {categories}), 99 + mod(g * 7919, 49900), mod(g, 13) <> 0 "
            "FROM generate_series(1::bigint, {n}) AS g"
        ).format(
            word=_pick(PRODUCT_WORDS, "g * 3"),
            category=_pick(CATEGORY_NAMES, "g"),
            categories=lit(n.categories),
            n=lit(n.products),
        ),
        sql.SQL(
            "INSERT INTO orders (id, user_id, status, placed, note) "
            "SELECT g, 1 + mod(g * 7919, {users}), "
            "({statuses})[1 + mod(g * 31, 10)], "
            "timestamp '2021-01-01 00:00:00' + g * interval '2 minutes 7 seconds', "
            "CASE WHEN mod(g, 4) = 0 THEN {note} END "
            "FROM generate_series(1::bigint, {n}) AS g"
        ).format(
            users=lit(n.users),
            # mostly shipped, some paid/new, a few cancelled
            statuses=_text_array(("S", "S", "S", "S", "S", "P", "P", "N", "C", "S")),
            note=_pick(ORDER_NOTES, "g / 4"),
            n=lit(n.orders),
        ),
        sql.SQL(
            "INSERT INTO order_line (id, order_id, product_id, qty, unit_price_cents) "
            "SELECT g, 1 + mod(g - 1, {orders}), p.id, 1 + mod(g * 13, 5), p.price_cents "
            "FROM generate_series(1::bigint, {n}) AS g "
            "JOIN product AS p ON p.id = 1 + mod(g * 104729, {products})"
        ).format(orders=lit(n.orders), products=lit(n.products), n=lit(n.order_lines)),
    ]
    # Explicit ids were inserted: move every serial sequence past them, as the application would have.
    for table in ("categories", "tb_user", "product", "orders", "order_line"):
        statements.append(
            sql.SQL("SELECT setval(pg_get_serial_sequence({t}, 'id'), (SELECT max(id) FROM {ident}))").format(
                t=lit(table), ident=sql.Identifier(table)
            )
        )
    return statements


def render_seed_sql(rows: int = DEFAULT_ROWS) -> str:
    """The seed statements as one psql script (one transaction; ANALYZE after it)."""
    n = Sizes.for_rows(rows)
    body = ";\n\n".join(s.as_string(None) for s in seed_statements(rows))
    return (
        f"-- Generated by scripts/seed_demo.py --sql --rows {rows}: do not edit by hand.\n"
        f"-- Seeds the old shop database of dags/example_schema_to_schema ({n.total:,} rows in all).\n"
        f"BEGIN;\n\n{body};\n\nCOMMIT;\nANALYZE;\n"
    )


def create_old_schema(conn: Any) -> None:
    """Run ``old_schema.sql`` (several statements; no parameters) on a psycopg 3 connection."""
    with conn.cursor() as cur:
        cur.execute(OLD_SCHEMA_SQL.read_text(encoding="utf-8"))
    if not conn.autocommit:
        conn.commit()


def seed(conn: Any, rows: int = DEFAULT_ROWS, *, create_schema: bool = True) -> dict[str, int]:
    """Create the old schema (optional) and fill it, then ANALYZE. Returns the row count of each table.

    ``conn`` is a psycopg 3 connection to the (empty) old database; it is left in autocommit mode.
    """
    conn.autocommit = False
    if create_schema:
        create_old_schema(conn)
    with conn.cursor() as cur:
        for statement in seed_statements(rows):
            cur.execute(statement)
    conn.commit()
    conn.autocommit = True
    counts: dict[str, int] = {}
    with conn.cursor() as cur:
        cur.execute("ANALYZE")  # planner statistics and row estimates for the migration's analyze step
        for table in Sizes.for_rows(rows).as_dict():
            cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
            counts[table] = cur.fetchone()[0]
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("conninfo", nargs="?", help="libpq connection string or URI of the old database")
    parser.add_argument(
        "--rows", type=int, default=DEFAULT_ROWS, help="rows in order_line, the largest table"
    )
    parser.add_argument("--no-schema", action="store_true", help="the old schema already exists: only seed")
    parser.add_argument("--sql", action="store_true", help="print the seed statements for psql and exit")
    args = parser.parse_args(argv)
    if args.sql:
        sys.stdout.write(render_seed_sql(args.rows))
        return 0
    if not args.conninfo:
        parser.error("give the old database's conninfo, or --sql")
    import psycopg

    started = time.monotonic()
    with psycopg.connect(args.conninfo) as conn:
        counts = seed(conn, args.rows, create_schema=not args.no_schema)
    elapsed = time.monotonic() - started
    print(", ".join(f"{t} {c:,}" for t, c in counts.items()) + f" rows seeded in {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
