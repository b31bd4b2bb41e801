"""AnalyzeOperator: per table rows, size, strategy, estimated time, warnings; the load units as XCom.

``AnalyzeUnitsOperator`` is the factory's analyze task: Airflow maps tasks only over a task's *return
value* (a list), not over one key of a returned dict, so it returns the ``units`` list (one per mapped
per-table task instance) and pushes the whole analysis under the XCom key ``analysis``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_confiture.core import planning
from airflow_provider_confiture.core.db import catalog
from airflow_provider_confiture.core.link import target_database
from airflow_provider_confiture.hooks import connections
from airflow_provider_confiture.operators.base import ConfitureBaseOperator, as_bool

if TYPE_CHECKING:
    from airflow.sdk import Context

ANALYSIS_XCOM_KEY = "analysis"


class AnalyzeOperator(ConfitureBaseOperator):
    """Plan and validate the migration without moving data; print the analysis table.

    Every mapping problem (unknown table or column, a transform that does not parse or does not fit
    its column, ...) fails this task, before any data moves. Returns
    ``{"tables": [...], "skipped": [...], "units": [...]}``; the DAG factory maps one load task
    over ``units`` (a whole table, or one key range of a table above ``split_threshold_rows``).

    :param split_threshold_rows: split tables with at least this many rows into key ranges (0 = never).
    :param rows_per_part: target rows per key range.
    :param overwrite_target_writes: do not fail when target tables took writes that are not the
        migration's since their last load (they are shown in the analysis either way; a dry run only
        warns). For rehearsal targets only. (templated)
    :param max_tables_per_unit: small tables (estimated under a second each) share a load unit, up to
        this many per unit (one task instance instead of one per table; each table still loads in its
        own transaction). 0 or 1 (the operator's default): one unit per table; the DAG factory's
        default is ``DEFAULT_MAX_TABLES_PER_UNIT``.
    """

    template_fields: Sequence[str] = (*ConfitureBaseOperator.template_fields, "overwrite_target_writes")

    def __init__(
        self,
        *,
        split_threshold_rows: int = planning.DEFAULT_SPLIT_THRESHOLD_ROWS,
        rows_per_part: int = planning.DEFAULT_ROWS_PER_PART,
        overwrite_target_writes: bool | str = False,
        max_tables_per_unit: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.split_threshold_rows = split_threshold_rows
        self.rows_per_part = rows_per_part
        self.overwrite_target_writes = overwrite_target_writes
        self.max_tables_per_unit = max_tables_per_unit

    def convert_rendered_fields(self) -> None:
        super().convert_rendered_fields()
        self.overwrite_target_writes = as_bool(self.overwrite_target_writes)

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

    def execute_step(self, context: Context) -> dict[str, Any]:
        mapping = self.load_mapping()
        if self.dry_run:
            reason = self._not_set_up()
            if reason:
                self.log.warning(
                    "Dry run: %s. Setup creates it on the first real run; run the migration once without "
                    "dry_run (or run setup) to see the analysis. Nothing to load.",
                    reason,
                )
                return {"tables": [], "skipped": [], "units": [], "dry_run": True}
        with self.both() as (source_conn, target_conn):
            analysis = planning.analyze(
                source_conn,
                target_conn,
                mapping,
                self.plan_options(),
                self.tables,
                split_threshold_rows=int(self.split_threshold_rows),
                rows_per_part=int(self.rows_per_part),
                max_tables_per_unit=int(self.max_tables_per_unit),
                require_link=not self.dry_run,
            )
        self.log.info("\n%s", analysis.render())
        written = analysis.written_tables()
        if written and self.dry_run:
            self.log.warning(
                "Dry run: %d table(s) took writes that are not the migration's since their last load; a "
                "real run fails here unless overwrite_target_writes: %s",
                len(written),
                ", ".join(written),
            )
        elif written and self.overwrite_target_writes:
            self.log.warning(
                "overwrite_target_writes: the writes to %s since their last load will be overwritten",
                ", ".join(written),
            )
        elif written:
            analysis.refuse_target_writes()
        return analysis.to_dict()


class AnalyzeUnitsOperator(AnalyzeOperator):
    """Plan, validate and estimate the migration (see AnalyzeOperator); return its load units."""

    def execute_step(self, context: Context) -> list[planning.LoadUnit]:  # type: ignore[override]
        analysis = super().execute_step(context)
        context["ti"].xcom_push(key=ANALYSIS_XCOM_KEY, value=analysis)
        units: list[planning.LoadUnit] = list(analysis["units"])
        self.log.info("%d load task(s): %s", len(units), ", ".join(u["label"] for u in units) or "none")
        return units
