"""docker-compose.yml, validated as far as a machine without a Docker engine (nor the compose plugin)
allows: structure, mounts, connections, init scripts, and the init scripts run for real on a cluster.

``docker compose config`` is not available here (``docker compose version`` fails: no compose plugin),
so the file's semantics are checked directly: every host path it mounts exists, the connection URIs
point at the compose services with their credentials, the DAGs folder mount holds the example DAG, and
the old database's init scripts (old schema + generated seed) run under psql as the postgres image runs
them (``ON_ERROR_STOP``, in file name order), giving the seeded old database.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

import pytest
import yaml
from psycopg import sql

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "docker-compose.yml"
SERVICES = {"postgres-old", "postgres-new", "airflow-db", "airflow"}
TOP_LEVEL_KEYS = {"name", "services", "volumes", "networks", "configs", "secrets", "include", "version"}
SERVICE_KEYS = {
    "image", "command", "entrypoint", "environment", "env_file", "volumes", "ports", "depends_on",
    "healthcheck", "restart", "user", "networks", "working_dir", "build", "container_name", "profiles",
}  # fmt: skip
INITDB = PurePosixPath("/docker-entrypoint-initdb.d")


def load_seeder():
    """scripts/seed_demo.py (a script, not a package module)."""
    if "seed_demo" in sys.modules:
        return sys.modules["seed_demo"]
    spec = importlib.util.spec_from_file_location("seed_demo", REPO / "scripts" / "seed_demo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["seed_demo"] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def bind_mounts(service: dict) -> list[tuple[Path, PurePosixPath, str]]:
    """(host path, container path, mode) of every bind mount in short syntax (``./x:/y[:ro]``)."""
    out = []
    for spec in service.get("volumes", []):
        assert isinstance(spec, str), f"use the short volume syntax: {spec!r}"
        parts = spec.split(":")
        source, target = parts[0], parts[1]
        if source.startswith((".", "/")):
            out.append(
                (
                    (COMPOSE_FILE.parent / source).resolve(),
                    PurePosixPath(target),
                    parts[2] if len(parts) > 2 else "rw",
                )
            )
    return out


def test_file_parses_into_the_expected_services(compose):
    extensions = {k for k in compose if k.startswith("x-")}
    assert set(compose) - extensions <= TOP_LEVEL_KEYS
    assert set(compose["services"]) == SERVICES
    for name, service in compose["services"].items():
        assert set(service) <= SERVICE_KEYS, (name, set(service) - SERVICE_KEYS)
        assert "image" in service, name
    assert "networks" not in compose, "all services share the default network (postgres_fdw needs it)"


def test_airflow_image_matches_the_airflow_the_project_is_tested_with(compose):
    from importlib.metadata import version

    assert compose["services"]["airflow"]["image"] == f"apache/airflow:{version('apache-airflow')}"
    for name in ("postgres-old", "postgres-new", "airflow-db"):
        assert re.fullmatch(r"postgres:\d+", compose["services"][name]["image"]), name


def test_every_bind_mounted_host_path_exists_and_named_volumes_are_declared(compose):
    declared = set(compose.get("volumes") or {})
    mounts = 0
    for name, service in compose["services"].items():
        for host, _target, mode in bind_mounts(service):
            assert host.exists(), f"{name}: {host} does not exist"
            assert host == REPO or REPO in host.parents, f"{name}: {host} is outside the repository"
            assert mode == "ro", f"{name}: mount {host} read-only (the repository is not the container's)"
            mounts += 1
        for spec in service.get("volumes", []):
            source = spec.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name}: named volume {source!r} is not declared"
    assert mounts == 4


def test_no_unescaped_variable_interpolation():
    # compose interpolates $VAR / ${VAR} from the host: the file must not depend on any ($$ escapes)
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    assert re.findall(r"(?<!\$)\$(?!\$)", text.replace("$$", "")) == []


def test_dependencies_wait_for_healthy_databases(compose):
    services = compose["services"]
    depends = services["airflow"]["depends_on"]
    assert set(depends) == {"postgres-old", "postgres-new", "airflow-db"}
    for dep, cond in depends.items():
        assert cond == {"condition": "service_healthy"}
        test = services[dep]["healthcheck"]["test"]
        assert test[0] == "CMD-SHELL" and "pg_isready -h 127.0.0.1" in test[1], dep
    host_ports = [p.split(":")[0] for s in services.values() for p in s.get("ports", [])]
    assert len(host_ports) == len(set(host_ports)) and "8080" in host_ports


def _dag_call_kwargs() -> dict[str, object]:
    """Keyword arguments of the factory call in the example DAG file (read without importing it)."""
    tree = ast.parse((REPO / "dags" / "example_schema_to_schema.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "create_schema_to_schema_dag":
            return {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg} | {
                "dag_id": ast.literal_eval(node.args[0])
            }
    raise AssertionError("the example DAG file does not call create_schema_to_schema_dag")


def test_connections_point_at_the_compose_services_with_their_credentials(compose):
    from airflow.models.connection import Connection

    services = compose["services"]
    env = services["airflow"]["environment"]
    kwargs = _dag_call_kwargs()
    expected = {kwargs["source_conn_id"]: "postgres-old", kwargs["target_conn_id"]: "postgres-new"}
    assert expected == {"confiture_source": "postgres-old", "confiture_target": "postgres-new"}
    for conn_id, service_name in expected.items():
        uri = env[f"AIRFLOW_CONN_{conn_id.upper()}"]
        conn = Connection(conn_id=conn_id, uri=uri)
        db_env = services[service_name]["environment"]
        assert conn.conn_type == "postgres", uri
        # the host is the service name: the target *server* reaches the source by it (postgres_fdw)
        assert (conn.host, conn.port) == (service_name, 5432)
        assert (conn.login, conn.password) == (db_env["POSTGRES_USER"], db_env["POSTGRES_PASSWORD"])
    source = Connection(conn_id="s", uri=env["AIRFLOW_CONN_CONFITURE_SOURCE"])
    assert source.schema == services["postgres-old"]["environment"]["POSTGRES_DB"] == "shop"
    # the target database is created by the DAG's setup task, so it must not be the server's own DB
    target = Connection(conn_id="t", uri=env["AIRFLOW_CONN_CONFITURE_TARGET"])
    assert target.schema == "shop_v2" != services["postgres-new"]["environment"]["POSTGRES_DB"]
    # Airflow's own metadata DB is the airflow-db service
    meta = urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert meta.hostname == "airflow-db" and unquote(meta.path.lstrip("/")) == "airflow"


def test_dags_folder_mount_holds_the_example_dag_and_the_provider_is_installed_from_the_repo(compose):
    airflow = compose["services"]["airflow"]
    dags_folder = PurePosixPath(airflow["environment"]["AIRFLOW__CORE__DAGS_FOLDER"])
    mounts = {target: host for host, target, _mode in bind_mounts(airflow)}
    host_dags = mounts[dags_folder]
    assert host_dags == REPO / "dags"
    assert (host_dags / "example_schema_to_schema.py").is_file()
    assert _dag_call_kwargs()["dag_id"] == "example_schema_to_schema"
    # the command installs the provider from a copy of the mounted repository, then runs Airflow
    assert mounts[PurePosixPath("/opt/confiture")] == REPO
    script = airflow["command"][-1]
    copied = re.search(r"cp -r (.+?) /tmp/confiture/", script)
    assert copied, script
    for path in copied.group(1).split():
        assert (REPO / PurePosixPath(path).relative_to("/opt/confiture")).exists(), path
    assert "pip install" in script and script.rstrip().endswith("exec airflow standalone")
    assert airflow["environment"]["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"


def _init_scripts(compose) -> list[Path]:
    """Host files of postgres-old's init scripts, in the order the image runs them (by file name)."""
    mounts = [(t, h) for h, t, _ in bind_mounts(compose["services"]["postgres-old"]) if t.parent == INITDB]
    return [h for _t, h in sorted(mounts, key=lambda m: m[0].name)]


def test_old_database_init_scripts_are_the_example_schema_and_the_current_seed(compose):
    scripts = _init_scripts(compose)
    seeder = load_seeder()
    assert scripts == [seeder.OLD_SCHEMA_SQL, REPO / "docker" / "postgres-old" / "02_seed.sql"]
    # the seed file is generated: it must match the seeder (regenerate with seed_demo.py --sql)
    assert scripts[1].read_text(encoding="utf-8") == seeder.render_seed_sql(seeder.DEFAULT_ROWS)
    assert compose["services"]["postgres-new"]["volumes"] == ["postgres-new-data:/var/lib/postgresql/data"]


def test_old_database_init_scripts_run_under_psql_like_the_postgres_image(compose, source_db):
    """The image runs each *.sql with ``psql -v ON_ERROR_STOP=1`` in POSTGRES_DB: do exactly that."""
    seeder = load_seeder()
    for script in _init_scripts(compose):
        res = subprocess.run(
            [str(source_db.cluster.psql_path), "-v", "ON_ERROR_STOP=1", "--no-password", "--no-psqlrc", "-q",
             "-d", source_db.uri(), "-f", str(script)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert res.returncode == 0, f"{script.name}: {res.stderr[-2000:]}"
    expected = seeder.Sizes.for_rows(seeder.DEFAULT_ROWS).as_dict()
    for table, rows in expected.items():
        count = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        assert source_db.execute(count) == [(rows,)], table
    # sequences moved past the explicit ids, as the application's next insert needs
    assert source_db.execute("SELECT nextval('order_line_id_seq')") == [(expected["order_line"] + 1,)]
