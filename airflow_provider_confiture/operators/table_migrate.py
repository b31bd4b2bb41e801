"""TableMigrateOperator: load one table (or one key range of it), complete or not at all."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from airflow_provider_confiture.core import dbapi, load
from airflow_provider_confiture.core import mapping as mapping_module
from airflow_provider_confiture.core.analyze import exact_rows_if_unknown, plan_migration
from airflow_provider_confiture.core.errors import PlanError
from airflow_provider_confiture.core.plan import choose_strategy
from airflow_provider_confiture.core.ranges import KeyRange
from airflow_provider_confiture.core.validate import validate_table
from airflow_provider_confiture.operators import connections
from airflow_provider_confiture.operators.base import ConfitureBaseOperator, as_bool


class TableMigrateOperator(ConfitureBaseOperator):
    """Empty the target table and fill it from the source with the mapping, in one transaction.

    Either name a table of the mapping (``table``, or ``unit`` from AnalyzeOperator's XCom), or give
    a one-table mapping: ``source_table``, ``target_table`` and ``columns``
    (``"full_name:display_name,email:email"``; unlisted same-name columns map automatically).

    :param table: target table name or mapping entry key.
    :param unit: one element of AnalyzeOperator's ``units`` (table, strategy, optional key range).
    :param where: source row filter for the one-table form.
    :param defer_indexes: drop and rebuild the table's indexes around the load (faster).
    :param lock_timeout: how long to wait for another run loading the same table.
    :param stall_timeout: seconds without progress before the copy is aborted.
    :param fdw_timeout: seconds an FDW load may take (default: 30x its estimate, at least 15 minutes).
    :param progress_interval: seconds between progress log lines.
    :param dry_run: log the plan and the SQL, move no data.
    """

    template_fields: Sequence[str] = (
        *ConfitureBaseOperator.template_fields,
        "table",
        "unit",
        "source_table",
        "target_table",
        "columns",
        "where",
        "dry_run",
    )

    def __init__(
        self,
        *,
        table: str | None = None,
        unit: dict[str, Any] | None = None,
        source_table: str | None = None,
        target_table: str | None = None,
        columns: str | dict[str, Any] | None = None,
        where: str | None = None,
        defer_indexes: bool = True,
        freeze: bool = True,
        lock_timeout: str = "60s",
        stall_timeout: float = 600.0,
        fdw_timeout: float | None = None,
        progress_interval: float = 10.0,
        dry_run: bool | str = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.table = table
        self.unit = unit
        self.source_table = source_table
        self.target_table = target_table
        self.columns = columns
        self.where = where
        self.defer_indexes = defer_indexes
        self.freeze = freeze
        self.lock_timeout = lock_timeout
        self.stall_timeout = stall_timeout
        self.fdw_timeout = fdw_timeout
        self.progress_interval = progress_interval
        self.dry_run = dry_run

    def _mapping_and_table(self) -> tuple[mapping_module.Mapping, str]:
        if self.source_table or self.target_table:
            if not (self.source_table and self.target_table):
                raise PlanError("give both source_table and target_table (or neither, and a mapping)")
            mapping = mapping_module.one_table_mapping(
                self.source_table, self.target_table, self.columns, where=self.where
            )
            return mapping, mapping.tables[0].key
        table = (self.unit or {}).get("table") or self.table
        if not table:
            raise PlanError("TableMigrateOperator needs table=, unit=, or source_table= and target_table=")
        return self.load_mapping(), str(table)

    @contextlib.contextmanager
    def _monitor(self) -> Iterator[Any]:
        with connections.connect(self.source_conn_id, read_only=True, autocommit=True) as conn:
            yield conn

    def execute(self, context: Any) -> dict[str, Any]:
        mapping, table = self._mapping_and_table()
        key_range = None
        if self.unit and self.unit.get("key_range"):
            key_range = KeyRange.from_dict(self.unit["key_range"])
        options = self.plan_options()
        with self.both() as (source_conn, target_conn), self._monitor() as monitor:
            plan = plan_migration(source_conn, target_conn, mapping, options, [table])[0].get(table)
            check = validate_table(source_conn, target_conn, plan, mapping.origin or "<mapping>")
            strategy = (self.unit or {}).get("strategy")
            if not strategy:
                plan.estimated_rows = exact_rows_if_unknown(source_conn, plan)
            chosen = choose_strategy(
                plan, options.copy_threshold_rows, check.copy_capable, check.copy_problem
            )
            if not strategy or (strategy == "copy" and not check.copy_capable):
                strategy = chosen
            for warning in plan.warnings:
                self.log.warning("%s: %s", plan.label, warning)
            if as_bool(self.dry_run):
                statements = load.statements_for(plan, strategy, key_range)
                self.log.info(
                    "Dry run: %s would load with strategy %s:\n%s",
                    plan.label,
                    strategy,
                    "\n".join(statements),
                )
                return {
                    "table": str(plan.target),
                    "key": plan.key,
                    "strategy": strategy,
                    "dry_run": True,
                    "statements": statements,
                    "rows": 0,
                }

            def rows_probe_factory(pid: int):
                def probe() -> int | None:
                    return dbapi.fetch_value(
                        monitor, "SELECT tuples_processed FROM pg_stat_progress_copy WHERE pid = %s", (pid,)
                    )

                return probe

            self.log.info(
                "Loading %s%s from %s with strategy %s",
                plan.target,
                f" {key_range.label}" if key_range else "",
                plan.source,
                strategy,
            )
            result = load.load_table(
                source_conn,
                target_conn,
                plan,
                strategy,
                options=load.LoadOptions(
                    defer_indexes=as_bool(self.defer_indexes),
                    freeze=as_bool(self.freeze),
                    lock_timeout=self.lock_timeout,
                    progress_interval=float(self.progress_interval),
                    stall_timeout=float(self.stall_timeout),
                    fdw_timeout=float(self.fdw_timeout) if self.fdw_timeout is not None else None,
                ),
                key_range=key_range,
                progress=self.log.info,
                rows_probe_factory=rows_probe_factory,
            )
        self.log.info(
            "%s%s: %s rows in %.2f s (%s rows/s) with %s%s; rebuilt %d indexes, %d sequences synced",
            plan.label,
            f" {key_range.label}" if key_range else "",
            f"{result.rows:,}",
            result.seconds,
            f"{result.rows_per_second:,.0f}",
            strategy,
            f" ({result.copy_format})" if result.copy_format else "",
            result.set_aside.get("indexes", 0),
            len(result.sequences),
        )
        return result.to_dict()
