"""Every data-moving and data-comparing statement, composed with :mod:`psycopg.sql`.

Identifiers are always ``sql.Identifier``; transforms and ``where`` filters are SQL by design (they
come from the repository, like DDL) and are only ever embedded inside the one source query, wrapped
in parentheses, never run as statements of their own. Every statement reading the source reads the
same relation, the main source table with the entry's joins (:func:`joins.from_clause`), on the source
or over the foreign tables.
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql

from airflow_provider_confiture.core.planning.joins import from_clause
from airflow_provider_confiture.core.planning.plan import ColumnPlan, TablePlan, checked_fragment


def _type(text: str) -> sql.Composable:
    # format_type() output: PostgreSQL's own rendering, identifiers already quoted by the server.
    return sql.SQL(text)


def row_filter(plan: TablePlan, extra: sql.Composable | None = None) -> sql.Composable:
    """``WHERE (filter) AND extra`` or nothing."""
    parts: list[sql.Composable] = []
    if plan.where:
        parts.append(
            sql.SQL("({})").format(sql.SQL(checked_fragment(plan.where, f"row filter of {plan.key!r}")))
        )
    if extra is not None:
        parts.append(extra)
    if not parts:
        return sql.SQL("")
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(parts)


def copy_select_item(col: ColumnPlan) -> sql.Composable:
    """Source expression cast to the target's type, so binary COPY carries exactly the target's types.

    The cast drops the type modifier: the target applies it on input with assignment semantics (an
    over-long varchar is an error, as with INSERT, rather than silently truncated by an explicit cast).
    Types that may not exist on the source (user-defined) are not cast; they travel as text.
    """
    if col.builtin_type:
        base = col.target_base_type
        # format_type() without a modifier names bpchar "character", which as a cast means char(1)
        # and would cut 'FR' to 'F': cast to bpchar (no length) and let the target apply char(n).
        if base in ("character", "character[]"):
            base = base.replace("character", "bpchar")
        return sql.SQL("{}::{}").format(col.expression(), _type(base))
    return col.expression()


def source_relation(plan: TablePlan, via_foreign_table: bool = False) -> sql.Composable:
    """What the entry reads: the main source table (aliased when the entry has an alias or joins)
    joined to its joined tables, on the source or through their foreign tables on the target."""
    return from_clause(plan, via_foreign_table)


def source_select(plan: TablePlan, extra_filter: sql.Composable | None = None) -> sql.Composable:
    items = sql.SQL(", ").join(copy_select_item(c) for c in plan.columns)
    return sql.SQL("SELECT {} FROM {}{}").format(items, source_relation(plan), row_filter(plan, extra_filter))


def copy_out(plan: TablePlan, binary: bool, extra_filter: sql.Composable | None = None) -> sql.Composable:
    """Run on the source: stream the mapped rows out."""
    fmt = sql.SQL("binary" if binary else "text")
    return sql.SQL("COPY ({}) TO STDOUT (FORMAT {})").format(source_select(plan, extra_filter), fmt)


def target_columns(plan: TablePlan) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(c.target) for c in plan.columns)


def copy_in(plan: TablePlan, binary: bool, freeze: bool) -> sql.Composable:
    """Run on the target: load the stream (FREEZE when the table was emptied in this transaction)."""
    opts: list[sql.Composable] = [sql.SQL("FORMAT {}").format(sql.SQL("binary" if binary else "text"))]
    if freeze:
        opts.append(sql.SQL("FREEZE"))
    return sql.SQL("COPY {} ({}) FROM STDIN ({})").format(
        plan.target.identifier(), target_columns(plan), sql.SQL(", ").join(opts)
    )


def fdw_insert(plan: TablePlan, extra_filter: sql.Composable | None = None) -> sql.Composable:
    """Run on the target: pull through postgres_fdw (assignment casts apply, as for any INSERT)."""
    items = sql.SQL(", ").join(c.expression() for c in plan.columns)
    overriding = sql.SQL(" OVERRIDING SYSTEM VALUE") if plan.overriding_system_value else sql.SQL("")
    return sql.SQL("INSERT INTO {} ({}){} SELECT {} FROM {}{}").format(
        plan.target.identifier(),
        target_columns(plan),
        overriding,
        items,
        source_relation(plan, True),
        row_filter(plan, extra_filter),
    )


def key_item(col: ColumnPlan) -> sql.Composable:
    """A target key column's source expression, cast to the target's type (as the target holds it)."""
    if col.builtin_type:
        return sql.SQL("({})::{}").format(col.expression(), _type(col.target_type))
    return col.expression()


def duplicate_target_keys(
    plan: TablePlan, via_foreign_table: bool, joins_used: int | None = None, limit: int = 5
) -> sql.Composable:
    """Up to ``limit`` target primary-key values that the source rows (through the first
    ``joins_used`` joins, default all) would give more than once, with their row counts.

    One bounded aggregate over the join, run by analyze before any data moves: a join that is not
    one-to-one would otherwise fail the load on the primary key after all the data travelled.
    """
    keys = [c for name in plan.target_primary_key for c in plan.columns if c.target == name]
    assert len(keys) == len(plan.target_primary_key) and keys, "needs a fully mapped primary key"
    items = sql.SQL(", ").join(sql.SQL("({})::text").format(key_item(c)) for c in keys)
    groups = sql.SQL(", ").join(sql.SQL(str(i)) for i in range(1, len(keys) + 1))
    joins = plan.joins if joins_used is None else plan.joins[:joins_used]
    return sql.SQL("SELECT {}, count(*) FROM {}{} GROUP BY {} HAVING count(*) > 1 LIMIT {}").format(
        items, from_clause(plan, via_foreign_table, joins), row_filter(plan), groups, sql.Literal(limit)
    )


#: Built-in types hashed as values by ``hash_record_extended`` (PostgreSQL 14+) instead of through
#: their text form: 3-4x cheaper per row on wide rows (jsonb_out, numeric_out and timestamptz_out
#: dominate a text checksum). Left out, and compared as text: types without a hash opclass, and
#: interval, whose hash treats '1 day' and '24 hours' as equal although they differ.
HASHED_TYPES = frozenset(
    {
        "smallint",
        "integer",
        "bigint",
        "oid",
        "boolean",
        "text",
        "character varying",
        "character",
        "name",
        "bytea",
        "uuid",
        "date",
        "timestamp without time zone",
        "timestamp with time zone",
        "time without time zone",
        "time with time zone",
        "numeric",
        "jsonb",
        "double precision",
        "real",
        "inet",
        "cidr",
        "macaddr",
        "macaddr8",
        "pg_lsn",
    }
)


def _hashed(col: ColumnPlan) -> bool:
    base = col.target_base_type[:-2] if col.target_base_type.endswith("[]") else col.target_base_type
    return col.builtin_type and base in HASHED_TYPES


def _checksum(
    items: Sequence[sql.Composable], relation: sql.Composable, where: sql.Composable, hashed: bool = False
) -> sql.Composable:
    # count + sum of 64-bit hashes of each row: order-independent, one scan (pgcopydb's scheme with a
    # 64-bit hash). sum() of bigint is numeric, so it never overflows. ``hashed``: the row's values
    # are hashed with their types' hash functions; otherwise the row's text is hashed.
    if hashed:
        row = sql.SQL("hash_record_extended(ROW({}), 0)").format(sql.SQL(", ").join(items))
    else:
        row = sql.SQL("hashtextextended(ROW({})::text, 0)").format(sql.SQL(", ").join(items))
    return sql.SQL("SELECT count(*), coalesce(sum({}), 0)::text FROM {}{}").format(row, relation, where)


def source_checksum(
    plan: TablePlan,
    via_foreign_table: bool,
    extra_filter: sql.Composable | None = None,
    *,
    hashed: bool = False,
) -> sql.Composable:
    """Checksum of the source rows with the mapping applied, as the target should hold them.

    Values are cast to the target column's full type (type modifier included: numeric(12,2) rounds
    as the target did); user-defined types are compared through their text form.
    """
    items: list[sql.Composable] = []
    for c in plan.columns:
        if c.builtin_type:
            item = sql.SQL("({})::{}").format(c.expression(), _type(c.target_type))
            items.append(item if not hashed or _hashed(c) else sql.SQL("({})::text").format(item))
        else:
            items.append(sql.SQL("({})::text").format(c.expression()))
    return _checksum(items, source_relation(plan, via_foreign_table), row_filter(plan, extra_filter), hashed)


def target_checksum(
    plan: TablePlan, extra_filter: sql.Composable | None = None, *, hashed: bool = False
) -> sql.Composable:
    """``hashed`` must match the source side's (see :data:`HASHED_TYPES`)."""
    items: list[sql.Composable] = []
    for c in plan.columns:
        if c.builtin_type and (not hashed or _hashed(c)):
            items.append(sql.Identifier(c.target))
        else:
            items.append(sql.SQL("{}::text").format(sql.Identifier(c.target)))
    where = sql.SQL(" WHERE {}").format(extra_filter) if extra_filter is not None else sql.SQL("")
    return _checksum(items, plan.target.identifier(), where, hashed)


def target_count(plan: TablePlan, extra_filter: sql.Composable | None = None) -> sql.Composable:
    where = sql.SQL(" WHERE {}").format(extra_filter) if extra_filter is not None else sql.SQL("")
    return sql.SQL("SELECT count(*) FROM {}{}").format(plan.target.identifier(), where)


def source_count(
    plan: TablePlan, via_foreign_table: bool, extra_filter: sql.Composable | None = None
) -> sql.Composable:
    return sql.SQL("SELECT count(*) FROM {}{}").format(
        source_relation(plan, via_foreign_table), row_filter(plan, extra_filter)
    )
