"""One load unit end to end, as the per-table task runs it: plan the table, decide its strategy,
then load it (or, in a dry run, say what would run).

The plan is made from the live catalogs at load time (they may have changed since analyze); the
strategy analyze chose travels in the unit and is kept unless COPY can no longer run on the source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from airflow_provider_confiture.core.db import dbapi, target_guard
from airflow_provider_confiture.core.db.dbapi import Connection
from airflow_provider_confiture.core.loading.load import LoadOptions, LoadResult, load_table, statements_for
from airflow_provider_confiture.core.planning.analyze import decide_strategy
from airflow_provider_confiture.core.planning.mapping import Mapping
from airflow_provider_confiture.core.planning.plan import PlanOptions, TablePlan, plan_migration
from airflow_provider_confiture.core.planning.ranges import KeyRange
from airflow_provider_confiture.core.planning.strategy import Strategy


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
) -> UnitLoad:
    """Plan ``table``, decide its strategy and load it (``dry_run``: only the statements, and the
    writes from outside the migration a real load would refuse to overwrite).

    ``before_load`` is called once the plan and strategy are known and before any data moves (the
    operator logs the plan's warnings and what is about to happen there).
    """
    plan = plan_migration(source_conn, target_conn, mapping, options, [table])[0].get(table)
    decision = decide_strategy(
        source_conn, target_conn, plan, options, origin=mapping.origin, planned=planned_strategy
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
    )
    return UnitLoad(plan, strategy, key_range, result)
