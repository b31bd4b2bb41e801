"""Key ranges: splitting one large table into parts that load (and retry) independently.

A part is a half-open range ``lower <= key < upper`` of an integer column that is copied unchanged
from source to target (by default the single-column primary key), so the same predicate selects the
part's rows on both sides: the part's load deletes exactly its own range on the target and refills
it, and never touches another part's rows. The first part has no lower bound and the last no upper
bound, so together the parts cover every key, including keys inserted after planning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import sql

from airflow_provider_confiture.core.db import dbapi
from airflow_provider_confiture.core.db.dbapi import Connection
from airflow_provider_confiture.core.errors import PlanError
from airflow_provider_confiture.core.planning.plan import TablePlan
from airflow_provider_confiture.core.planning.units import KeyRangeDict


@dataclass(frozen=True)
class KeyRange:
    source_column: str
    target_column: str
    lower: int | None
    upper: int | None
    index: int  # 1-based
    count: int

    @property
    def label(self) -> str:
        return f"[{self.index}/{self.count}]"

    def _predicate(self, column: sql.Identifier) -> sql.Composable:
        parts = []
        if self.lower is not None:
            parts.append(sql.SQL("{} >= {}").format(column, sql.Literal(self.lower)))
        if self.upper is not None:
            parts.append(sql.SQL("{} < {}").format(column, sql.Literal(self.upper)))
        if not parts:
            return sql.SQL("true")
        return sql.SQL("({})").format(sql.SQL(" AND ").join(parts))

    def source_predicate(self, plan: TablePlan) -> sql.Composable:
        """On the main source table's key; qualified by its alias when the entry joins tables (a
        joined table may have a column of the same name)."""
        if plan.source_alias is not None:
            return self._predicate(sql.Identifier(plan.source_alias, self.source_column))
        return self._predicate(sql.Identifier(self.source_column))

    def target_predicate(self, plan: TablePlan) -> sql.Composable:
        return self._predicate(sql.Identifier(self.target_column))

    def to_dict(self) -> KeyRangeDict:
        return KeyRangeDict(
            source_column=self.source_column,
            target_column=self.target_column,
            lower=self.lower,
            upper=self.upper,
            index=self.index,
            count=self.count,
        )

    @classmethod
    def from_dict(cls, data: KeyRangeDict | dict[str, Any]) -> KeyRange:
        return cls(**data)


def split_column(plan: TablePlan) -> tuple[str, str] | None:
    """(source column, target column) to split by: ``split_by``, else a single-column primary key
    copied unchanged. None when the table has no such column."""
    wanted = plan.split_by
    for col in plan.columns:
        if col.transform is not None or col.source is None:
            continue
        if wanted is not None and col.source == wanted:
            return col.source, col.target
        if wanted is None and plan.target_primary_key == (col.target,):
            return col.source, col.target
    if wanted is not None:
        raise PlanError(
            f"entry {plan.key!r}, key 'split_by': column {wanted!r} must be copied unchanged to a target "
            "column (not through a transform) to split the table by it"
        )
    return None


def compute_ranges(source_conn: Connection, plan: TablePlan, parts: int) -> list[KeyRange]:
    """Split the table into ``parts`` ranges of equal key width (one part when it cannot be split)."""
    columns = split_column(plan)
    if columns is None or parts <= 1:
        return []
    source_col, target_col = columns
    row = dbapi.fetch_one(
        source_conn,
        sql.SQL("SELECT min({c})::text, max({c})::text, pg_typeof(min({c}))::text FROM {t}").format(
            c=sql.Identifier(source_col), t=plan.source.identifier()
        ),
    )
    dbapi.safe_rollback(source_conn)
    assert row is not None
    low, high, typ = row
    if typ not in ("smallint", "integer", "bigint"):
        if plan.split_by:
            raise PlanError(
                f"entry {plan.key!r}, key 'split_by': column {source_col!r} is {typ}; only integer columns "
                "can split a table"
            )
        return []
    if low is None:
        return []
    low_i, high_i = int(low), int(high)
    width = max(1, -(-(high_i - low_i + 1) // parts))
    bounds = [low_i + width * i for i in range(1, parts)]
    bounds = [b for b in bounds if b <= high_i]
    edges: list[int | None] = [None, *bounds, None]
    count = len(edges) - 1
    return [KeyRange(source_col, target_col, edges[i], edges[i + 1], i + 1, count) for i in range(count)]
