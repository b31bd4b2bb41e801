"""Apache Airflow provider for zero-downtime schema-to-schema PostgreSQL migrations.

The DAG factory is imported lazily so that ``import airflow_provider_confiture.core`` (pure engine,
no Airflow) stays light.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "create_schema_to_schema_dag", "create_schema_to_schema_task_group"]


def __getattr__(name: str) -> Any:
    if name in ("create_schema_to_schema_dag", "create_schema_to_schema_task_group"):
        from airflow_provider_confiture import dag_factory

        return getattr(dag_factory, name)
    raise AttributeError(name)
