"""Merging tables through the DAG factory: a mapping with joins and view sources, run with
``dag.test()`` on the two real clusters (analyze, setup importing joined tables and views, the
per-table fan-out with key ranges over a joined entry, verify, summary), then run again; and a
duplicate-producing join refused by analyze before any table task runs."""

from __future__ import annotations

from tests.core.test_joins import ACTUAL, EXPECTED, MAPPING, SOURCE_DATA, SOURCE_DDL, TARGET_DDL
from tests.test_dag_factory import states, xcom


def _build(source_db, target_db, airflow_conn, tmp_path, dag_id, mapping=MAPPING, ddl=TARGET_DDL):
    from airflow_provider_confiture import create_schema_to_schema_dag

    (tmp_path / "ddl").mkdir(exist_ok=True)
    (tmp_path / "ddl" / "01_tables.sql").write_text(ddl)
    (tmp_path / "mapping.yaml").write_text(mapping)
    tag = target_db.dbname[-8:]
    return create_schema_to_schema_dag(
        f"{dag_id}_{tag}",
        source_conn_id=airflow_conn(f"join_src_{tag}", source_db),
        target_conn_id=airflow_conn(f"join_tgt_{tag}", target_db),
        mapping_path=str(tmp_path / "mapping.yaml"),
        ddl_path=str(tmp_path / "ddl"),
        split_threshold_rows=200,
        rows_per_part=150,
        max_tables_per_unit=1,  # one task per table: this test reads per-table labels
    )


def test_merge_dag_migrates_joins_and_views_and_reruns(source_db, target_db, airflow_conn, tmp_path, run_dag):
    source_db.execute(SOURCE_DDL)
    source_db.execute(SOURCE_DATA)
    for attempt in (1, 2):
        run = run_dag(_build(source_db, target_db, airflow_conn, tmp_path, "joins"))
        assert run.state == "success", (attempt, run.state)
        migrated = states(run, "table.migrate")
        # joined entries split into key ranges on the main table's key, so does a view with a key
        # (user_emails: its id); a view without one (order_days) loads as one task
        parts = {label.split(" [")[0] for label in migrated if " [" in label}
        assert {"accounts", "orders", "user_emails"} <= parts and "order_days" in migrated, migrated
        assert set(migrated.values()) == {"success"}
        for table in EXPECTED:
            assert target_db.execute(ACTUAL[table]) == source_db.execute(EXPECTED[table]), (attempt, table)
        summary = xcom(run, "summary")
        assert summary["ok"] is True and all(t["status"] == "match" for t in summary["tables"])
    analysis = xcom(run, "analyze", key="analysis")
    notes = {t["label"]: " ".join(t["warnings"]) for t in analysis["tables"]}
    assert "view with no usable key" in notes["order_days"]


def test_merge_dag_refuses_a_duplicating_join_at_analyze(
    source_db, target_db, airflow_conn, tmp_path, run_dag, capfd
):
    source_db.execute(SOURCE_DDL)
    source_db.execute(SOURCE_DATA)
    mapping = (
        MAPPING
        + """
user_cities:
  source_table: users
  joins:
    - {table: addresses, alias: a, on: "a.user_id = users.id"}
  columns:
    id: user_id
    city: {transform: a.city}
"""
    )
    ddl = TARGET_DDL + "CREATE TABLE user_cities (user_id bigint PRIMARY KEY, email text, city text);\n"
    capfd.readouterr()
    run = run_dag(_build(source_db, target_db, airflow_conn, tmp_path, "joins_dup", mapping, ddl))
    log = capfd.readouterr()
    assert run.state == "failed"
    assert "entry 'user_cities', join 'a' (public.addresses)" in log.out + log.err
    assert set(states(run, "table.migrate").values()) <= {"upstream_failed"}  # no table task ran
    assert target_db.execute("SELECT count(*) FROM accounts") == [(0,)]
