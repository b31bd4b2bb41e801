"""Test-suite wiring: the fixtures live in plugin modules (``tests/fixtures/``), markers are set here.

* :mod:`tests.fixtures.airflow_env` configures an isolated Airflow environment at import time,
  before any test module imports ``airflow`` (so it is the first plugin);
* :mod:`tests.fixtures.clusters`: ``pg_source``/``pg_target`` (session clusters), ``source_db``/
  ``target_db`` (a fresh database per test);
* :mod:`tests.fixtures.airflow_dags`: ``airflow_conn`` (an Airflow connection through
  ``AIRFLOW_CONN_<ID>``), ``run_dag`` (``dag.test()`` for a DAG built in memory);
* :mod:`tests.fixtures.engine`: ``connect`` (engine connections of either driver);
* :mod:`tests.fixtures.tls`: ``pg_source_tls``/``source_tls_db`` (a source cluster accepting TCP over
  TLS only, with the suite's throwaway CA ``ca``).

Markers (registered in pyproject.toml) are added from what a test uses: ``db`` for every test that
needs the PostgreSQL clusters (so ``pytest -m "not db"`` runs the pure tests in seconds),
``airflow`` for tests that run DAGs or use Airflow connections, ``reliability`` for the fault and
bad-input suite.
"""

from __future__ import annotations

import pytest

pytest_plugins = (
    "tests.fixtures.airflow_env",
    "tests.fixtures.clusters",
    "tests.fixtures.airflow_dags",
    "tests.fixtures.engine",
    "tests.fixtures.tls",
)

_DB_FIXTURES = frozenset(
    {"pg_source", "pg_target", "source_db", "target_db", "pg_source_tls", "source_tls_db"}
)
_AIRFLOW_FIXTURES = frozenset({"run_dag", "airflow_conn"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & _DB_FIXTURES or item.get_closest_marker("db_subprocess"):
            item.add_marker(pytest.mark.db)
        if used & _AIRFLOW_FIXTURES:
            item.add_marker(pytest.mark.airflow)
        if "/reliability/" in item.nodeid or item.nodeid.startswith("tests/reliability/"):
            item.add_marker(pytest.mark.reliability)
