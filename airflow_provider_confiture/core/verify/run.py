"""The verify step as a task runs it: which tables, which checks, one verdict."""

from __future__ import annotations

from typing import Any

from airflow_provider_confiture.core.db import state
from airflow_provider_confiture.core.db.dbapi import Connection
from airflow_provider_confiture.core.planning.mapping import Mapping
from airflow_provider_confiture.core.planning.plan import PlanOptions, plan_migration
from airflow_provider_confiture.core.planning.ranges import KeyRange
from airflow_provider_confiture.core.verify.checks import foreign_key_problems, verify_plans
from airflow_provider_confiture.core.verify.summary import VerifyReport, checks_from_results, summarize


def run_verify(
    source_conn: Connection,
    target_conn: Connection,
    mapping: Mapping,
    options: PlanOptions,
    *,
    tables: list[str] | None = None,
    key_range: KeyRange | None = None,
    checksum: bool = True,
    table_results: Any = None,
    check_foreign_keys: bool = True,
    fail_on_drift: bool = True,
    run_id: str | None = None,
) -> VerifyReport:
    """Verify ``tables`` (None = all; one table with ``key_range`` for a part), or, given
    ``table_results`` (the XComs of per-table verify tasks), summarise them without scanning again.
    Foreign keys of the migrated tables are checked when ``check_foreign_keys``. Never raises for a
    difference: the report says (``raise_if_failed``). With ``run_id``, each table's verdict is recorded
    for the tables that run loaded (a retry of a unit of small tables skips the ones found right)."""
    result, _ = plan_migration(source_conn, target_conn, mapping, options, tables)
    if table_results is not None:
        checks = checks_from_results(table_results)
    else:
        checks = verify_plans(
            source_conn,
            target_conn,
            result.plans,
            origin=mapping.origin,
            checksum=checksum,
            key_range=key_range,
        )
    problems = (
        foreign_key_problems(target_conn, [p.target for p in result.plans]) if check_foreign_keys else []
    )
    report = summarize(checks, problems, fail_on_drift=fail_on_drift)
    if run_id and table_results is None and state.state_schema_exists(target_conn):
        failing = {id(c) for c in report.failing}
        for plan, check in zip(result.plans, checks, strict=True):
            ok = id(check) not in failing
            state.record_verified_in_run(
                target_conn, plan.target.schema or "", plan.target.name, check.part, run_id, ok
            )
        target_conn.commit()
    return report
