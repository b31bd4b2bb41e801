"""The DAG factory end to end: DAGs built from a mapping YAML, run with ``dag.test()`` on the two real
clusters (small data), plus parse-time behaviour (params, mapping errors, paths, discovery)."""

from __future__ import annotations

import copy
import textwrap
from datetime import timedelta

import pytest

MAPPING = """
users:
  source_table: old_users
  columns:
    full_name: display_name
"""

DDL = """
CREATE TABLE users (id bigint PRIMARY KEY, display_name text NOT NULL, email text);
CREATE TABLE posts (id int PRIMARY KEY, user_id bigint REFERENCES users(id), body text CHECK (body <> 'bad'));
CREATE TABLE tags (id int PRIMARY KEY, name text);
"""

SOURCE = """
CREATE TABLE old_users (id bigserial PRIMARY KEY, full_name text, email text);
INSERT INTO old_users (full_name, email) SELECT 'n' || g, 'e' || g FROM generate_series(1, 3000) g;
CREATE TABLE posts (id serial PRIMARY KEY, user_id bigint REFERENCES old_users(id), body text);
INSERT INTO posts (user_id, body) SELECT (g % 3000) + 1, 'b' || g FROM generate_series(1, 2000) g;
CREATE TABLE tags (id int PRIMARY KEY, name text);
INSERT INTO tags SELECT g, 't' || g FROM generate_series(1, 40) g;
ANALYZE;
"""

#: users (3000 rows) splits into three key ranges; posts and tags load whole.
SPLIT = {"split_threshold_rows": 2500, "rows_per_part": 1000, "max_tables_per_unit": 1}
USER_LABELS = ["users [1/3]", "users [2/3]", "users [3/3]"]


@pytest.fixture
def migration(source_db, target_db, airflow_conn, tmp_path):
    source_db.execute(SOURCE)
    (tmp_path / "ddl").mkdir()
    (tmp_path / "ddl" / "01_tables.sql").write_text(DDL)
    (tmp_path / "mapping.yaml").write_text(MAPPING)
    tag = target_db.dbname[-8:]
    return {
        "source_conn_id": airflow_conn(f"dagf_src_{tag}", source_db),
        "target_conn_id": airflow_conn(f"dagf_tgt_{tag}", target_db),
        "mapping_path": str(tmp_path / "mapping.yaml"),
        "ddl_path": str(tmp_path / "ddl"),
        "tag": tag,
    }


def build(migration, dag_id, **kwargs):
    from airflow_provider_confiture import create_schema_to_schema_dag

    options = {k: migration[k] for k in ("source_conn_id", "target_conn_id", "mapping_path", "ddl_path")}
    options.update(SPLIT)
    options.update(kwargs)
    return create_schema_to_schema_dag(f"{dag_id}_{migration['tag']}", **options)


def task_instances(run) -> dict[tuple[str, int], object]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id)
        ).all()
        for ti in tis:
            session.expunge(ti)
    return {(ti.task_id, ti.map_index): ti for ti in tis}


def states(run, task_id: str) -> dict[str, str]:
    """label -> state of a mapped per-table task's instances.

    The label is the ``rendered_map_index`` of the unit's ``migrate`` instance: Airflow renders
    ``map_index_template`` only when an instance runs, so a ``verify`` that never ran (upstream failed)
    has none.
    """
    tis = task_instances(run)
    group = task_id.rsplit(".", 1)[0]
    labels = {m: ti.rendered_map_index for (t, m), ti in tis.items() if t == f"{group}.migrate"}
    return {labels[m]: ti.state for (t, m), ti in tis.items() if t == task_id}


def xcom(run, task_id: str, map_index: int = -1, key: str = "return_value"):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        value = session.scalar(
            select(XComModel.value).where(
                XComModel.dag_id == run.dag_id,
                XComModel.run_id == run.run_id,
                XComModel.task_id == task_id,
                XComModel.map_index == map_index,
                XComModel.key == key,
            )
        )
    import json

    return json.loads(value) if isinstance(value, str) else value


def snapshot(db, table: str, order: str = "id"):
    return db.execute(f"SELECT * FROM {table} ORDER BY {order}")  # noqa: S608 - fixed test table names


def foreign_keys(db):
    return db.execute(
        "SELECT conrelid::regclass::text, conname, convalidated FROM pg_constraint WHERE contype = 'f' ORDER BY 2"
    )


ALL_LABELS = {*USER_LABELS, "posts", "tags"}


# --------------------------------------------------------------------------- end to end
def test_full_run_dry_run_tables_param_rerun_and_cleanup(migration, source_db, target_db, run_dag, capfd):
    """One migration's life: full run, dry run, a run of one table, a second full run, cleanup.

    The DAG is built anew for every run, as a worker parses the DAG file for every task: in one process
    Airflow 3.3 keeps a run's conf in the DAG's ``Param`` objects (``ParamsDict.__setitem__`` ->
    ``Param.resolve`` sets ``param.value``), so a later ``dag.test()`` of the same object would inherit
    the previous run's ``dry_run``.
    """
    from airflow_provider_confiture import cleanup_dag_of

    dag = build(migration, "dagf_life")

    # 1. full run: every table (and key range) migrated, verified; FKs back and validated
    capfd.readouterr()
    run = run_dag(dag)
    log = capfd.readouterr().out
    assert run.state == "success", run.state
    assert states(run, "table.migrate") == {label: "success" for label in ALL_LABELS}
    assert states(run, "table.verify") == {label: "success" for label in ALL_LABELS}
    verify_labels = [
        ti.rendered_map_index for (t, _), ti in task_instances(run).items() if t == "table.verify"
    ]
    assert sorted(verify_labels) == sorted(ALL_LABELS)
    assert {u["strategy"] for u in xcom(run, "analyze")} == {"fdw"}  # auto, below the default 10,000 rows
    assert target_db.execute("SELECT count(*), min(display_name), max(id) FROM users") == [(3000, "n1", 3000)]
    assert target_db.execute("SELECT count(*) FROM posts") == [(2000,)]
    assert target_db.execute("SELECT count(*) FROM tags") == [(40,)]
    assert foreign_keys(target_db) == [("posts", "posts_user_id_fkey", True)]
    summary = xcom(run, "summary")
    assert summary["ok"] is True
    assert sorted(t["label"] for t in summary["tables"]) == sorted(ALL_LABELS)
    assert all(t["status"] == "match" and t["source_checksum"] for t in summary["tables"])
    analysis = xcom(run, "analyze", key="analysis")
    assert sorted(t["label"] for t in analysis["tables"]) == ["posts", "tags", "users"]
    assert "Table Analysis" in log and "users [2/3]" in log

    # 2. dry run: the target is not touched (a changed row stays changed, no FK dropped)
    target_db.execute(
        "UPDATE tags SET name = 'changed' WHERE id = 1; UPDATE users SET email = 'x' WHERE id = 7"
    )
    before = {t: snapshot(target_db, t) for t in ("users", "posts", "tags")}
    run = run_dag(build(migration, "dagf_life"), run_conf={"dry_run": True})
    assert run.state == "success", run.state
    assert {t: snapshot(target_db, t) for t in ("users", "posts", "tags")} == before
    assert foreign_keys(target_db) == [("posts", "posts_user_id_fkey", True)]
    migrate = xcom(run, "table.migrate", 0)
    assert migrate["dry_run"] is True and migrate["statements"]

    # The dry run reports the rows changed on the target (not by the migration) without failing.
    written = {t["label"]: t["target_writes"] for t in xcom(run, "analyze", key="analysis")["tables"]}
    assert written["tags"]["statements"] == written["users"]["statements"] == 1 and written["posts"] is None

    # 3. tables param (with strategy copy, no checksum, overwriting the changed row on purpose): only
    # tags is re-synced; users keeps its changed row
    run = run_dag(
        build(migration, "dagf_life"),
        run_conf={
            "tables": ["tags"],
            "strategy": "copy",
            "skip_checksum": True,
            "overwrite_target_writes": True,
        },
    )
    assert run.state == "success", run.state
    assert states(run, "table.migrate") == {"tags": "success"}
    assert xcom(run, "table.migrate", 0)["strategy"] == "copy"
    (tags_check,) = xcom(run, "table.verify", 0)["tables"]
    assert tags_check["status"] == "match" and tags_check["source_checksum"] is None
    assert target_db.execute("SELECT name FROM tags WHERE id = 1") == [("t1",)]
    assert target_db.execute("SELECT email FROM users WHERE id = 7") == [("x",)]

    # 4. a second full run re-syncs everything and ends green (idempotent), once told that the changed
    # users row may be overwritten (test_rerun_after_the_application_wrote_* shows the refusal)
    dag = build(migration, "dagf_life")
    run = run_dag(dag, run_conf={"overwrite_target_writes": True})
    assert run.state == "success", run.state
    assert target_db.execute("SELECT email FROM users WHERE id = 7") == [("e7",)]
    assert target_db.execute("SELECT count(*), count(DISTINCT id) FROM users") == [(3000, 3000)]
    assert foreign_keys(target_db) == [("posts", "posts_user_id_fkey", True)]

    # 5. the cleanup DAG removes the link
    assert target_db.execute("SELECT count(*) FROM pg_foreign_server") == [(1,)]
    cleanup = cleanup_dag_of(dag)
    run = run_dag(cleanup)
    assert run.state == "success", run.state
    assert target_db.execute("SELECT count(*) FROM pg_foreign_server") == [(0,)]
    assert target_db.execute("SELECT count(*) FROM users") == [(3000,)]


def test_rerun_after_the_application_wrote_fails_at_analyze_and_loses_nothing(
    migration, source_db, target_db, run_dag, capfd
):
    """The issue's reproduction: migrate, let the application write to the new database, run the
    migration DAG again. The run fails at analyze naming the written tables, before any table task
    starts, and the application's rows are still there. Overwriting takes the run param (which wins
    over the factory's default)."""
    dag = build(migration, "dagf_guard")
    assert run_dag(dag).state == "success"
    # The application, cut over: a new user (its own role), a post edited, a tag deleted.
    role, password = f"app_{migration['tag']}", "app-pw"
    target_db.cluster.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    try:
        target_db.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}")
        import psycopg

        with psycopg.connect(target_db.conninfo(user=role, password=password), autocommit=True) as app:
            app.execute("INSERT INTO users VALUES (5001, 'written after cutover', 'new@app')")
            app.execute("UPDATE posts SET body = 'edited in the app' WHERE id = 3")
            app.execute("DELETE FROM tags WHERE id = 40")
        after_cutover = {t: snapshot(target_db, t) for t in ("users", "posts", "tags")}

        capfd.readouterr()
        run = run_dag(build(migration, "dagf_guard"))
        log = capfd.readouterr().out
        assert run.state == "failed", run.state
        tis = task_instances(run)
        assert tis[("analyze", -1)].state == "failed"
        assert tis[("analyze", -1)].try_number == 1  # not retryable: nothing changes between attempts
        assert not any(t.startswith("table.") and ti.state == "success" for (t, _), ti in tis.items())
        assert "these tables have taken writes that are not the migration's since their last load" in log
        assert "public.posts: 1 write statement" in log or "posts: 1 write statement" in log
        assert "overwrite_target_writes" in log
        assert {t: snapshot(target_db, t) for t in ("users", "posts", "tags")} == after_cutover
        assert foreign_keys(target_db) == [("posts", "posts_user_id_fkey", True)]  # prepare never ran

        # The factory says overwrite (a rehearsal target), the run param says no: the run param wins.
        run = run_dag(
            build(migration, "dagf_guard", overwrite_target_writes=True),
            run_conf={"overwrite_target_writes": False},
        )
        assert run.state == "failed"
        assert {t: snapshot(target_db, t) for t in ("users", "posts", "tags")} == after_cutover
        # Its default applies otherwise: overwritten on purpose, back to the source's data.
        run = run_dag(build(migration, "dagf_guard", overwrite_target_writes=True))
        assert run.state == "success", run.state
        assert target_db.execute("SELECT count(*) FROM users WHERE id = 5001") == [(0,)]
        assert target_db.execute("SELECT count(*) FROM tags") == [(40,)]
    finally:
        target_db.execute(f"DROP OWNED BY {role}")
        target_db.cluster.execute(f"DROP ROLE {role}")


def test_failed_table_makes_run_red_and_repairs_alone(migration, source_db, target_db, run_dag):
    """A source row breaking a target CHECK fails one table; the others load and verify; the run is red.
    After fixing the data, clearing that table's mapped instance re-runs it alone and the run ends green."""
    from tests.dags_support.rerun import clear_in_run, finish_run

    source_db.execute("UPDATE posts SET body = 'bad' WHERE id = 5")
    dag = build(migration, "dagf_repair", table_retries=1, table_retry_delay=timedelta(0))
    run = run_dag(dag)
    assert run.state == "failed", run.state
    assert states(run, "table.migrate") == {**{label: "success" for label in ALL_LABELS}, "posts": "failed"}
    assert states(run, "table.verify") == {
        **{label: "success" for label in ALL_LABELS},
        "posts": "upstream_failed",
    }
    tis = task_instances(run)
    assert tis[("finalize", -1)].state == tis[("summary", -1)].state == "upstream_failed"
    posts_index = next(
        m for (t, m), ti in tis.items() if t == "table.migrate" and ti.rendered_map_index == "posts"
    )
    # bad data cannot heal on a retry: the table failed at once, without burning its retry
    assert tis[("table.migrate", posts_index)].try_number == 1
    assert {ti.try_number for (t, m), ti in tis.items() if t == "table.migrate" and m != posts_index} == {1}
    # the other tables are migrated; posts is untouched (its load rolled back); its FK still set aside
    assert target_db.execute("SELECT count(*) FROM users") == [(3000,)]
    assert target_db.execute("SELECT count(*) FROM tags") == [(40,)]
    assert target_db.execute("SELECT count(*) FROM posts") == [(0,)]
    assert foreign_keys(target_db) == []

    # fix the data, clear posts' instance with its downstream in the same run (the UI's Clear)
    source_db.execute("UPDATE posts SET body = 'fixed' WHERE id = 5")
    cleared = clear_in_run(dag.dag_id, run.run_id, [("table.migrate", posts_index)])
    assert cleared == sorted(
        [("table.migrate", posts_index), ("table.verify", posts_index), ("finalize", -1), ("summary", -1)]
    )
    run = finish_run(dag, run.run_id)
    assert run.state == "success", run.state
    after = task_instances(run)
    rerun = {k for k in after if after[k].try_number != tis[k].try_number}
    assert rerun == set(cleared)
    assert target_db.execute("SELECT count(*), count(DISTINCT id) FROM posts") == [(2000, 2000)]
    assert target_db.execute("SELECT body FROM posts WHERE id = 5") == [("fixed",)]
    assert foreign_keys(target_db) == [("posts", "posts_user_id_fkey", True)]
    summary = xcom(run, "summary")
    assert summary["ok"] is True and sorted(t["label"] for t in summary["tables"]) == sorted(ALL_LABELS)


def test_invalid_params_are_refused(migration, target_db, run_dag):
    from airflow.sdk.exceptions import ParamValidationError

    from airflow_provider_confiture import create_schema_to_schema_dag

    dag = build(migration, "dagf_params")
    assert dag.params.validate() == {
        "tables": [],
        "strategy": "auto",
        "copy_threshold_rows": 10_000,
        "dry_run": False,
        "skip_checksum": False,
        "overwrite_target_writes": False,
    }
    for name in (
        "tables",
        "strategy",
        "copy_threshold_rows",
        "dry_run",
        "skip_checksum",
        "overwrite_target_writes",
    ):
        param = dag.params.get_param(name)
        assert param.schema.get("title") and param.description, name
    good = {"tables": ["users", "tags"], "strategy": "copy", "copy_threshold_rows": 0, "dry_run": True}
    params = copy.deepcopy(dag.params)
    params.update(good)
    assert params.validate()["tables"] == ["users", "tags"]
    bad = [
        {"strategy": "fast"},
        {"copy_threshold_rows": -1},
        {"copy_threshold_rows": "many"},
        {"tables": "users"},
        {"tables": [""]},
        {"dry_run": "maybe"},
        {"skip_checksum": 1},
        {"overwrite_target_writes": "yes"},
    ]
    for conf in bad:
        params = copy.deepcopy(dag.params)
        with pytest.raises(ParamValidationError):
            params.update(conf)
            params.validate()
    # triggering with an invalid value creates no run: nothing is executed
    with pytest.raises(ParamValidationError, match="fast"):
        run_dag(build(migration, "dagf_params"), run_conf={"strategy": "fast"})
    assert target_db.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]
    # factory arguments become the form's defaults: invalid ones fail at DAG build
    for bad_args in ({"strategy": "fast"}, {"copy_threshold_rows": -5}, {"table_retries": -1}):
        with pytest.raises(ValueError, match=next(iter(bad_args))):
            create_schema_to_schema_dag(
                "dagf_bad_args", mapping_path=None, source_conn_id="s", target_conn_id="t", **bad_args
            )


def test_dag_shape_retries_and_cleanup_dag(migration):
    from airflow.sdk import TriggerRule
    from airflow.sdk.definitions.timetables.simple import NullTimetable

    from airflow_provider_confiture import cleanup_dag_of
    from airflow_provider_confiture.operators import CleanupOperator

    dag = build(
        migration,
        "dagf_shape",
        schedule="@daily",
        table_retries=3,
        default_args={"retry_delay": timedelta(seconds=5)},
        tags=["team-a"],
    )
    assert [t.task_id for t in dag.tasks] == [
        "setup",
        "analyze",
        "prepare",
        "table.migrate",
        "table.verify",
        "finalize",
        "summary",
    ]
    assert dag.max_active_runs == 1 and dag.catchup is False
    assert set(dag.tags) == {"confiture", "schema-to-schema", "team-a"}
    assert "`users` | `old_users` | `users`" in dag.doc_md and f"{dag.dag_id}_cleanup" in dag.doc_md
    for task_id in ("table.migrate", "table.verify"):
        task = dag.get_task(task_id)
        assert (task.retries, task.retry_delay) == (3, timedelta(seconds=5))
        assert task.get_closest_mapped_task_group() is not None
    # every task keeps the default trigger rule: a red table leaves a red leaf
    assert {t.trigger_rule for t in dag.tasks} == {TriggerRule.ALL_SUCCESS}
    assert [t.task_id for t in dag.leaves] == ["summary"]
    assert dag.get_task("table.migrate").upstream_task_ids == {"analyze", "prepare"}
    assert dag.get_task("summary").upstream_task_ids == {"finalize", "table.verify"}

    cleanup = cleanup_dag_of(dag)
    assert cleanup.dag_id == f"{dag.dag_id}_cleanup"
    assert isinstance(cleanup.timetable, NullTimetable)
    assert [type(t) for t in cleanup.tasks] == [CleanupOperator]
    assert cleanup.tasks[0].target_conn_id == migration["target_conn_id"]
    assert {r.value for r in cleanup.allowed_run_types} == {"manual"}


def test_mapping_error_is_a_dag_import_error_naming_file_entry_and_key(tmp_path):
    from airflow.dag_processing.dagbag import DagBag

    from airflow_provider_confiture import create_schema_to_schema_dag
    from airflow_provider_confiture.core.errors import MappingError

    (tmp_path / "mapping.yaml").write_text(
        "users:\n  source_table: old_users\n  colums:\n    full_name: name\n"
    )
    with pytest.raises(MappingError) as raised:
        create_schema_to_schema_dag(
            "dagf_bad_mapping", mapping_path=tmp_path / "mapping.yaml", source_conn_id="s", target_conn_id="t"
        )
    assert (raised.value.source, raised.value.entry, raised.value.key) == (
        str(tmp_path / "mapping.yaml"),
        "users",
        "colums",
    )
    dag_file = tmp_path / "bad_migration.py"
    dag_file.write_text(
        textwrap.dedent("""
        from airflow_provider_confiture import create_schema_to_schema_dag

        dag = create_schema_to_schema_dag("dagf_bad_file", mapping_path="mapping.yaml",
                                          source_conn_id="s", target_conn_id="t")
    """)
    )
    bag = DagBag(dag_folder=str(dag_file))
    assert bag.dags == {}
    (error,) = bag.import_errors.values()
    assert str(tmp_path / "mapping.yaml") in error and "entry 'users'" in error and "key 'colums'" in error


def test_relative_paths_resolve_against_the_calling_file_and_both_dags_are_discovered(tmp_path):
    from airflow.dag_processing.dagbag import DagBag

    folder = tmp_path / "dags"
    (folder / "conf" / "ddl").mkdir(parents=True)
    (folder / "conf" / "mapping.yaml").write_text(MAPPING)
    (folder / "conf" / "ddl" / "01.sql").write_text(DDL)
    dag_file = folder / "migration.py"
    # the cleanup DAG is not assigned: the with-block auto-registration makes Airflow find it
    dag_file.write_text(
        textwrap.dedent("""
        from airflow_provider_confiture import create_schema_to_schema_dag

        migration = create_schema_to_schema_dag(
            "dagf_discovered", mapping_path="conf/mapping.yaml", ddl_path="conf/ddl",
            source_conn_id="s", target_conn_id="t",
        )
    """)
    )
    bag = DagBag(dag_folder=str(folder))
    assert bag.import_errors == {}
    assert set(bag.dags) == {"dagf_discovered", "dagf_discovered_cleanup"}
    dag = bag.dags["dagf_discovered"]
    assert dag.get_task("setup").ddl_path == str(folder / "conf" / "ddl")
    assert dag.get_task("table.migrate").mapping_path == str(folder / "conf" / "mapping.yaml")
    assert {d.fileloc for d in bag.dags.values()} == {str(dag_file)}
    missing = folder / "missing.py"
    missing.write_text(dag_file.read_text().replace("conf/ddl", "conf/nope"))
    bag = DagBag(dag_folder=str(missing))
    (error,) = bag.import_errors.values()
    assert str(folder / "conf" / "nope") in error and "ddl_path" in error


def test_task_group_embeds_the_migration_in_a_larger_dag(migration, target_db, run_dag):
    """The same converter as a TaskGroup: the enclosing DAG's own params win (here: tables = tags)."""
    import pendulum
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG, Param

    from airflow_provider_confiture import create_schema_to_schema_task_group

    options = {k: migration[k] for k in ("source_conn_id", "target_conn_id", "mapping_path", "ddl_path")}
    with DAG(
        f"dagf_outer_{migration['tag']}",
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1),
        params={"tables": Param(["tags"], type="array")},
    ) as dag:
        before = EmptyOperator(task_id="before")
        group = create_schema_to_schema_task_group("migration", **options)
        after = EmptyOperator(task_id="after")
        before >> group >> after
    assert set(dag.params) == {
        "tables",
        "strategy",
        "copy_threshold_rows",
        "dry_run",
        "skip_checksum",
        "overwrite_target_writes",
    }
    assert {"migration.setup", "migration.table.migrate", "migration.summary"} <= set(dag.task_ids)
    run = run_dag(dag)
    assert run.state == "success", run.state
    assert states(run, "migration.table.migrate") == {"tags": "success"}
    assert task_instances(run)[("after", -1)].state == "success"
    assert target_db.execute("SELECT count(*) FROM tags") == [(40,)]
    assert target_db.execute("SELECT count(*) FROM users") == [(0,)]
