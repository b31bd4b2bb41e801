"""A dry run before the migration ever ran: nothing to analyze yet, nothing created, run not red."""

from __future__ import annotations

import secrets

MAPPING = """
users:
  source_table: old_users
  columns:
    full_name: display_name
"""


def test_dry_run_before_first_setup_creates_nothing_and_explains(
    source_db, pg_target, airflow_conn, run_dag, tmp_path, capfd
):
    from airflow_provider_confiture import create_schema_to_schema_dag

    source_db.execute(
        "CREATE TABLE old_users (id int PRIMARY KEY, full_name text);"
        "INSERT INTO old_users SELECT g, 'n' || g FROM generate_series(1, 50) g;"
    )
    (tmp_path / "ddl").mkdir()
    (tmp_path / "ddl" / "01.sql").write_text("CREATE TABLE users (id int PRIMARY KEY, display_name text);")
    (tmp_path / "mapping.yaml").write_text(MAPPING)
    missing_db = f"never_created_{secrets.token_hex(4)}"
    tag = missing_db[-8:]
    dag = create_schema_to_schema_dag(
        f"dry_first_{tag}",
        mapping_path=tmp_path / "mapping.yaml",
        ddl_path=tmp_path / "ddl",
        source_conn_id=airflow_conn(f"dry_src_{tag}", source_db),
        target_conn_id=airflow_conn(f"dry_tgt_{tag}", pg_target, dbname=missing_db),
    )
    run = run_dag(dag, run_conf={"dry_run": True})
    assert run.state == "success"
    exists = pg_target.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (missing_db,))
    assert exists == [(0,)]
    assert f"target database {missing_db!r} does not exist yet" in capfd.readouterr().out
