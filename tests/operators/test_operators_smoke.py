"""The five operators chained in a real Airflow DAG (dag.test) against the two real clusters."""

from __future__ import annotations

import pendulum
import pytest

MAPPING = """
users:
  source_table: old_users
  columns:
    full_name: display_name
    price:
      transform: "price_cents::numeric / 100"
"""

DDL = """
CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, display_name text NOT NULL,
                    email text, price numeric(12,2));
CREATE TABLE posts (id serial PRIMARY KEY, user_id bigint REFERENCES users(id), body text);
"""


@pytest.fixture
def migration(source_db, target_db, airflow_conn, tmp_path):
    source_db.execute(
        "CREATE TABLE old_users (id bigserial PRIMARY KEY, full_name text, email text, price_cents int);"
        "INSERT INTO old_users (full_name, email, price_cents) SELECT 'n' || g, 'e' || g, g FROM generate_series(1, 3000) g;"
        "CREATE TABLE posts (id serial PRIMARY KEY, user_id bigint REFERENCES old_users(id), body text);"
        "INSERT INTO posts (user_id, body) SELECT (g % 3000) + 1, 'b' || g FROM generate_series(1, 5000) g;"
    )
    (tmp_path / "ddl").mkdir()
    (tmp_path / "ddl" / "01_tables.sql").write_text(DDL)
    (tmp_path / "mapping.yaml").write_text(MAPPING)
    return {
        "source_conn_id": airflow_conn("smoke_source", source_db),
        "target_conn_id": airflow_conn("smoke_target", target_db),
        "mapping_path": str(tmp_path / "mapping.yaml"),
        "ddl_path": str(tmp_path / "ddl"),
        "target_db": target_db,
    }


def test_operators_chain_migrates_and_verifies(migration, run_dag):
    from airflow.sdk import DAG

    from airflow_provider_confiture.operators import (
        AnalyzeOperator,
        CleanupOperator,
        FdwSetupOperator,
        FinalizeLoadOperator,
        PrepareLoadOperator,
        TableMigrateOperator,
        VerifyOperator,
    )

    common = {k: migration[k] for k in ("source_conn_id", "target_conn_id", "mapping_path")}
    with DAG("smoke_chain", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        setup = FdwSetupOperator(task_id="setup", ddl_path=migration["ddl_path"], **common)
        analyze = AnalyzeOperator(task_id="analyze", copy_threshold_rows=4000, **common)
        prepare = PrepareLoadOperator(task_id="prepare", **common)
        users = TableMigrateOperator(task_id="users", table="users", copy_threshold_rows=1000, **common)
        posts = TableMigrateOperator(task_id="posts", table="posts", strategy="fdw", **common)
        finalize = FinalizeLoadOperator(task_id="finalize", **common)
        verify = VerifyOperator(task_id="verify", **common)
        cleanup = CleanupOperator(task_id="cleanup", target_conn_id=migration["target_conn_id"])
        setup >> analyze >> prepare >> [users, posts] >> finalize >> verify >> cleanup
    run = run_dag(dag)
    assert run.state == "success", run.state
    rows = migration["target_db"].execute("SELECT count(*), sum(price)::text, min(display_name) FROM users")
    assert rows[0] == (3000, "45015.00", "n1")
    assert migration["target_db"].execute("SELECT count(*) FROM posts")[0][0] == 5000
    # FK back in force and validated; link removed
    assert migration["target_db"].execute(
        "SELECT convalidated FROM pg_constraint WHERE contype = 'f' AND conrelid = 'posts'::regclass"
    ) == [(True,)]
    assert migration["target_db"].execute("SELECT count(*) FROM pg_foreign_server")[0][0] == 0
