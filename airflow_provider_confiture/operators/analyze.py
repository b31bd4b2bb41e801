"""AnalyzeOperator: per table rows, size, strategy, estimated time, warnings; the load units as XCom."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_provider_confiture.core import analyze as analyze_core
from airflow_provider_confiture.operators.base import ConfitureBaseOperator, as_tables


class AnalyzeOperator(ConfitureBaseOperator):
    """Plan and validate the migration without moving data; print the analysis table.

    Every mapping problem (unknown table or column, a transform that does not parse or does not fit
    its column, ...) fails this task, before any data moves. Returns
    ``{"tables": [...], "skipped": [...], "units": [...]}``; the DAG factory maps one load task
    over ``units`` (a whole table, or one key range of a table above ``split_threshold_rows``).

    :param tables: only these tables (target names or mapping entry keys); None = all.
    :param split_threshold_rows: split tables with at least this many rows into key ranges (0 = never).
    :param rows_per_part: target rows per key range.
    """

    template_fields: Sequence[str] = (*ConfitureBaseOperator.template_fields, "tables")

    def __init__(
        self,
        *,
        tables: list[str] | str | None = None,
        split_threshold_rows: int = analyze_core.DEFAULT_SPLIT_THRESHOLD_ROWS,
        rows_per_part: int = analyze_core.DEFAULT_ROWS_PER_PART,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.tables = tables
        self.split_threshold_rows = split_threshold_rows
        self.rows_per_part = rows_per_part

    def execute(self, context: Any) -> dict[str, Any]:
        mapping = self.load_mapping()
        with self.both() as (source_conn, target_conn):
            analysis = analyze_core.analyze(
                source_conn, target_conn, mapping, self.plan_options(), as_tables(self.tables),
                split_threshold_rows=int(self.split_threshold_rows), rows_per_part=int(self.rows_per_part),
            )
        self.log.info("\n%s", analysis.render())
        return analysis.to_dict()
