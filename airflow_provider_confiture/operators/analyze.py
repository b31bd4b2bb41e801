"""AnalyzeOperator: per table rows, size, strategy, estimated time, warnings; the load units as XCom."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_provider_confiture.core import analyze as analyze_core
from airflow_provider_confiture.core import catalog, target_database
from airflow_provider_confiture.operators import connections
from airflow_provider_confiture.operators.base import ConfitureBaseOperator, as_bool, as_tables


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

    template_fields: Sequence[str] = (*ConfitureBaseOperator.template_fields, "tables", "dry_run")

    def __init__(
        self,
        *,
        tables: list[str] | str | None = None,
        split_threshold_rows: int = analyze_core.DEFAULT_SPLIT_THRESHOLD_ROWS,
        rows_per_part: int = analyze_core.DEFAULT_ROWS_PER_PART,
        dry_run: bool | str = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dry_run = dry_run
        self.tables = tables
        self.split_threshold_rows = split_threshold_rows
        self.rows_per_part = rows_per_part

    def _not_set_up(self) -> str | None:
        """Why a dry run cannot analyze yet (the target is built by setup's first real run), or None."""
        dbname = connections.connection_target(self.target_conn_id)["dbname"]
        with self.target_connection(database="postgres", autocommit=True) as admin:
            if not target_database.database_exists(admin, dbname):
                return f"target database {dbname!r} does not exist yet"
        with self.target_connection() as target_conn:
            if not catalog.read_catalog(target_conn, [self.target_schema]).tables:
                return f"target schema {self.target_schema!r} has no tables yet (the DDL is not applied)"
        return None

    def execute(self, context: Any) -> dict[str, Any]:
        mapping = self.load_mapping()
        dry_run = as_bool(self.dry_run)
        if dry_run:
            reason = self._not_set_up()
            if reason:
                self.log.warning(
                    "Dry run: %s. Setup creates it on the first real run; run the migration once without "
                    "dry_run (or run setup) to see the analysis. Nothing to load.",
                    reason,
                )
                return {"tables": [], "skipped": [], "units": [], "dry_run": True}
        with self.both() as (source_conn, target_conn):
            analysis = analyze_core.analyze(
                source_conn,
                target_conn,
                mapping,
                self.plan_options(),
                as_tables(self.tables),
                split_threshold_rows=int(self.split_threshold_rows),
                rows_per_part=int(self.rows_per_part),
                require_link=not dry_run,
            )
        self.log.info("\n%s", analysis.render())
        return analysis.to_dict()
