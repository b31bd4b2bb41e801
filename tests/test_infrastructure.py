"""The test infrastructure itself: throwaway clusters, per-test databases, Airflow connections, dag.test()."""

from __future__ import annotations

import datetime
import os

import psycopg
import pytest
from psycopg import sql

from airflow_provider_confiture.testing import PostgresCluster, conninfo_quote, free_port, pg_bin_dir

#: These tests start PostgreSQL servers themselves.
pytestmark = pytest.mark.db_subprocess


@pytest.mark.parametrize("which", ["pg_source", "pg_target"])
def test_cluster_password_auth_over_tcp(which, request):
    cluster: PostgresCluster = request.getfixturevalue(which)
    with cluster.connect() as conn:
        row = conn.execute(
            "SELECT current_user, inet_server_addr()::text, current_setting('port')::int, "
            "current_setting('fsync'), current_setting('server_encoding')"
        ).fetchone()
    assert row == (cluster.superuser, "127.0.0.1/32", cluster.port, "off", "UTF8")
    with psycopg.connect(cluster.uri("postgres")) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(cluster.conninfo(user=cluster.superuser, password=cluster.password + "x")).close()
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(cluster.conninfo(user=cluster.superuser, password="")).close()


def test_clusters_are_distinct(pg_source, pg_target):
    assert pg_source.port != pg_target.port
    assert pg_source.password != pg_target.password
    assert pg_source.dir != pg_target.dir
    assert pg_source.execute("SELECT current_setting('data_directory')") != pg_target.execute(
        "SELECT current_setting('data_directory')"
    )
    assert str(pg_source.socket_dir).startswith(str(pg_source.dir))


def test_awkward_credentials_are_quoted(pg_source, source_db):
    user, password = "o'brien user", "p@ss w'rd\\:/?#%"
    pg_source.execute(
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(user), sql.Literal(password))
    )
    try:
        pg_source.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(source_db.dbname), sql.Identifier(user)
            )
        )
        with psycopg.connect(source_db.conninfo(user=user, password=password)) as conn:
            assert conn.execute("SELECT current_user").fetchone() == (user,)
        with psycopg.connect(source_db.uri(user=user, password=password)) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == (source_db.dbname,)
        with source_db.connect(user=user, password=password) as conn:
            assert conn.autocommit
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            source_db.connect(user=user, password=password[:-1]).close()
    finally:
        pg_source.drop_database(source_db.dbname)  # drops the grant with it
        pg_source.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(user)))
    assert conninfo_quote("") == "''"
    assert conninfo_quote("plain") == "plain"


def test_postgres_fdw_reads_source_through_password_mapping(source_db, target_db, pg_source):
    source_db.execute("CREATE TABLE people (id int PRIMARY KEY, name text NOT NULL)")
    source_db.execute("INSERT INTO people VALUES (1, 'Ada'), (2, 'Grace')")

    # A non-superuser on the target: postgres_fdw then insists that the remote server asks for a password.
    target_db.execute("CREATE EXTENSION postgres_fdw")
    target_db.execute(
        sql.SQL(
            "CREATE SERVER src FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host {}, port {}, dbname {})"
        ).format(sql.Literal(pg_source.host), sql.Literal(str(pg_source.port)), sql.Literal(source_db.dbname))
    )
    role = f"fdw_user_{os.getpid()}"
    target_db.cluster.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'pw'").format(sql.Identifier(role)))
    try:
        for stmt in (
            "GRANT USAGE ON FOREIGN SERVER src TO {r}",
            "CREATE SCHEMA old_schema AUTHORIZATION {r}",
        ):
            target_db.execute(sql.SQL(stmt).format(r=sql.Identifier(role)))
        target_db.execute(
            sql.SQL("CREATE USER MAPPING FOR {} SERVER src OPTIONS (user {}, password {})").format(
                sql.Identifier(role), sql.Literal(pg_source.superuser), sql.Literal(pg_source.password)
            )
        )
        with target_db.connect(user=role, password="pw") as conn:
            conn.execute("IMPORT FOREIGN SCHEMA public FROM SERVER src INTO old_schema")
            rows = conn.execute("SELECT id, name FROM old_schema.people ORDER BY id").fetchall()
            assert rows == [(1, "Ada"), (2, "Grace")]
            assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (
                False,
            )
    finally:
        target_db.cluster.drop_database(target_db.dbname)
        target_db.cluster.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.mark.parametrize("round_", [1, 2])
def test_source_db_is_fresh_per_test(source_db, target_db, round_):
    # Both rounds create the same table: this only works if each test gets an empty database.
    assert source_db.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]
    source_db.execute("CREATE TABLE marker (round int)")
    source_db.execute("INSERT INTO marker VALUES (%s)", (round_,))
    assert source_db.execute("SELECT round FROM marker") == [(round_,)]
    assert source_db.dbname != target_db.dbname
    assert source_db.execute("SELECT current_database()") == [(source_db.dbname,)]


def test_drop_database_terminates_open_sessions(pg_source):
    name = pg_source.create_database("confiture_drop_me")
    conn = pg_source.connect(name)
    try:
        pg_source.drop_database(name)
        assert pg_source.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)) == []
    finally:
        conn.close()


def test_standalone_cluster_lifecycle(pg_source):
    # Not pytest's tmp_path: it is private to root (0700), and the server runs as the postgres OS user.
    base = pg_source.base_dir
    cluster = PostgresCluster("solo", base, settings={"work_mem": "8MB"})
    try:
        with cluster:
            assert cluster.running
            assert cluster.execute("SHOW work_mem") == [("8MB",)]
            assert cluster.execute("SHOW listen_addresses") == [("127.0.0.1",)]
            port = cluster.port
        assert not cluster.running
        cluster.stop()  # idempotent
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(cluster.conninfo(), connect_timeout=2).close()
        cluster.start()  # restart reuses the data directory
        assert cluster.execute("SELECT 1") == [(1,)]
        assert isinstance(port, int)
    finally:
        cluster.destroy()
    assert not cluster.dir.exists()


def test_start_failure_reports_server_log(pg_source):
    base = pg_source.base_dir
    cluster = PostgresCluster("bad", base, settings={"shared_buffers": "not-a-size"})
    try:
        with pytest.raises(RuntimeError, match="(?s)failed to start.*server log tail.*shared_buffers"):
            cluster.start()
        assert not cluster.running
    finally:
        cluster.destroy()


def test_unreachable_base_dir_is_a_clear_error(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("only root hands the cluster to the postgres OS user")
    os.chmod(tmp_path, 0o700)
    cluster = PostgresCluster("hidden", tmp_path)
    with pytest.raises(RuntimeError, match="cannot write"):
        cluster.start()


def test_binaries_and_free_port():
    assert (pg_bin_dir() / "initdb").exists()
    port = free_port()
    assert 1024 < port < 65536


def test_airflow_env_is_isolated():
    home = os.environ["AIRFLOW_HOME"]
    assert "/.work/run-" in home
    from airflow.configuration import conf

    assert conf.get("database", "sql_alchemy_conn") == f"sqlite:///{home}/airflow.db"
    assert conf.getboolean("core", "load_examples") is False
    assert conf.get("core", "dags_folder").endswith("/dags")


def test_airflow_connection_from_env(airflow_conn, source_db):
    from airflow.providers.postgres.hooks.postgres import PostgresHook
    from airflow.sdk import BaseHook

    conn_id = airflow_conn("confiture_src", source_db.cluster, source_db.dbname, extra={"connect_timeout": 5})
    assert conn_id == "confiture_src"
    conn = BaseHook.get_connection(conn_id)
    assert (conn.conn_type, conn.host, conn.port, conn.schema, conn.login) == (
        "postgres",
        "127.0.0.1",
        source_db.port,
        source_db.dbname,
        source_db.cluster.superuser,
    )
    assert conn.password == source_db.cluster.password
    assert conn.extra_dejson == {"connect_timeout": 5}

    hook = PostgresHook(postgres_conn_id=conn_id)
    with hook.get_conn() as raw:
        cur = raw.cursor()
        cur.execute("SELECT current_database(), current_user")
        assert cur.fetchone() == (source_db.dbname, source_db.cluster.superuser)


def test_airflow_conn_wrong_password_fails(airflow_conn, target_db):
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    conn_id = airflow_conn("confiture_bad", target_db, password="wrong")
    with pytest.raises(Exception, match="password authentication failed"):
        PostgresHook(postgres_conn_id=conn_id).get_conn()


def test_dag_test_runs_in_memory_dag(run_dag, airflow_conn, source_db):
    from airflow.sdk import DAG, task

    source_db.execute("CREATE TABLE t (v int)")
    source_db.execute("INSERT INTO t VALUES (41)")
    conn_id = airflow_conn("confiture_dag_src", source_db)

    with DAG("confiture_infra_probe", schedule=None, start_date=datetime.datetime(2024, 1, 1)) as dag:

        @task
        def read():
            from airflow.providers.postgres.hooks.postgres import PostgresHook

            return PostgresHook(postgres_conn_id=conn_id).get_first("SELECT v FROM t")[0]

        @task
        def bump(v):
            return v + 1

        bump(read())

    dr = run_dag(dag)
    assert dr.state == "success"
    ti = {t.task_id: t for t in dr.get_task_instances()}
    assert ti["bump"].state == "success"
