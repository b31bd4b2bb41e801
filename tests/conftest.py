"""Session-wide test infrastructure: an isolated Airflow environment and two throwaway PostgreSQL clusters.

The Airflow environment is configured at import time, before anything imports ``airflow``:

* ``AIRFLOW_HOME``: a per-run directory ``.work/run-<pid>-<rand>/airflow`` (removed at the end of the
  session unless ``CONFITURE_KEEP_WORK=1``);
* the metadata DB is SQLite in that directory, copied from a template migrated once per Airflow
  version (``.work/airflow-db-template/``), so ``dag.test()`` works without a per-run ``airflow db migrate``;
* ``AIRFLOW__CORE__DAGS_FOLDER`` is the repository's ``dags/``; examples are not loaded.

Fixtures: ``pg_source``/``pg_target`` (session clusters), ``source_db``/``target_db`` (a fresh database per
test), ``airflow_conn`` (register an Airflow connection through ``AIRFLOW_CONN_<ID>``), ``run_dag``
(``dag.test()`` for a DAG built in memory).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / ".work"
_SETUP_TIMINGS: dict[str, float] = {}


# --------------------------------------------------------------------------- Airflow environment
def _airflow_versions_key() -> str:
    """Airflow + provider versions: a migrated DB template is reusable only for the same set."""
    from importlib.metadata import distributions

    names = sorted(
        f"{d.metadata['Name'].lower()}={d.version}"
        for d in distributions()
        if d.metadata["Name"] and d.metadata["Name"].lower().startswith("apache-airflow")
    )
    core = next((n.split("=", 1)[1] for n in names if n.startswith("apache-airflow-core=")), "unknown")
    digest = uuid.uuid5(uuid.NAMESPACE_URL, ";".join(names)).hex[:12]
    return f"{core}-{digest}"


def _airflow_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "airflow"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "airflow"]


def _migrated_template(env: dict[str, str]) -> Path:
    """Path of a migrated SQLite metadata DB for this Airflow install, migrating it once if needed."""
    tdir = WORK / "airflow-db-template"
    tdir.mkdir(parents=True, exist_ok=True)
    template = tdir / f"airflow-{_airflow_versions_key()}.db"
    if template.exists():
        return template
    with open(tdir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test session may be migrating the same template
        if template.exists():
            return template
        tmp_home = tdir / f"home-{os.getpid()}-{secrets.token_hex(4)}"
        tmp_home.mkdir()
        try:
            tmp_db = tmp_home / "airflow.db"
            menv = {
                **env,
                "AIRFLOW_HOME": str(tmp_home),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_db}",
            }
            res = subprocess.run(
                [*_airflow_cmd(), "db", "migrate"], env=menv, capture_output=True, text=True, timeout=600
            )
            if res.returncode != 0:
                raise RuntimeError(f"airflow db migrate failed:\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}")
            os.replace(tmp_db, template)  # atomic: readers never see a half-migrated file
        finally:
            shutil.rmtree(tmp_home, ignore_errors=True)
    return template


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_stale_runs() -> None:
    """Stop servers and remove directories left by test sessions that died (e.g. SIGKILL)."""
    if not WORK.exists():
        return
    for run in WORK.glob("run-*"):
        m = re.fullmatch(r"run-(\d+)-\w+", run.name)
        if not m or _pid_alive(int(m.group(1))):
            continue
        for pid_file in run.glob("pg/*/data/postmaster.pid"):
            try:
                from airflow_provider_confiture.testing import PostgresCluster

                c = PostgresCluster(pid_file.parent.parent.name, pid_file.parent.parent.parent)
                c.stop()
            except Exception:  # noqa: BLE001 - best effort: never fail a session over leftovers
                pass
        shutil.rmtree(run, ignore_errors=True)


def _setup_airflow_env() -> Path:
    t0 = time.monotonic()
    WORK.mkdir(exist_ok=True)
    _clean_stale_runs()
    run_dir = WORK / f"run-{os.getpid()}-{secrets.token_hex(3)}"
    home = run_dir / "airflow"
    home.mkdir(parents=True)
    (home / "logs").mkdir()
    db = home / "airflow.db"
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{db}",
        "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        # Leave unit_test_mode off: it swaps in Airflow's unit_tests.cfg defaults (its own DB path etc.).
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    }
    os.environ.update(env)
    os.environ.pop("AIRFLOW_CONFIG", None)
    template = _migrated_template(dict(os.environ))
    shutil.copyfile(template, db)
    _SETUP_TIMINGS["airflow_env_s"] = time.monotonic() - t0
    return run_dir


RUN_DIR = _setup_airflow_env()
PG_BASE = RUN_DIR / "pg"


def pytest_report_header(config: pytest.Config) -> str:
    return (
        f"confiture: AIRFLOW_HOME={os.environ['AIRFLOW_HOME']} (setup {_SETUP_TIMINGS['airflow_env_s']:.2f}s)"
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    from airflow_provider_confiture.testing import stop_all

    stop_all()  # clusters a fixture forgot to stop: atexit would run too late, after the rmtree below
    if os.environ.get("CONFITURE_KEEP_WORK") != "1":
        shutil.rmtree(RUN_DIR, ignore_errors=True)


# --------------------------------------------------------------------------- PostgreSQL clusters
def _start_cluster(name: str):
    from airflow_provider_confiture.testing import PostgresCluster

    t0 = time.monotonic()
    cluster = PostgresCluster(name, PG_BASE).start()
    _SETUP_TIMINGS[f"pg_{name}_s"] = time.monotonic() - t0
    return cluster


@pytest.fixture(scope="session")
def pg_source():
    """The session's source cluster (a started ``PostgresCluster``)."""
    cluster = _start_cluster("source")
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="session")
def pg_target():
    """The session's target cluster (a started ``PostgresCluster``)."""
    cluster = _start_cluster("target")
    yield cluster
    cluster.destroy()


def _db_name(request: pytest.FixtureRequest, prefix: str) -> str:
    test = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")
    return f"{prefix}_{test[:40]}_{secrets.token_hex(4)}"


@pytest.fixture
def source_db(pg_source, request):
    """A fresh database on the source cluster (``ClusterDatabase``), dropped after the test."""
    from airflow_provider_confiture.testing import ClusterDatabase

    db = ClusterDatabase(pg_source, pg_source.create_database(_db_name(request, "src")))
    yield db
    pg_source.drop_database(db.dbname)


@pytest.fixture
def target_db(pg_target, request):
    """A fresh database on the target cluster (``ClusterDatabase``), dropped after the test."""
    from airflow_provider_confiture.testing import ClusterDatabase

    db = ClusterDatabase(pg_target, pg_target.create_database(_db_name(request, "tgt")))
    yield db
    pg_target.drop_database(db.dbname)


@pytest.fixture
def airflow_conn(monkeypatch) -> Iterator[Callable[..., str]]:
    """``airflow_conn(conn_id, cluster, dbname=None, user=None, password=None, extra=None) -> conn_id``.

    Registers a ``postgres`` Airflow connection through ``AIRFLOW_CONN_<CONN_ID_UPPER>`` (JSON form) for
    the duration of the test. ``cluster`` is a ``PostgresCluster`` (then ``dbname`` is required) or a
    ``ClusterDatabase`` (``source_db``/``target_db``). ``user=None`` means the cluster superuser with its
    password.
    """

    def register(conn_id, cluster, dbname=None, user=None, password=None, extra=None) -> str:
        if hasattr(cluster, "cluster") and hasattr(cluster, "dbname"):  # a ClusterDatabase
            dbname = dbname or cluster.dbname
            cluster = cluster.cluster
        if dbname is None:
            raise TypeError("airflow_conn: dbname is required when passing a PostgresCluster")
        if user is None:
            user = cluster.superuser
            if password is None:
                password = cluster.password
        conn = {
            "conn_type": "postgres",
            "host": cluster.host,
            "port": cluster.port,
            "login": user,
            "password": password,
            "schema": dbname,
        }
        if extra is not None:
            conn["extra"] = extra
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        return conn_id

    yield register


def register_dag_in_db(dag) -> None:
    """Serialize an in-memory DAG into the metadata DB (bundle ``dags-folder``).

    Airflow 3.3's ``dag.test()`` refuses a DAG that is not serialized ("Cannot create DagRun ... because
    the dag is not serialized"): it only parses the files of the configured DAG bundle (the repo's
    ``dags/``), so a DAG built inside a test must be written to the DB first.
    """
    from types import SimpleNamespace

    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = SimpleNamespace(
        dags={dag.dag_id: dag}, import_errors={}, bundle_path=None, file_last_changed={}, dag_warnings=set()
    )
    sync_bag_to_db(bag, "dags-folder", None)


@pytest.fixture
def run_dag() -> Callable[..., object]:
    """``run_dag(dag, **dag_test_kwargs) -> DagRun``: register the DAG in the metadata DB, then ``dag.test()``."""

    def run(dag, **kwargs):
        register_dag_in_db(dag)
        return dag.test(**kwargs)

    return run
