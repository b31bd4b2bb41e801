"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point.

Derived, not written out: the operator modules are the modules of the ``operators`` package (found
on disk, without importing them: Airflow calls this while it initialises, so it must not import
Airflow), the version is the package's. ``tests/test_provider_info.py`` checks that every exported
operator lives in a listed module and every listed module exports one.
"""

from __future__ import annotations

from typing import Any

NAME = "Confiture schema-to-schema"
DESCRIPTION = (
    "Zero-downtime PostgreSQL schema-to-schema migrations: postgres_fdw link, streamed COPY or FDW "
    "table loads, verification and cleanup."
)


#: Modules of the operators package that hold no operator of their own.
_NOT_OPERATOR_MODULES = frozenset({"base"})


def operator_modules() -> list[str]:
    """Every module of ``airflow_provider_confiture.operators`` that defines operators, sorted."""
    import importlib.util
    import pkgutil

    spec = importlib.util.find_spec("airflow_provider_confiture.operators")
    assert spec is not None and spec.submodule_search_locations is not None
    return sorted(
        f"airflow_provider_confiture.operators.{m.name}"
        for m in pkgutil.iter_modules(spec.submodule_search_locations)
        if not m.ispkg and not m.name.startswith("_") and m.name not in _NOT_OPERATOR_MODULES
    )


def get_provider_info() -> dict[str, Any]:
    from airflow_provider_confiture import __version__

    return {
        "package-name": "airflow-provider-confiture",
        "name": NAME,
        "description": DESCRIPTION,
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": NAME,
                "external-doc-url": "https://www.postgresql.org/docs/current/postgres-fdw.html",
                "tags": ["software"],
            }
        ],
        "operators": [{"integration-name": NAME, "python-modules": operator_modules()}],
        "hooks": [],
        "connection-types": [],
    }
