"""Apache Airflow provider for zero-downtime schema-to-schema PostgreSQL migrations.

The DAG-building names are imported lazily, so that ``import airflow_provider_confiture.core`` (pure
engine, no Airflow) stays light and Airflow's provider discovery never imports the DAG layer.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

#: Public name -> module that defines it.
_LAZY: dict[str, str] = {
    "create_schema_to_schema_dag": "airflow_provider_confiture.dag.builders",
    "create_schema_to_schema_task_group": "airflow_provider_confiture.dag.builders",
    "create_schema_to_schema_cleanup_dag": "airflow_provider_confiture.dag.builders",
    "cleanup_dag_of": "airflow_provider_confiture.dag.builders",
    "MigrationOptions": "airflow_provider_confiture.dag.options",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
