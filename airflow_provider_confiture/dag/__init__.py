"""The Airflow-building layer: DAG and TaskGroup builders over one converter (:mod:`dag.tasks`),
the options they share (:mod:`dag.options`), the trigger form (:mod:`dag.params`) and the rendered
DAG docs (:mod:`dag.docs`)."""

from airflow_provider_confiture.dag.builders import (
    cleanup_dag_of,
    create_schema_to_schema_cleanup_dag,
    create_schema_to_schema_dag,
    create_schema_to_schema_task_group,
)
from airflow_provider_confiture.dag.options import MigrationOptions, OptionsError
from airflow_provider_confiture.dag.tasks import MigrationTasks, add_migration_tasks

__all__ = [
    "MigrationOptions",
    "MigrationTasks",
    "OptionsError",
    "add_migration_tasks",
    "cleanup_dag_of",
    "create_schema_to_schema_cleanup_dag",
    "create_schema_to_schema_dag",
    "create_schema_to_schema_task_group",
]
