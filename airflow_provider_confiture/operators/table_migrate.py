"""TableMigrateOperator: load one table (or one key range of it), complete or not at all."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_confiture.core import loading, planning
from airflow_provider_confiture.core.db import dbapi
from airflow_provider_confiture.core.db.dbapi import Connection
from airflow_provider_confiture.core.errors import PlanError
from airflow_provider_confiture.hooks import connections
from airflow_provider_confiture.operators.base import ConfitureBaseOperator, as_bool, run_id_of

if TYPE_CHECKING:
    from airflow.sdk import Context


class TableMigrateOperator(ConfitureBaseOperator):
    """Empty the target table and fill it from the source with the mapping, in one transaction.

    Either name a table of the mapping (``table``, or ``unit`` from AnalyzeOperator's XCom), or give
    a one-table mapping: ``source_table``, ``target_table`` and ``columns``
    (``"full_name:display_name,email:email"``; unlisted same-name columns map automatically).

    :param table: target table name or mapping entry key. (templated)
    :param unit: one element of AnalyzeOperator's ``units`` (table, strategy, optional key range).
        (templated)
    :param source_table: source table of the one-table form. (templated)
    :param target_table: target table of the one-table form. (templated)
    :param columns: column string or mapping of the one-table form. (templated)
    :param where: source row filter for the one-table form. (templated)
    :param defer_indexes: drop and rebuild the table's indexes around the load (faster).
    :param freeze: load with ``COPY ... FREEZE`` into the freshly emptied table.
    :param lock_timeout: how long to wait for another run loading the same table.
    :param stall_timeout: seconds without progress before the copy is aborted.
    :param fdw_timeout: seconds an FDW load may take (default: 30x its estimate, at least 15 minutes).
    :param progress_interval: seconds between progress log lines.
    :param overwrite_target_writes: reload the table even though something other than the migration
        (the application, after cutover) wrote to it since its last load; off, such a load refuses
        and changes nothing. For rehearsal targets only. (templated)
    """

    template_fields: Sequence[str] = (
        *ConfitureBaseOperator.template_fields,
        "table",
        "unit",
        "source_table",
        "target_table",
        "columns",
        "where",
        "overwrite_target_writes",
    )

    def __init__(
        self,
        *,
        table: str | None = None,
        unit: planning.LoadUnit | None = None,
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
        overwrite_target_writes: bool | str = False,
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
        self.overwrite_target_writes = overwrite_target_writes

    def convert_rendered_fields(self) -> None:
        super().convert_rendered_fields()
        self.overwrite_target_writes = as_bool(self.overwrite_target_writes)

    def _mapping_and_table(self) -> tuple[planning.Mapping, str]:
        if self.source_table or self.target_table:
            if not (self.source_table and self.target_table):
                raise PlanError("give both source_table and target_table (or neither, and a mapping)")
            mapping = planning.one_table_mapping(
                self.source_table, self.target_table, self.columns, where=self.where
            )
            return mapping, mapping.tables[0].key
        table = planning.unit_table(self.unit) or self.table
        if not table:
            raise PlanError("TableMigrateOperator needs table=, unit=, or source_table= and target_table=")
        return self.load_mapping(), str(table)

    def load_options(self) -> loading.LoadOptions:
        return loading.LoadOptions(
            defer_indexes=as_bool(self.defer_indexes),
            freeze=as_bool(self.freeze),
            lock_timeout=self.lock_timeout,
            progress_interval=float(self.progress_interval),
            stall_timeout=float(self.stall_timeout),
            fdw_timeout=float(self.fdw_timeout) if self.fdw_timeout is not None else None,
            overwrite_target_writes=as_bool(self.overwrite_target_writes),
        )

    @contextlib.contextmanager
    def _rows_probe(self) -> Iterator[Callable[[int], Callable[[], int | None]]]:
        """Rows the source's COPY has sent so far (pg_stat_progress_copy), read on a third connection."""
        with connections.connect(self.source_conn_id, read_only=True, autocommit=True) as monitor:

            def factory(pid: int) -> Callable[[], int | None]:
                def probe() -> int | None:
                    rows = dbapi.fetch_value(
                        monitor, "SELECT tuples_processed FROM pg_stat_progress_copy WHERE pid = %s", (pid,)
                    )
                    return None if rows is None else int(rows)

                return probe

            yield factory

    def execute_step(self, context: Context) -> dict[str, Any]:
        if planning.unit_tables(self.unit):
            return self._load_bundle(context)
        mapping, table = self._mapping_and_table()
        unit: dict[str, Any] = dict(self.unit or {})
        key_range = planning.KeyRange.from_dict(unit["key_range"]) if unit.get("key_range") else None
        source_conn: Connection
        with self.both() as (source_conn, target_conn), self._rows_probe() as probe:
            done = loading.load_unit(
                source_conn,
                target_conn,
                mapping,
                self.plan_options(),
                table,
                planned_strategy=unit.get("strategy"),
                key_range=key_range,
                load_options=self.load_options(),
                dry_run=bool(self.dry_run),
                progress=self.log.info,
                rows_probe_factory=probe,
                before_load=self._announce(key_range),
                run_id=run_id_of(context),
            )
        self._log_result(done)
        return done.result.to_dict()

    def _load_bundle(self, context: Context) -> dict[str, Any]:
        """A unit of small tables: each in its own transaction; a retry loads only what is missing."""
        tables = planning.unit_tables(self.unit)
        with self.both() as (source_conn, target_conn):
            report = loading.load_tables(
                source_conn,
                target_conn,
                self.load_mapping(),
                self.plan_options(),
                tables,
                run_id=run_id_of(context),
                load_options=self.load_options(),
                dry_run=bool(self.dry_run),
                progress=self.log.info,
                before_load=self._announce(None),
            )
        for done in report.loaded:
            self._log_result(done)
        if report.skipped:
            self.log.info("Already loaded by this run, not loaded again: %s", ", ".join(report.skipped))
        for label, error in report.failed.items():
            self.log.error("%s: %s", label, error)
        report.raise_if_failed()
        return {
            "label": dict(self.unit or {}).get("label"),
            "tables": [d.result.to_dict() for d in report.loaded],
            "skipped": report.skipped,
            "rows": sum(d.result.rows for d in report.loaded),
            "dry_run": bool(self.dry_run),
        }

    def _announce(self, key_range: planning.KeyRange | None) -> Callable[[planning.TablePlan, str], None]:
        def announce(plan: planning.TablePlan, strategy: str) -> None:
            for warning in plan.warnings:
                self.log.warning("%s: %s", plan.label, warning)
            if not self.dry_run:
                self.log.info(
                    "Loading %s%s from %s with strategy %s",
                    plan.target,
                    f" {key_range.label}" if key_range else "",
                    plan.source,
                    strategy,
                )

        return announce

    def _log_result(self, done: loading.UnitLoad) -> None:
        result = done.result
        if result.target_writes:
            self.log.warning(
                "%s: written since its last load, not by the migration: %s%s",
                done.label,
                result.target_writes["detail"],
                " (overwritten on purpose: overwrite_target_writes)"
                if not self.dry_run
                else "; a real run refuses to load it unless overwrite_target_writes",
            )
        if result.dry_run:
            self.log.info(
                "Dry run: %s would load with strategy %s:\n%s",
                done.label,
                done.strategy,
                "\n".join(result.statements),
            )
            return
        self.log.info(
            "%s: %s rows in %.2f s (%s rows/s) with %s%s; rebuilt %d indexes, %d sequences synced",
            done.label,
            f"{result.rows:,}",
            result.seconds,
            f"{result.rows_per_second:,.0f}",
            done.strategy,
            f" ({result.copy_format})" if result.copy_format else "",
            result.set_aside.get("indexes", 0),
            len(result.sequences),
        )
