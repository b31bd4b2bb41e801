"""One column-mapping YAML in, a migration DAG (or a TaskGroup inside a larger DAG) out.

Two DAGs from one call: ``create_schema_to_schema_dag`` returns the migration DAG and also builds the
manually triggered cleanup DAG ``<dag_id>_cleanup``. Both are built in ``with DAG(...)`` blocks, so
Airflow's auto-registration (``DAG(auto_register=True)``, the default) discovers both when a file in
the DAGs folder calls the factory, whether or not the result is assigned to a module-level name. The
cleanup DAG is also returned by :func:`cleanup_dag_of`, for a DAG file that disables auto-registration
(then assign both to module-level names).

The run's shape is in :mod:`dag.tasks`; the options in :mod:`dag.options`; the trigger form in
:mod:`dag.params`.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, TaskGroup

from airflow_provider_confiture.core import link, planning
from airflow_provider_confiture.dag import params
from airflow_provider_confiture.dag.docs import cleanup_doc_md, migration_doc_md
from airflow_provider_confiture.dag.options import MigrationOptions, OptionsError
from airflow_provider_confiture.dag.tasks import add_migration_tasks
from airflow_provider_confiture.operators import CleanupOperator

TAGS = ("confiture", "schema-to-schema")

_CLEANUP_DAGS: dict[str, DAG] = {}


def create_schema_to_schema_dag(
    dag_id: str,
    *,
    mapping_path: str | os.PathLike[str] | None,
    source_conn_id: str,
    target_conn_id: str,
    ddl_path: str | os.PathLike[str] | None = None,
    target_schema: str = "public",
    source_schema: str = "public",
    foreign_schema: str = planning.DEFAULT_FOREIGN_SCHEMA,
    table_retries: int = 2,
    table_retry_delay: timedelta | None = None,
    copy_threshold_rows: int = planning.DEFAULT_COPY_THRESHOLD_ROWS,
    strategy: str = "auto",
    split_threshold_rows: int = planning.DEFAULT_SPLIT_THRESHOLD_ROWS,
    rows_per_part: int = planning.DEFAULT_ROWS_PER_PART,
    max_tables_per_unit: int = planning.DEFAULT_MAX_TABLES_PER_UNIT,
    fdw_conn_id: str | None = None,
    fdw_host: str | None = None,
    fdw_port: int | str | None = None,
    fdw_dbname: str | None = None,
    fdw_server_name: str = link.DEFAULT_SERVER,
    fdw_server_options: dict[str, str | int] | None = None,
    overwrite_target_writes: bool = False,
    schedule: Any = None,
    default_args: dict[str, Any] | None = None,
    create_cleanup_dag: bool = True,
    **dag_kwargs: Any,
) -> DAG:
    """Build the migration DAG for one mapping (and, by default, its cleanup DAG ``<dag_id>_cleanup``).

    The migration options (``mapping_path`` ... ``fdw_server_options``) are documented on
    :class:`~airflow_provider_confiture.dag.options.MigrationOptions`.

    :param schedule: Airflow schedule; a scheduled run of a finished migration re-syncs every table.
    :param default_args: default task arguments (retries of setup/analyze/prepare/finalize/summary...).
    :param create_cleanup_dag: also build ``<dag_id>_cleanup`` (schedule None, trigger by hand).
    :param dag_kwargs: any other ``DAG`` argument (``start_date``, ``tags``, ``max_active_runs``...).
    """
    values = {name: value for name, value in locals().items() if name in MigrationOptions.names()}
    if table_retry_delay is None and default_args and default_args.get("retry_delay") is not None:
        values["table_retry_delay"] = default_args["retry_delay"]
    options = MigrationOptions.from_kwargs(values)
    cleanup_dag_id = f"{dag_id}_cleanup" if create_cleanup_dag else None
    kwargs = dict(dag_kwargs)
    kwargs["tags"] = _tags(kwargs.get("tags"))
    kwargs.setdefault("max_active_runs", 1)
    kwargs.setdefault("catchup", False)
    kwargs.setdefault("doc_md", migration_doc_md(dag_id, options, cleanup_dag_id))
    kwargs.setdefault("description", f"Schema-to-schema migration {source_conn_id} -> {target_conn_id}")
    run_params = dict(
        params.migration_params(
            options.strategy,
            options.copy_threshold_rows,
            overwrite_target_writes=options.overwrite_target_writes,
        )
    )
    run_params.update(kwargs.pop("params", None) or {})
    with DAG(
        dag_id, schedule=schedule, default_args=dict(default_args or {}), params=run_params, **kwargs
    ) as dag:
        add_migration_tasks(options)
    if options.caller_file:
        dag.fileloc = options.caller_file
    if cleanup_dag_id:
        _build_cleanup_dag(
            dag_id,
            options.target_conn_id,
            options.fdw_server_name,
            default_args=default_args,
            auto_register=kwargs.get("auto_register", True),
            fileloc=options.caller_file,
        )
    return dag


def create_schema_to_schema_task_group(group_id: str, **options_and_group_kwargs: Any) -> TaskGroup:
    """The same migration as a TaskGroup, to embed in a larger DAG (call it inside ``with DAG(...)``).

    Options are those of :func:`create_schema_to_schema_dag` (:class:`MigrationOptions`); any other
    keyword goes to ``TaskGroup``. The six run params (``tables``, ``strategy``,
    ``copy_threshold_rows``, ``dry_run``, ``skip_checksum``, ``overwrite_target_writes``) are added to the enclosing DAG unless it
    defines them already (its own definitions win; two migrations in one DAG share them). No cleanup
    DAG is built: use :func:`create_schema_to_schema_cleanup_dag`. Give the enclosing DAG
    ``max_active_runs=1`` (the per-table lock already keeps two runs from writing one table).
    """
    from airflow.sdk.definitions._internal.contextmanager import DagContext

    names = MigrationOptions.names()
    values = {k: v for k, v in options_and_group_kwargs.items() if k in names}
    group_kwargs = {k: v for k, v in options_and_group_kwargs.items() if k not in names}
    dag = group_kwargs.get("dag") or DagContext.get_current()
    if dag is None:
        raise OptionsError(
            "create_schema_to_schema_task_group must be called inside a `with DAG(...)` block (or given dag=)"
        )
    options = MigrationOptions.from_kwargs(values)
    params.add_missing_params(
        dag,
        params.migration_params(
            options.strategy,
            options.copy_threshold_rows,
            overwrite_target_writes=options.overwrite_target_writes,
        ),
    )
    group_kwargs.setdefault(
        "tooltip", f"Schema-to-schema migration {options.source_conn_id} -> {options.target_conn_id}"
    )
    with TaskGroup(group_id, **group_kwargs) as group:
        add_migration_tasks(options)
    return group


def create_schema_to_schema_cleanup_dag(
    migration_dag_id: str,
    *,
    target_conn_id: str,
    fdw_server_name: str | None = link.DEFAULT_SERVER,
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
    return _build_cleanup_dag(
        migration_dag_id,
        target_conn_id,
        fdw_server_name,
        default_args=default_args,
        auto_register=auto_register,
        fileloc=fileloc,
        **dag_kwargs,
    )


def _build_cleanup_dag(
    migration_dag_id: str,
    target_conn_id: str,
    fdw_server_name: str | None,
    *,
    default_args: dict[str, Any] | None,
    auto_register: bool,
    fileloc: str | None,
    **dag_kwargs: Any,
) -> DAG:
    from airflow.utils.types import DagRunType

    dag_id = f"{migration_dag_id}_cleanup"
    dag_kwargs.setdefault("tags", [*TAGS, "cleanup"])
    dag_kwargs.setdefault("doc_md", cleanup_doc_md(migration_dag_id, target_conn_id, fdw_server_name))
    with DAG(
        dag_id,
        schedule=None,
        default_args=dict(default_args or {}),
        max_active_runs=1,
        catchup=False,
        allowed_run_types=[DagRunType.MANUAL],  # type: ignore[list-item]  # the SDK's twin of the enum
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


def _tags(extra: Any) -> list[str]:
    tags = list(TAGS)
    for tag in extra or ():
        if tag not in tags:
            tags.append(tag)
    return tags
