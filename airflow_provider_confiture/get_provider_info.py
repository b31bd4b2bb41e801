"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    from airflow_provider_confiture import __version__

    return {
        "package-name": "airflow-provider-confiture",
        "name": "Confiture schema-to-schema",
        "description": "Zero-downtime PostgreSQL schema-to-schema migrations: postgres_fdw link, "
        "streamed COPY or FDW table loads, verification and cleanup.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Confiture schema-to-schema",
                "external-doc-url": "https://www.postgresql.org/docs/current/postgres-fdw.html",
                "tags": ["software"],
            }
        ],
        "operators": [
            {
                "integration-name": "Confiture schema-to-schema",
                "python-modules": [
                    "airflow_provider_confiture.operators.fdw_setup",
                    "airflow_provider_confiture.operators.analyze",
                    "airflow_provider_confiture.operators.table_migrate",
                    "airflow_provider_confiture.operators.verify",
                    "airflow_provider_confiture.operators.cleanup",
                ],
            }
        ],
        "hooks": [],
        "connection-types": [],
    }
