"""One column-mapping YAML in, a migration DAG (or a TaskGroup inside a larger DAG) out.

Shape of a run::

    setup -> analyze -> prepare -> table[unit] (mapped: migrate >> verify) -> finalize -> summary

* ``setup`` creates the target database, applies the DDL once and links it to the source (postgres_fdw).
* ``analyze`` plans and validates every table (no data moves) and returns the load units: one per
  table, or one per key range ``table [k/n]`` for tables of at least ``split_threshold_rows`` rows.
* ``prepare`` sets aside the foreign keys touching the migrated tables, so tables load in any order.
* ``table`` is a task group mapped over the units: ``migrate`` loads the unit in one transaction
  (complete or untouched), then ``verify`` compares it with the source. Each instance is labelled in
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

Two DAGs from one call: ``create_schema_to_schema_dag`` returns the migration DAG and also builds the
manually triggered cleanup DAG ``<dag_id>_cleanup``. Both are built in ``with DAG(...)`` blocks, so
Airflow's auto-registration (``DAG(auto_register=True)``, the default) discovers both when a file in
the DAGs folder calls the factory, whether or not the result is assigned to a module-level name. The
cleanup DAG is also returned by :func:`cleanup_dag_of`, for a DAG file that disables auto-registration
(then assign both to module-level names).

Relative ``mapping_path``/``ddl_path`` resolve against the file that calls the factory. The mapping is
loaded and validated when the DAG is built, so a bad mapping is a DAG import error naming the file,
entry and key, not a failed run.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, TaskGroup, task_group

from airflow_provider_confiture import dag_params
from airflow_provider_confiture.core import fdw
from airflow_provider_confiture.core import mapping as mapping_module
from airflow_provider_confiture.core.analyze import DEFAULT_ROWS_PER_PART, DEFAULT_SPLIT_THRESHOLD_ROWS
from airflow_provider_confiture.core.plan import DEFAULT_COPY_THRESHOLD_ROWS
from airflow_provider_confiture.dag_units import AnalyzeUnitsOperator
from airflow_provider_confiture.operators import (
    CleanupOperator,
    FdwSetupOperator,
    FinalizeLoadOperator,
    PrepareLoadOperator,
    TableMigrateOperator,
    VerifyOperator,
)

__all__ = [
    "MigrationSpec",
    "MigrationTasks",
    "cleanup_dag_of",
    "create_schema_to_schema_cleanup_dag",
    "create_schema_to_schema_dag",
    "create_schema_to_schema_task_group",
]

#: Wait between two attempts of one table, unless ``table_retry_delay`` or ``default_args`` says otherwise.
DEFAULT_TABLE_RETRY_DELAY = timedelta(seconds=30)
TAGS = ("confiture", "schema-to-schema")
PER_TABLE_GROUP_ID = "table"

_PACKAGE_DIR = Path(__file__).resolve().parent
_CLEANUP_DAGS: dict[str, DAG] = {}


# --------------------------------------------------------------------------- the shared converter
@dataclass
class MigrationSpec:
    """Everything the converter needs, paths already resolved and the mapping already validated."""

    source_conn_id: str
    target_conn_id: str
    mapping_path: str | None
    ddl_path: str | None
    mapping: mapping_module.Mapping
    caller_file: str | None
    source_schema: str = "public"
    target_schema: str = "public"
    foreign_schema: str = "old_schema"
    strategy: str = "auto"
    copy_threshold_rows: int = DEFAULT_COPY_THRESHOLD_ROWS
    split_threshold_rows: int = DEFAULT_SPLIT_THRESHOLD_ROWS
    rows_per_part: int = DEFAULT_ROWS_PER_PART
    table_retries: int = 2
    table_retry_delay: timedelta | None = None
    fdw_conn_id: str | None = None
    fdw_host: str | None = None
    fdw_port: int | str | None = None
    fdw_dbname: str | None = None
    fdw_server_name: str = fdw.DEFAULT_SERVER

    def common(self) -> dict[str, Any]:
        """Arguments every Confiture operator of the DAG takes (params wired through templates)."""
        return {
            "source_conn_id": self.source_conn_id,
            "target_conn_id": self.target_conn_id,
            "mapping_path": self.mapping_path,
            "source_schema": self.source_schema,
            "target_schema": self.target_schema,
            "foreign_schema": self.foreign_schema,
            "strategy": dag_params.STRATEGY_TEMPLATE,
            "copy_threshold_rows": dag_params.COPY_THRESHOLD_TEMPLATE,
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


def add_migration_tasks(spec: MigrationSpec) -> MigrationTasks:
    """Create the migration's tasks in the current DAG / TaskGroup context and chain them."""
    common = spec.common()
    tables = dag_params.TABLES_TEMPLATE
    dry_run = dag_params.DRY_RUN_TEMPLATE
    setup = FdwSetupOperator(
        task_id="setup",
        ddl_path=spec.ddl_path,
        fdw_conn_id=spec.fdw_conn_id,
        fdw_host=spec.fdw_host,
        fdw_port=spec.fdw_port,
        fdw_dbname=spec.fdw_dbname,
        fdw_server_name=spec.fdw_server_name,
        tables=tables,
        dry_run=dry_run,
        doc_md="Create the target database, apply the DDL once, link it to the source with postgres_fdw.",
        **common,
    )
    analyze = AnalyzeUnitsOperator(
        task_id="analyze",
        tables=tables,
        split_threshold_rows=spec.split_threshold_rows,
        rows_per_part=spec.rows_per_part,
        dry_run=dry_run,
        do_xcom_push=True,  # the per-table group maps over this XCom, whatever default_args say
        doc_md="Plan, validate (EXPLAIN) and estimate every table; no data moves. Returns the load units.",
        **common,
    )
    prepare = PrepareLoadOperator(
        task_id="prepare",
        tables=tables,
        dry_run=dry_run,
        doc_md="Set aside the foreign keys touching the migrated tables until finalize.",
        **common,
    )
    retry_delay = spec.table_retry_delay if spec.table_retry_delay is not None else DEFAULT_TABLE_RETRY_DELAY
    per_table_args: dict[str, Any] = {
        "retries": spec.table_retries,
        "retry_delay": retry_delay,
        "map_index_template": dag_params.UNIT_LABEL_TEMPLATE,
        "do_xcom_push": True,  # summary reads every verify's result
    }
    created: dict[str, Any] = {}

    @task_group(group_id=PER_TABLE_GROUP_ID, tooltip="One table, or one key range of a large table")
    def per_table(unit: Any) -> None:
        migrate = TableMigrateOperator(
            task_id="migrate",
            unit=unit,
            dry_run=dry_run,
            doc_md="Load this table (or key range) in one transaction: complete, or untouched.",
            **per_table_args,
            **common,
        )
        verify = VerifyOperator(
            task_id="verify",
            unit=unit,
            checksum=dag_params.CHECKSUM_TEMPLATE,
            dry_run=dry_run,
            doc_md="Compare this table (or key range) with the source: row count and content checksum.",
            **per_table_args,
            **common,
        )
        migrate >> verify
        created.update(migrate=migrate, verify=verify)

    group = per_table.expand(unit=analyze.output)
    finalize = FinalizeLoadOperator(
        task_id="finalize",
        dry_run=dry_run,
        doc_md="Re-create the foreign keys set aside and validate every foreign key of the migrated tables.",
        **common,
    )
    summary = VerifyOperator(
        task_id="summary",
        table_results=created["verify"].output,
        tables=tables,
        dry_run=dry_run,
        doc_md="Summarise every table's verification; check foreign keys. Red when any table is red.",
        **common,
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


# --------------------------------------------------------------------------- arguments -> MigrationSpec
def _caller_file() -> str | None:
    """File of the nearest frame outside this package: the DAG file that called the factory."""
    frame = inspect.currentframe()
    try:
        while frame is not None:
            filename = frame.f_code.co_filename
            if not filename.startswith("<"):
                path = Path(filename).resolve()
                if _PACKAGE_DIR not in path.parents:
                    return str(path)
            frame = frame.f_back
        return None
    finally:
        del frame


def _resolve(path: str | os.PathLike | None, base: Path, what: str, caller: str | None) -> str | None:
    if path is None:
        return None
    text = os.fspath(path)
    if not text.strip():
        raise ValueError(f"{what} is empty: give a path, or None")
    resolved = Path(text).expanduser()
    if not resolved.is_absolute():
        resolved = base / resolved
    resolved = resolved.resolve()
    if not resolved.exists():
        relative_to = f" (relative paths resolve against {caller})" if caller else ""
        raise FileNotFoundError(f"{what} {text!r} not found: {resolved} does not exist{relative_to}")
    return str(resolved)


def _spec(
    *,
    mapping_path: str | os.PathLike | None,
    source_conn_id: str,
    target_conn_id: str,
    ddl_path: str | os.PathLike | None,
    target_schema: str,
    source_schema: str,
    foreign_schema: str,
    table_retries: int,
    table_retry_delay: timedelta | None,
    copy_threshold_rows: int,
    strategy: str,
    split_threshold_rows: int,
    rows_per_part: int,
    fdw_conn_id: str | None,
    fdw_host: str | None,
    fdw_port: int | str | None,
    fdw_dbname: str | None,
    fdw_server_name: str,
) -> MigrationSpec:
    caller = _caller_file()
    base = Path(caller).parent if caller else Path.cwd()
    dag_params.check_defaults(strategy, copy_threshold_rows)
    for name, value in (
        ("table_retries", table_retries),
        ("split_threshold_rows", split_threshold_rows),
        ("rows_per_part", rows_per_part),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an integer >= 0, not {value!r}")
    if not source_conn_id or not target_conn_id:
        raise ValueError("source_conn_id and target_conn_id are required (Airflow Postgres connection ids)")
    resolved_mapping = _resolve(mapping_path, base, "mapping_path", caller)
    # Parse-time validation: a bad mapping raises MappingError naming file, entry and key, which
    # Airflow shows as the DAG file's import error.
    mapping = mapping_module.load_mapping(Path(resolved_mapping) if resolved_mapping else None)
    return MigrationSpec(
        source_conn_id=source_conn_id,
        target_conn_id=target_conn_id,
        mapping_path=resolved_mapping,
        ddl_path=_resolve(ddl_path, base, "ddl_path", caller),
        mapping=mapping,
        caller_file=caller,
        source_schema=source_schema,
        target_schema=target_schema,
        foreign_schema=foreign_schema,
        strategy=strategy,
        copy_threshold_rows=copy_threshold_rows,
        split_threshold_rows=split_threshold_rows,
        rows_per_part=rows_per_part,
        table_retries=table_retries,
        table_retry_delay=table_retry_delay,
        fdw_conn_id=fdw_conn_id,
        fdw_host=fdw_host,
        fdw_port=fdw_port,
        fdw_dbname=fdw_dbname,
        fdw_server_name=fdw_server_name,
    )


def _doc_md(dag_id: str, spec: MigrationSpec, cleanup_dag_id: str | None) -> str:
    entries = [
        f"| `{e.key}` | `{e.source_table}` | `{e.target_table}` | {len(e.columns)} | {e.strategy or 'run param'} |"
        for e in spec.mapping.tables
    ]
    table = (
        "| entry | source table | target table | column rules | strategy |\n|---|---|---|---|---|\n"
        + "\n".join(entries)
        if entries
        else "_No mapping entries: every table migrates from the source table of the same name._"
    )
    cleanup = (
        f"When the application runs on the new database and the monitoring period is over, trigger "
        f"**`{cleanup_dag_id}`** by hand: it removes the postgres_fdw link (server `{spec.fdw_server_name}`, "
        f"schema `{spec.foreign_schema}`). It refuses while a table is not repaired."
        if cleanup_dag_id
        else "Cleanup (removing the postgres_fdw link) is not part of this DAG."
    )
    return f"""### Schema-to-schema migration `{dag_id}`

Copies the old database (connection `{spec.source_conn_id}`, schema `{spec.source_schema}`) into the new
one (connection `{spec.target_conn_id}`, schema `{spec.target_schema}`) built from
`{spec.ddl_path or "an existing schema"}`, with the column mapping `{spec.mapping_path or "(none)"}`.
The old database is only read.

{table}

**Run**: setup → analyze (plan, validation, estimates; no data moves) → prepare (foreign keys set aside)
→ one `table` instance per table or key range `table [k/n]` (migrate in one transaction, then verify
row count and checksum) → finalize (foreign keys back and validated) → summary. The run is red when any
table failed or differs.

**Params**: `tables` (default: all), `strategy` (default `{spec.strategy}`), `copy_threshold_rows`
(default {spec.copy_threshold_rows:,}), `dry_run` (log the plan and SQL, change nothing), `skip_checksum`.

**Repairing a table**: each table retries {spec.table_retries} time(s) by itself. After fixing the
cause, clear that table's `table.migrate` instance with *Downstream*: it reloads that table alone, then
finalize and summary run again. Re-running the whole DAG re-syncs every table (safe, idempotent); one run
at a time, and a per-table lock keeps two runs from writing one table.

{cleanup}
"""


def _tags(extra: Any) -> list[str]:
    tags = list(TAGS)
    for tag in extra or ():
        if tag not in tags:
            tags.append(tag)
    return tags


# --------------------------------------------------------------------------- public builders
def create_schema_to_schema_dag(
    dag_id: str,
    *,
    mapping_path: str | os.PathLike | None,
    source_conn_id: str,
    target_conn_id: str,
    ddl_path: str | os.PathLike | None = None,
    target_schema: str = "public",
    source_schema: str = "public",
    foreign_schema: str = "old_schema",
    schedule: Any = None,
    default_args: dict[str, Any] | None = None,
    table_retries: int = 2,
    table_retry_delay: timedelta | None = None,
    copy_threshold_rows: int = DEFAULT_COPY_THRESHOLD_ROWS,
    strategy: str = "auto",
    split_threshold_rows: int = DEFAULT_SPLIT_THRESHOLD_ROWS,
    rows_per_part: int = DEFAULT_ROWS_PER_PART,
    fdw_conn_id: str | None = None,
    fdw_host: str | None = None,
    fdw_port: int | str | None = None,
    fdw_dbname: str | None = None,
    fdw_server_name: str = fdw.DEFAULT_SERVER,
    create_cleanup_dag: bool = True,
    **dag_kwargs: Any,
) -> DAG:
    """Build the migration DAG for one mapping (and, by default, its cleanup DAG ``<dag_id>_cleanup``).

    :param mapping_path: column-mapping YAML (relative to the calling file); None migrates every target
        table from the source table of the same name.
    :param source_conn_id: Airflow Postgres connection of the old database (only ever read).
    :param target_conn_id: Airflow Postgres connection of the new database (created if missing).
    :param ddl_path: directory or file of ``.sql`` building the new schema (relative to the calling file).
    :param schedule: Airflow schedule; a scheduled run of a finished migration re-syncs every table.
    :param default_args: default task arguments (retries of setup/analyze/prepare/finalize/summary...).
    :param table_retries: attempts after the first for each table's migrate and verify.
    :param table_retry_delay: wait between a table's attempts (default: ``default_args['retry_delay']``,
        else 30 s).
    :param copy_threshold_rows: default of the ``copy_threshold_rows`` param.
    :param strategy: default of the ``strategy`` param (auto, fdw or copy).
    :param split_threshold_rows: tables with at least this many rows load as key ranges in parallel.
    :param rows_per_part: rows per key range.
    :param fdw_conn_id: connection whose login/password the postgres_fdw user mapping uses.
    :param fdw_host: address the *target server* uses to reach the source (also ``fdw_port``,
        ``fdw_dbname``), when it differs from the source connection's (e.g. inside Docker).
    :param fdw_server_name: name of the foreign server on the target.
    :param create_cleanup_dag: also build ``<dag_id>_cleanup`` (schedule None, trigger by hand).
    :param dag_kwargs: any other ``DAG`` argument (``start_date``, ``tags``, ``max_active_runs``...).
    """
    if table_retry_delay is None and default_args and default_args.get("retry_delay") is not None:
        table_retry_delay = default_args["retry_delay"]
    spec = _spec(
        mapping_path=mapping_path,
        source_conn_id=source_conn_id,
        target_conn_id=target_conn_id,
        ddl_path=ddl_path,
        target_schema=target_schema,
        source_schema=source_schema,
        foreign_schema=foreign_schema,
        table_retries=table_retries,
        table_retry_delay=table_retry_delay,
        copy_threshold_rows=copy_threshold_rows,
        strategy=strategy,
        split_threshold_rows=split_threshold_rows,
        rows_per_part=rows_per_part,
        fdw_conn_id=fdw_conn_id,
        fdw_host=fdw_host,
        fdw_port=fdw_port,
        fdw_dbname=fdw_dbname,
        fdw_server_name=fdw_server_name,
    )
    cleanup_dag_id = f"{dag_id}_cleanup" if create_cleanup_dag else None
    kwargs = dict(dag_kwargs)
    kwargs["tags"] = _tags(kwargs.get("tags"))
    kwargs.setdefault("max_active_runs", 1)
    kwargs.setdefault("catchup", False)
    kwargs.setdefault("doc_md", _doc_md(dag_id, spec, cleanup_dag_id))
    kwargs.setdefault("description", f"Schema-to-schema migration {source_conn_id} -> {target_conn_id}")
    params = dict(dag_params.migration_params(strategy, copy_threshold_rows))
    params.update(kwargs.pop("params", None) or {})
    with DAG(
        dag_id, schedule=schedule, default_args=dict(default_args or {}), params=params, **kwargs
    ) as dag:
        add_migration_tasks(spec)
    if spec.caller_file:
        dag.fileloc = spec.caller_file
    if cleanup_dag_id:
        create_schema_to_schema_cleanup_dag(
            dag_id,
            target_conn_id=target_conn_id,
            fdw_server_name=fdw_server_name,
            default_args=default_args,
            auto_register=kwargs.get("auto_register", True),
            fileloc=spec.caller_file,
        )
    return dag


def create_schema_to_schema_task_group(
    group_id: str,
    *,
    mapping_path: str | os.PathLike | None,
    source_conn_id: str,
    target_conn_id: str,
    ddl_path: str | os.PathLike | None = None,
    target_schema: str = "public",
    source_schema: str = "public",
    foreign_schema: str = "old_schema",
    table_retries: int = 2,
    table_retry_delay: timedelta | None = None,
    copy_threshold_rows: int = DEFAULT_COPY_THRESHOLD_ROWS,
    strategy: str = "auto",
    split_threshold_rows: int = DEFAULT_SPLIT_THRESHOLD_ROWS,
    rows_per_part: int = DEFAULT_ROWS_PER_PART,
    fdw_conn_id: str | None = None,
    fdw_host: str | None = None,
    fdw_port: int | str | None = None,
    fdw_dbname: str | None = None,
    fdw_server_name: str = fdw.DEFAULT_SERVER,
    **task_group_kwargs: Any,
) -> TaskGroup:
    """The same migration as a TaskGroup, to embed in a larger DAG (call it inside ``with DAG(...)``).

    Options are those of :func:`create_schema_to_schema_dag`. The five run params (``tables``,
    ``strategy``, ``copy_threshold_rows``, ``dry_run``, ``skip_checksum``) are added to the enclosing
    DAG unless it defines them already (its own definitions win; two migrations in one DAG share them).
    No cleanup DAG is built: use :func:`create_schema_to_schema_cleanup_dag`. Give the enclosing DAG
    ``max_active_runs=1`` (the per-table lock already keeps two runs from writing one table).
    """
    from airflow.sdk.definitions._internal.contextmanager import DagContext

    dag = task_group_kwargs.get("dag") or DagContext.get_current()
    if dag is None:
        raise RuntimeError(
            "create_schema_to_schema_task_group must be called inside a `with DAG(...)` block (or given dag=)"
        )
    spec = _spec(
        mapping_path=mapping_path,
        source_conn_id=source_conn_id,
        target_conn_id=target_conn_id,
        ddl_path=ddl_path,
        target_schema=target_schema,
        source_schema=source_schema,
        foreign_schema=foreign_schema,
        table_retries=table_retries,
        table_retry_delay=table_retry_delay,
        copy_threshold_rows=copy_threshold_rows,
        strategy=strategy,
        split_threshold_rows=split_threshold_rows,
        rows_per_part=rows_per_part,
        fdw_conn_id=fdw_conn_id,
        fdw_host=fdw_host,
        fdw_port=fdw_port,
        fdw_dbname=fdw_dbname,
        fdw_server_name=fdw_server_name,
    )
    dag_params.add_missing_params(dag, dag_params.migration_params(strategy, copy_threshold_rows))
    task_group_kwargs.setdefault(
        "tooltip", f"Schema-to-schema migration {source_conn_id} -> {target_conn_id}"
    )
    with TaskGroup(group_id, **task_group_kwargs) as group:
        add_migration_tasks(spec)
    return group


def create_schema_to_schema_cleanup_dag(
    migration_dag_id: str,
    *,
    target_conn_id: str,
    fdw_server_name: str | None = fdw.DEFAULT_SERVER,
    default_args: dict[str, Any] | None = None,
    auto_register: bool = True,
    fileloc: str | None = None,
    **dag_kwargs: Any,
) -> DAG:
    """``<migration_dag_id>_cleanup``: removes the postgres_fdw link; never scheduled, trigger by hand.

    Cleanup is not part of a migration run: the link stays while the application is monitored on the
    new database. The DAG has no schedule, allows manual runs only, and CleanupOperator itself refuses
    (changing nothing) while foreign keys are still set aside or user objects depend on the link.
    """
    from airflow.utils.types import DagRunType

    dag_id = f"{migration_dag_id}_cleanup"
    dag_kwargs.setdefault("tags", [*TAGS, "cleanup"])
    dag_kwargs.setdefault(
        "doc_md",
        f"### Cleanup of migration `{migration_dag_id}`\n\nDrops the foreign tables, user mappings and "
        f"server `{fdw_server_name}` that setup created on `{target_conn_id}`. Trigger it by hand once "
        "the application runs on the new database and the monitoring period is over. It refuses, "
        "changing nothing, while a table of the migration is not repaired or user objects depend on "
        "the foreign tables.",
    )
    with DAG(
        dag_id,
        schedule=None,
        default_args=dict(default_args or {}),
        max_active_runs=1,
        catchup=False,
        allowed_run_types=[DagRunType.MANUAL],
        auto_register=auto_register,
        description=f"Remove the postgres_fdw link of migration {migration_dag_id} (manual)",
        **dag_kwargs,
    ) as dag:
        CleanupOperator(task_id="cleanup", target_conn_id=target_conn_id, fdw_server_name=fdw_server_name)
    if fileloc:
        dag.fileloc = fileloc
    _CLEANUP_DAGS[migration_dag_id] = dag
    return dag


def cleanup_dag_of(dag: DAG | str) -> DAG:
    """The cleanup DAG built with a migration DAG (by object or dag_id)."""
    dag_id = dag if isinstance(dag, str) else dag.dag_id
    try:
        return _CLEANUP_DAGS[dag_id]
    except KeyError:
        raise KeyError(f"no cleanup DAG was built for {dag_id!r} (create_cleanup_dag=False?)") from None
