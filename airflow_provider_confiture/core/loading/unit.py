"""One load unit end to end, as the per-table task runs it: plan the table, decide its strategy,
then load it (or, in a dry run, say what would run).

The plan is made from the live catalogs at load time (they may have changed since analyze); the
strategy analyze chose travels in the unit and is kept unless COPY can no longer run on the source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from airflow_provider_confiture.core.db import dbapi, state, target_guard
from airflow_provider_confiture.core.db.dbapi import Connection
from airflow_provider_confiture.core.errors import ConfitureError, MigrationError
from airflow_provider_confiture.core.loading.load import LoadOptions, LoadResult, load_table, statements_for
from airflow_provider_confiture.core.planning.analyze import decide_strategy
from airflow_provider_confiture.core.planning.mapping import Mapping
from airflow_provider_confiture.core.planning.plan import PlanOptions, TablePlan, plan_migration
from airflow_provider_confiture.core.planning.ranges import KeyRange
from airflow_provider_confiture.core.planning.strategy import Strategy
from airflow_provider_confiture.core.planning.units import UnitTable


@dataclass
class UnitLoad:
    plan: TablePlan
    strategy: Strategy
    key_range: KeyRange | None
    result: LoadResult

    @property
    def label(self) -> str:
        return self.plan.label + (f" {self.key_range.label}" if self.key_range else "")


def load_unit(
    source_conn: Connection,
    target_conn: Connection,
    mapping: Mapping,
    options: PlanOptions,
    table: str,
    *,
    planned_strategy: str | None = None,
    key_range: KeyRange | None = None,
    load_options: LoadOptions | None = None,
    dry_run: bool = False,
    progress: Callable[[str], None] | None = None,
    rows_probe_factory: Callable[[int], Callable[[], int | None]] | None = None,
    before_load: Callable[[TablePlan, Strategy], None] | None = None,
    run_id: str | None = None,
) -> UnitLoad:
    """Plan ``table``, decide its strategy and load it (``dry_run``: only the statements, and the
    writes from outside the migration a real load would refuse to overwrite).

    ``before_load`` is called once the plan and strategy are known and before any data moves (the
    operator logs the plan's warnings and what is about to happen there).
    """
    plan = plan_migration(source_conn, target_conn, mapping, options, [table])[0].get(table)
    return _load_planned(
        source_conn,
        target_conn,
        plan,
        options,
        origin=mapping.origin,
        planned_strategy=planned_strategy,
        key_range=key_range,
        load_options=load_options,
        dry_run=dry_run,
        progress=progress,
        rows_probe_factory=rows_probe_factory,
        before_load=before_load,
        run_id=run_id,
    )


def _load_planned(
    source_conn: Connection,
    target_conn: Connection,
    plan: TablePlan,
    options: PlanOptions,
    *,
    origin: str | None,
    planned_strategy: str | None,
    key_range: KeyRange | None,
    load_options: LoadOptions | None,
    dry_run: bool,
    progress: Callable[[str], None] | None,
    rows_probe_factory: Callable[[int], Callable[[], int | None]] | None,
    before_load: Callable[[TablePlan, Strategy], None] | None,
    run_id: str | None,
) -> UnitLoad:
    decision = decide_strategy(
        source_conn, target_conn, plan, options, origin=origin, planned=planned_strategy
    )
    strategy = decision.strategy
    if before_load is not None:
        before_load(plan, strategy)
    if dry_run:
        # The finding a real load would refuse on, reported without failing.
        written = target_guard.writes_since_load(target_conn, plan.target)
        dbapi.safe_rollback(target_conn)
        result = LoadResult(
            str(plan.target),
            plan.key,
            strategy,
            key_range.label if key_range else "",
            0,
            0.0,
            dry_run=True,
            statements=statements_for(plan, strategy, key_range),
            target_writes=written.to_dict() if written else None,
        )
        return UnitLoad(plan, strategy, key_range, result)
    result = load_table(
        source_conn,
        target_conn,
        plan,
        strategy,
        options=load_options,
        key_range=key_range,
        progress=progress,
        rows_probe_factory=rows_probe_factory,
        run_id=run_id,
    )
    return UnitLoad(plan, strategy, key_range, result)


@dataclass
class BundleLoad:
    """What loading a unit of several small tables did, table by table."""

    loaded: list[UnitLoad] = field(default_factory=list)
    #: Labels of tables this run had already loaded (and not found wrong): not loaded again.
    skipped: list[str] = field(default_factory=list)
    #: label -> the error that rolled that table's load back (the table is unchanged).
    failed: dict[str, ConfitureError] = field(default_factory=dict)

    def raise_if_failed(self) -> None:
        """One error naming every table that failed; retryable only if each of them is."""
        if not self.failed:
            return
        lines = "\n  ".join(f"{label}: {error}" for label, error in self.failed.items())
        done = len(self.loaded) + len(self.skipped)
        raise MigrationError(
            f"{len(self.failed)} of {len(self.failed) + done} tables of this unit failed (each rolled back, "
            f"unchanged; the {done} others are loaded and are not loaded again when the unit is retried):"
            f"\n  {lines}",
            retryable=all(e.retryable for e in self.failed.values()),
        )


def load_tables(
    source_conn: Connection,
    target_conn: Connection,
    mapping: Mapping,
    options: PlanOptions,
    tables: list[UnitTable],
    *,
    run_id: str | None = None,
    load_options: LoadOptions | None = None,
    dry_run: bool = False,
    progress: Callable[[str], None] | None = None,
    before_load: Callable[[TablePlan, Strategy], None] | None = None,
) -> BundleLoad:
    """Load a unit of several small tables, each in its own transaction (complete or untouched).

    The catalogs are read and the tables planned once for the whole unit (per-table work does not grow
    with the number of tables in the migration). A table that fails is rolled back and the others go
    on. With ``run_id``, a table this run already loaded (and whose verification did not fail) is
    skipped, so a retry of the unit redoes only what is missing.
    """
    result, _ = plan_migration(source_conn, target_conn, mapping, options, [t["table"] for t in tables])
    done = state.run_progress(target_conn, run_id) if run_id and not dry_run else {}
    dbapi.safe_rollback(target_conn)
    report = BundleLoad()
    for item in tables:
        plan = result.get(item["table"])
        key = (plan.target.schema or "", plan.target.name, "")
        if key in done and done[key] is not False:  # loaded by this run, not found wrong since
            report.skipped.append(plan.label)
            continue
        try:
            report.loaded.append(
                _load_planned(
                    source_conn,
                    target_conn,
                    plan,
                    options,
                    origin=mapping.origin,
                    planned_strategy=item.get("strategy"),
                    key_range=None,
                    load_options=load_options,
                    dry_run=dry_run,
                    progress=progress,
                    rows_probe_factory=None,
                    before_load=before_load,
                    run_id=run_id,
                )
            )
        except ConfitureError as exc:
            dbapi.safe_rollback(target_conn)
            dbapi.safe_rollback(source_conn)
            report.failed[plan.label] = exc
    return report
