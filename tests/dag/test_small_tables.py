"""Small tables travel together: units of several tables, each table still in its own transaction,
per-table results, and a retry of a unit that reloads only what is missing (two real clusters,
``dag.test()``)."""

from __future__ import annotations

import pytest
from psycopg import sql

from tests.dags_support.rerun import clear_in_run, finish_run
from tests.test_dag_factory import states, task_instances, xcom

COUNT = 12
ROWS = 30


def _name(i: int) -> str:
    return f"s{i:02d}"


def _source_sql() -> sql.Composable:
    parts = []
    for i in range(1, COUNT + 1):
        ref = sql.SQL(" REFERENCES {} (id)").format(sql.Identifier(_name(i - 1))) if i > 1 else sql.SQL("")
        parts.append(
            sql.SQL(
                "CREATE TABLE {t} (id int PRIMARY KEY, parent_id int{ref}, old_name text NOT NULL, v int);"
                "INSERT INTO {t} SELECT g, CASE WHEN {i} > 1 THEN g END, 'n' || g, g FROM generate_series(1, {n}) g;"
            ).format(t=sql.Identifier(_name(i)), ref=ref, i=sql.Literal(i), n=sql.Literal(ROWS))
        )
    parts.append(sql.SQL("ANALYZE;"))
    return sql.SQL("\n").join(parts)


def _target_ddl() -> str:
    lines = []
    for i in range(1, COUNT + 1):
        ref = f" REFERENCES s{i - 1:02d} (id)" if i > 1 else ""
        lines.append(
            f"CREATE TABLE s{i:02d} (id int PRIMARY KEY, parent_id int{ref}, "
            f"new_name text NOT NULL CHECK (new_name <> 'bad'), v int);"
        )
    return "\n".join(lines)


@pytest.fixture
def small(source_db, target_db, airflow_conn, tmp_path):
    source_db.execute(_source_sql())
    (tmp_path / "ddl").mkdir()
    (tmp_path / "ddl" / "01_tables.sql").write_text(_target_ddl())
    (tmp_path / "mapping.yaml").write_text(
        "".join(f"{_name(i)}:\n  old_name: new_name\n" for i in range(1, COUNT + 1))
    )
    tag = target_db.dbname[-8:]
    return {
        "source_conn_id": airflow_conn(f"small_src_{tag}", source_db),
        "target_conn_id": airflow_conn(f"small_tgt_{tag}", target_db),
        "mapping_path": str(tmp_path / "mapping.yaml"),
        "ddl_path": str(tmp_path / "ddl"),
        "tag": tag,
    }


def _build(small, dag_id, **kwargs):
    from airflow_provider_confiture import create_schema_to_schema_dag

    options = {k: small[k] for k in ("source_conn_id", "target_conn_id", "mapping_path", "ddl_path")}
    options.update(kwargs)
    return create_schema_to_schema_dag(f"{dag_id}_{small['tag']}", **options)


def _loaded_at(target_db) -> dict[str, str]:
    rows = target_db.execute("SELECT table_name, loaded_at::text FROM _confiture.table_load ORDER BY 1")
    return dict(rows)


LABELS = [
    "small tables [1/3] (s01..s05, 5 tables)",
    "small tables [2/3] (s06..s10, 5 tables)",
    "small tables [3/3] (s11..s12, 2 tables)",
]


def test_small_tables_share_units_a_failing_table_is_reloaded_alone_and_one_table_runs_alone(
    small, source_db, target_db, run_dag
):
    source_db.execute("UPDATE s07 SET old_name = 'bad' WHERE id = 3")  # breaks s07's target CHECK
    dag = _build(small, "small_units", max_tables_per_unit=5, table_retries=1)
    run = run_dag(dag)
    assert run.state == "failed"
    # 12 tables, 3 units: labelled with the unit and its tables
    assert states(run, "table.migrate") == {LABELS[0]: "success", LABELS[1]: "failed", LABELS[2]: "success"}
    tis = task_instances(run)
    assert len([k for k in tis if k[0] == "table.migrate"]) == 3
    failed_index = next(m for (t, m), ti in tis.items() if t == "table.migrate" and ti.state == "failed")
    assert tis[("table.migrate", failed_index)].try_number == 1  # bad data: failed at once
    # inside the failed unit, the other tables loaded (each its own transaction); s07 is untouched
    for table in ("s06", "s08", "s09", "s10"):
        assert target_db.execute(f"SELECT count(*) FROM {table}") == [(ROWS,)]  # noqa: S608 - test names
    assert target_db.execute("SELECT count(*) FROM s07") == [(0,)]
    before = _loaded_at(target_db)
    assert "s07" not in before and len(before) == COUNT - 1

    # fix the data, clear the unit's migrate (the UI's Clear with downstream), finish the same run
    source_db.execute("UPDATE s07 SET old_name = 'fixed' WHERE id = 3")
    cleared = clear_in_run(dag.dag_id, run.run_id, [("table.migrate", failed_index)])
    assert ("table.verify", failed_index) in cleared
    run = finish_run(dag, run.run_id)
    assert run.state == "success", run.state
    after = _loaded_at(target_db)
    # only s07 was loaded again: the unit's other tables kept their load of this run
    assert {t for t in after if after[t] != before.get(t)} == {"s07"}
    migrated = xcom(run, "table.migrate", failed_index)
    assert [t["table"] for t in migrated["tables"]] == ["public.s07"]
    assert migrated["skipped"] == ["s06", "s08", "s09", "s10"]
    # verify results stay per table, for every table
    summary = xcom(run, "summary")
    assert summary["ok"] is True
    assert sorted(t["label"] for t in summary["tables"]) == [_name(i) for i in range(1, COUNT + 1)]
    assert target_db.execute("SELECT count(*) FROM s07 WHERE new_name = 'fixed'") == [(1,)]

    # the tables param runs one grouped table alone, in a unit of its own
    one = run_dag(_build(small, "small_one", max_tables_per_unit=5), run_conf={"tables": ["s03"]})
    assert one.state == "success"
    assert states(one, "table.migrate") == {"s03": "success"}


def test_grouping_switched_off_gives_one_task_per_table(small, run_dag):
    run = run_dag(_build(small, "small_off", max_tables_per_unit=1))
    assert run.state == "success"
    assert sorted(states(run, "table.migrate")) == [_name(i) for i in range(1, COUNT + 1)]
