"""The migration's tasks, created in the current DAG or TaskGroup and chained (the one converter
behind both builders).

Shape of a run::

    setup -> analyze -> prepare -> table[unit] (mapped: migrate >> verify) -> finalize -> summary

* ``setup`` creates the target database, applies the DDL once and links it to the source (postgres_fdw).
* ``analyze`` plans and validates every table (no data moves) and returns the load units: one per
  table, one per key range ``table [k/n]`` for tables of at least ``split_threshold_rows`` rows, and
  units of up to ``max_tables_per_unit`` small tables (``small tables [k/n]``, each table in its own
  transaction).
  It fails, listing them, when target tables took writes that are not the migration's since their
  last load (the application uses the new database), unless ``overwrite_target_writes``.
* ``prepare`` sets aside the foreign keys touching the migrated tables, so tables load in any order.
* ``table`` is a task group mapped over the units: ``migrate`` loads the unit's table in one
  transaction (complete or untouched; a unit of small tables, each table in its own), then ``verify``
  compares it with the source, table by table. Each instance is labelled in
  the UI with the unit's label (``map_index_template``), retries alone (``table_retries``) and can be
  cleared alone: clearing ``table.migrate`` of one table with its downstream re-runs that table, its
  verify, ``finalize`` and ``summary``, nothing else.
* ``finalize`` puts the foreign keys back and validates them.
* ``summary`` reads every per-table verify result and checks the migration-wide facts (foreign keys in
  force and validated). It keeps the default trigger rule: a red table makes ``finalize`` and
  ``summary`` ``upstream_failed``, so the run (whose state comes from its leaf tasks) is red. An
  ``ALL_DONE`` leaf would make a failed run look green. While a table is red its foreign keys stay set
  aside (recorded in ``_confiture.deferred_foreign_key``), so a repaired table or key range can still
  be reloaded alone; the cleanup DAG refuses to run until then.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from airflow.sdk import task_group

from airflow_provider_confiture.dag import params
from airflow_provider_confiture.dag.options import MigrationOptions, accepted_arguments
from airflow_provider_confiture.operators import (
    AnalyzeUnitsOperator,
    FdwSetupOperator,
    FinalizeLoadOperator,
    PrepareLoadOperator,
    TableMigrateOperator,
    VerifyOperator,
)

#: Wait between two attempts of one table, unless ``table_retry_delay`` or ``default_args`` says otherwise.
DEFAULT_TABLE_RETRY_DELAY = timedelta(seconds=30)
PER_TABLE_GROUP_ID = "table"

#: Operator arguments fed by the run's params (the trigger form) rather than by the factory's options.
RUN_PARAMS: dict[str, str] = {
    "strategy": params.STRATEGY_TEMPLATE,
    "copy_threshold_rows": params.COPY_THRESHOLD_TEMPLATE,
    "tables": params.TABLES_TEMPLATE,
    "dry_run": params.DRY_RUN_TEMPLATE,
    "overwrite_target_writes": params.OVERWRITE_TARGET_WRITES_TEMPLATE,
}


@dataclass
class MigrationTasks:
    """The tasks the converter created (for callers wiring more tasks around them, and for tests)."""

    setup: FdwSetupOperator
    analyze: AnalyzeUnitsOperator
    prepare: PrepareLoadOperator
    per_table: Any  # the mapped TaskGroup
    migrate: TableMigrateOperator
    verify: VerifyOperator
    finalize: FinalizeLoadOperator
    summary: VerifyOperator


def step(operator: type, options: MigrationOptions, *, task_id: str, doc_md: str, **kwargs: Any) -> Any:
    """``operator`` with every option it takes, the run params it takes, then ``kwargs``."""
    args = options.operator_kwargs(operator)
    for name, template in RUN_PARAMS.items():
        if name in accepted_arguments(operator):
            args[name] = template
    args.update(kwargs)
    return operator(task_id=task_id, doc_md=doc_md, **args)


def add_migration_tasks(options: MigrationOptions) -> MigrationTasks:
    """Create the migration's tasks in the current DAG / TaskGroup context and chain them."""
    setup = step(
        FdwSetupOperator,
        options,
        task_id="setup",
        doc_md="Create the target database, apply the DDL once, link it to the source with postgres_fdw.",
    )
    analyze = step(
        AnalyzeUnitsOperator,
        options,
        task_id="analyze",
        do_xcom_push=True,  # the per-table group maps over this XCom, whatever default_args say
        doc_md="Plan, validate (EXPLAIN) and estimate every table; no data moves. Returns the load units.",
    )
    prepare = step(
        PrepareLoadOperator,
        options,
        task_id="prepare",
        doc_md="Set aside the foreign keys touching the migrated tables until finalize.",
    )
    retry_delay = (
        options.table_retry_delay if options.table_retry_delay is not None else DEFAULT_TABLE_RETRY_DELAY
    )
    per_table_args: dict[str, Any] = {
        "retries": options.table_retries,
        "retry_delay": retry_delay,
        "map_index_template": params.UNIT_LABEL_TEMPLATE,
        "do_xcom_push": True,  # summary reads every verify's result
        "tables": None,  # a unit names its table
    }
    created: dict[str, Any] = {}

    @task_group(
        group_id=PER_TABLE_GROUP_ID,
        tooltip="One table, one key range of a large table, or a unit of small tables",
    )
    def per_table(unit: Any) -> None:
        migrate = step(
            TableMigrateOperator,
            options,
            task_id="migrate",
            unit=unit,
            **per_table_args,
            doc_md="Load this table (or key range) in one transaction: complete, or untouched.",
        )
        verify = step(
            VerifyOperator,
            options,
            task_id="verify",
            unit=unit,
            checksum=params.CHECKSUM_TEMPLATE,
            **per_table_args,
            doc_md="Compare this table (or key range) with the source: row count and content checksum.",
        )
        migrate >> verify
        created.update(migrate=migrate, verify=verify)

    group = per_table.expand(unit=analyze.output)
    finalize = step(
        FinalizeLoadOperator,
        options,
        task_id="finalize",
        tables=None,
        doc_md="Re-create the foreign keys set aside and validate every foreign key of the migrated tables.",
    )
    summary = step(
        VerifyOperator,
        options,
        task_id="summary",
        table_results=created["verify"].output,
        doc_md="Summarise every table's verification; check foreign keys. Red when any table is red.",
    )
    setup >> analyze >> prepare >> group >> finalize >> summary
    return MigrationTasks(
        setup=setup,
        analyze=analyze,
        prepare=prepare,
        per_table=group,
        migrate=created["migrate"],
        verify=created["verify"],
        finalize=finalize,
        summary=summary,
    )
