"""Sequences behind serial and identity columns: moved past the loaded data, and checked.

Left at 1, the application's first insert after cutover would fail with a duplicate key. After each load every owned sequence is set so that its next value is beyond the
column's values (below them for a descending sequence).
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from airflow_provider_confiture.core.db import catalog, dbapi
from airflow_provider_confiture.core.db.dbapi import Connection
from airflow_provider_confiture.core.names import QualifiedName


@dataclass(frozen=True)
class SequenceState:
    table: str
    column: str
    sequence: str
    next_value: int | None  # what nextval() would return
    column_extreme: int | None  # max (ascending) or min (descending) of the column
    ok: bool


def _seq_literal(seq: QualifiedName) -> sql.Composable:
    return sql.SQL("{}::regclass").format(sql.Literal(seq.identifier().as_string(None)))


def sync_sequences(conn: Connection, table: QualifiedName) -> list[str]:
    """Move every sequence feeding a column of ``table`` past the column's values. Does not commit.

    A sequence is only ever moved forward: one shared by several tables (or already ahead) must not
    be set back to this table's maximum, or the other tables' next inserts would collide. Returns
    the sequences checked.
    """
    done = []
    for owned in catalog.owned_sequences(conn, table):
        col = sql.Identifier(owned.column)
        seq = _seq_literal(owned.sequence)
        dbapi.execute(
            conn,
            sql.SQL(
                "SELECT setval({seq}, e.edge, true) "
                "FROM (SELECT max({col})::bigint AS hi, min({col})::bigint AS lo FROM {tbl}) t, "
                "pg_sequence s, {seqrel} q, "
                "LATERAL (SELECT CASE WHEN s.seqincrement > 0 THEN t.hi ELSE t.lo END AS edge) e "
                "WHERE s.seqrelid = {seq} AND e.edge IS NOT NULL "
                "AND CASE WHEN s.seqincrement > 0 THEN {next} <= e.edge ELSE {next} >= e.edge END"
            ).format(
                seq=seq, col=col, tbl=table.identifier(), seqrel=owned.sequence.identifier(), next=_NEXT
            ),
        )
        done.append(str(owned.sequence))
    return done


#: What nextval() would return, from the sequence relation ``q`` and its pg_sequence row ``s``.
_NEXT = sql.SQL("(CASE WHEN q.is_called THEN q.last_value::numeric + s.seqincrement ELSE q.last_value END)")


def check_sequences(conn: Connection, table: QualifiedName) -> list[SequenceState]:
    """Whether each owned sequence's next value lies beyond the column's data."""
    out = []
    for owned in catalog.owned_sequences(conn, table):
        col = sql.Identifier(owned.column)
        seq = _seq_literal(owned.sequence)
        row = dbapi.fetch_one(
            conn,
            sql.SQL(
                "SELECT CASE WHEN q.is_called THEN q.last_value + s.seqincrement ELSE q.last_value END, "
                "CASE WHEN s.seqincrement > 0 THEN t.hi ELSE t.lo END, s.seqincrement > 0 "
                "FROM (SELECT max({col})::bigint AS hi, min({col})::bigint AS lo FROM {tbl}) t, "
                "pg_sequence s, {seqrel} q WHERE s.seqrelid = {seq}"
            ).format(seq=seq, col=col, tbl=table.identifier(), seqrel=owned.sequence.identifier()),
        )
        assert row is not None
        next_value, extreme, ascending = row
        ok = extreme is None or (next_value > extreme if ascending else next_value < extreme)
        out.append(SequenceState(str(table), owned.column, str(owned.sequence), next_value, extreme, ok))
    return out
