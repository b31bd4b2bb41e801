"""The operators through real Airflow connections (AIRFLOW_CONN_*) on the two real clusters.

A full migration in a real DAG run (dag.test) with a source role that can only CONNECT and SELECT;
the one-table mapping string; bad input failing before any data moves; analyze's printed table and
XCom; verify failing and naming each table that differs; both drivers through the operators; cleanup
without the source; no password in any task output.
"""

from __future__ import annotations

import json
import secrets

import pendulum
import pytest
from psycopg import sql

from airflow_provider_confiture.core.errors import MappingError, PlanError, VerificationError
from airflow_provider_confiture.operators import (
    AnalyzeOperator,
    CleanupOperator,
    FdwSetupOperator,
    FinalizeLoadOperator,
    PrepareLoadOperator,
    TableMigrateOperator,
    VerifyOperator,
)
from tests.support.steps import raises_step

SOURCE = """
CREATE TABLE old_users (id bigserial PRIMARY KEY, full_name text NOT NULL, email text, price_cents int,
                        settings_json text, legacy_flag bool, deleted_at timestamptz);
INSERT INTO old_users (full_name, email, price_cents, settings_json, legacy_flag, deleted_at)
SELECT 'name ' || g || CASE WHEN g % 3 = 0 THEN ' ✓ ü' ELSE '' END, CASE WHEN g % 4 <> 0 THEN 'e' || g END, g * 7,
       '{"n": ' || g || '}', g % 2 = 0, CASE WHEN g % 50 = 0 THEN '2020-01-01'::timestamptz END
FROM generate_series(1, 500) g;
CREATE TABLE posts (id serial PRIMARY KEY, user_id bigint REFERENCES old_users (id), body text);
INSERT INTO posts (user_id, body) SELECT CASE WHEN g % 50 = 0 THEN 1 ELSE g % 500 END, 'post ' || g
FROM generate_series(1, 800) g;  -- users 50, 100, ... are filtered out by the mapping's 'where'
CREATE TABLE tags (id int PRIMARY KEY, name text);
INSERT INTO tags SELECT g, 'tag ' || g FROM generate_series(1, 10) g;
"""

DDL = """
CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, display_name text NOT NULL,
                    email text, price numeric(12,2), metadata jsonb, status text NOT NULL DEFAULT 'active',
                    age int);
CREATE INDEX users_email_idx ON users (email);
CREATE TABLE posts (id serial PRIMARY KEY, user_id bigint CONSTRAINT posts_user_fk REFERENCES users (id),
                    body text);
CREATE TABLE tags (id int PRIMARY KEY, name text);
CREATE TABLE audit_log (id serial PRIMARY KEY, what text);
"""

MAPPING = """
users:
  source_table: old_users
  where: "deleted_at IS NULL"
  columns:
    full_name: display_name
    price:
      transform: "price_cents::numeric / 100"
    metadata:
      source_column: settings_json
      transform: "settings_json::jsonb"
    legacy_flag: null
    deleted_at: null
posts:
  strategy: fdw
"""


def _role(cluster, dbname: str, grants: str) -> tuple[str, str]:
    name, password = f"ro_{secrets.token_hex(4)}", secrets.token_urlsafe(12)
    cluster.execute(
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(password))
    )
    cluster.execute(
        sql.SQL(grants).format(role=sql.Identifier(name), db=sql.Identifier(dbname)), dbname=dbname
    )
    return name, password


def _drop_role(cluster, dbname: str, name: str) -> None:
    cluster.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)), dbname=dbname)
    cluster.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


@pytest.fixture
def shop(source_db, target_db, airflow_conn, tmp_path):
    source_db.execute(SOURCE)
    (tmp_path / "ddl").mkdir()
    (tmp_path / "ddl" / "01_tables.sql").write_text(DDL)
    (tmp_path / "mapping.yaml").write_text(MAPPING)
    return {
        "source_conn_id": airflow_conn("op_source", source_db),
        "target_conn_id": airflow_conn("op_target", target_db),
        "mapping_path": str(tmp_path / "mapping.yaml"),
        "ddl": str(tmp_path / "ddl"),
        "tmp": tmp_path,
    }


def _ids(shop) -> dict[str, str]:
    return {k: shop[k] for k in ("source_conn_id", "target_conn_id", "mapping_path")}


def _source_fingerprint(db) -> list:
    """Everything a write to the source would change: row contents, write counters, the catalog."""
    return [
        db.execute("SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM old_users t"),
        db.execute("SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM posts t"),
        db.execute(
            "SELECT count(*) FROM pg_class WHERE relnamespace NOT IN "
            "('pg_catalog'::regnamespace, 'information_schema'::regnamespace, 'pg_toast'::regnamespace)"
        ),
        db.execute("SELECT last_value FROM old_users_id_seq"),
    ]


def test_full_migration_in_a_dag_with_a_read_only_source_role(
    shop, source_db, target_db, airflow_conn, run_dag
):
    """The source is never written: with a role that can only CONNECT and SELECT (for the worker and
    for the FDW user mapping), every step succeeds."""
    from airflow.sdk import DAG

    reader, password = _role(
        source_db.cluster,
        source_db.dbname,
        "GRANT CONNECT ON DATABASE {db} TO {role}; GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role};",
    )
    try:
        ids = dict(
            _ids(shop), source_conn_id=airflow_conn("op_source_ro", source_db, user=reader, password=password)
        )
        before = _source_fingerprint(source_db)
        with DAG("full_read_only_source", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
            setup = FdwSetupOperator(task_id="setup", ddl_path=shop["ddl"], **ids)
            analyze = AnalyzeOperator(task_id="analyze", copy_threshold_rows=400, **ids)
            prepare = PrepareLoadOperator(task_id="prepare", **ids)
            users = TableMigrateOperator(task_id="users", table="users", copy_threshold_rows=400, **ids)
            posts = TableMigrateOperator(task_id="posts", table="posts", **ids)
            tags = TableMigrateOperator(task_id="tags", table="tags", strategy="copy", **ids)
            finalize = FinalizeLoadOperator(task_id="finalize", **ids)
            verify = VerifyOperator(task_id="verify", **ids)
            cleanup = CleanupOperator(task_id="cleanup", target_conn_id=ids["target_conn_id"])
            setup >> analyze >> prepare >> [users, posts, tags] >> finalize >> verify >> cleanup
        run = run_dag(dag)
        states = {ti.task_id: ti.state for ti in run.get_task_instances()}
        assert run.state == "success", states
        assert _source_fingerprint(source_db) == before
        assert target_db.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'active'), sum(price)::text FROM users"
        ) == [(490, 490, "8575.00")]
        assert target_db.execute("SELECT count(*) FROM posts") == [(800,)]
        assert target_db.execute(
            "SELECT convalidated FROM pg_constraint WHERE conname = 'posts_user_fk'"
        ) == [(True,)]
        assert target_db.execute("SELECT count(*) FROM pg_foreign_server") == [(0,)]
        # the application's first inserts after cutover
        assert target_db.execute("INSERT INTO users (display_name) VALUES ('app') RETURNING id")[0][0] == 500
        assert target_db.execute("INSERT INTO posts (body) VALUES ('app') RETURNING id")[0][0] == 801
    finally:
        _drop_role(source_db.cluster, source_db.dbname, reader)


def test_one_table_mapping_string(shop, source_db, target_db):
    ids = _ids(shop)
    FdwSetupOperator(task_id="setup", ddl_path=shop["ddl"], **ids).execute({})
    # an unrelated target table that the one-table form does not touch must not get in the way
    target_db.execute("ALTER TABLE tags ADD COLUMN required text NOT NULL")
    common = {k: ids[k] for k in ("source_conn_id", "target_conn_id")}
    for strategy in ("copy", "fdw"):
        result = TableMigrateOperator(
            task_id="one",
            source_table="old_users",
            target_table="users",
            columns="full_name:display_name,email:email",
            where="deleted_at IS NULL",
            strategy=strategy,
            **common,
        ).execute({})
        assert result["rows"] == 490 and result["strategy"] == strategy
        assert target_db.execute("SELECT id, display_name, email, price, status FROM users WHERE id = 3") == [
            (3, "name 3 ✓ ü", "e3", None, "active")
        ]
    assert target_db.execute("SELECT count(*), count(email), min(display_name), max(id) FROM users") == (
        source_db.execute(
            "SELECT count(*), count(email), min(full_name), max(id) FROM old_users WHERE deleted_at IS NULL"
        )
    )


BAD = {
    "misspelt key": (
        "users:\n  source_table: old_users\n  colums:\n    full_name: display_name\n",
        MappingError,
        ["entry 'users'", "unknown key 'colums'", "did you mean 'columns'"],
    ),
    "unknown source column": (
        "users:\n  source_table: old_users\n  columns:\n    fullname: display_name\n",
        PlanError,
        ["entry 'users'", "column 'fullname'", "public.old_users"],
    ),
    "transform of the wrong type": (
        "users:\n  source_table: old_users\n  columns:\n    full_name: display_name\n"
        '    age:\n      transform: "email"\n',
        PlanError,
        ["entry 'users'", "column 'age'", "public.users.age (integer)", "type text"],
    ),
    "NOT NULL without source": (
        "users:\n  source_table: old_users\n",
        PlanError,
        ["entry 'users'", "column 'display_name'", "NOT NULL"],
    ),
    "two sources for one column": (
        "users:\n  source_table: old_users\n  columns:\n    full_name: display_name\n    email: display_name\n",
        MappingError,
        ["entry 'users'", "target column 'display_name' is written twice"],
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_fails_before_any_data_moves(shop, target_db, case):
    text, error, fragments = BAD[case]
    ids = _ids(shop)
    FdwSetupOperator(task_id="setup", ddl_path=shop["ddl"], **ids).execute({})
    target_db.execute("INSERT INTO users (id, display_name) OVERRIDING SYSTEM VALUE VALUES (77, 'kept')")
    (shop["tmp"] / "bad.yaml").write_text(text)
    bad = dict(ids, mapping_path=str(shop["tmp"] / "bad.yaml"))
    for operator in (
        AnalyzeOperator(task_id="analyze", **bad),
        TableMigrateOperator(task_id="users", table="users", strategy="copy", **bad),
        TableMigrateOperator(task_id="users", table="users", strategy="fdw", **bad),
    ):
        with raises_step(error) as info:  # a bad mapping cannot heal: no retry
            operator.execute({})
        for fragment in fragments:
            assert fragment in str(info.value), (fragment, str(info.value))
        assert target_db.execute("SELECT id, display_name FROM users") == [(77, "kept")]


def test_analyze_prints_the_table_and_returns_units(shop, source_db, capsys):
    source_db.execute("ANALYZE")
    ids = _ids(shop)
    FdwSetupOperator(task_id="setup", ddl_path=shop["ddl"], **ids).execute({})
    capsys.readouterr()
    result = AnalyzeOperator(task_id="analyze", copy_threshold_rows=500, **ids).execute({})
    out = capsys.readouterr().out
    assert "Table Analysis:" in out and "│ Table " in out and "│ Est. Time │" in out
    assert "copy ⚡" in out and "audit_log: skipped" in out
    assert "users: source columns not copied: email" not in out  # email maps by name
    assert json.loads(json.dumps(result)) == result
    assert {t["label"]: (t["rows"], t["strategy"]) for t in result["tables"]} == {
        "users": (500, "copy"),
        "posts": (800, "fdw"),
        "tags": (10, "fdw"),
    }
    assert sorted(u["table"] for u in result["units"]) == ["posts", "tags", "users"]
    assert result["skipped"][0][0] == "audit_log"
    # a global override
    forced = AnalyzeOperator(task_id="analyze", strategy="copy", **ids).execute({})
    assert {u["strategy"] for u in forced["units"]} == {"copy"}


def test_verify_operator_fails_naming_each_table_that_differs(shop, target_db, capsys):
    ids = _ids(shop)
    FdwSetupOperator(task_id="setup", ddl_path=shop["ddl"], **ids).execute({})
    PrepareLoadOperator(task_id="prepare", **ids).execute({})
    for table in ("users", "posts", "tags"):
        TableMigrateOperator(task_id=table, table=table, **ids).execute({})
    FinalizeLoadOperator(task_id="finalize", **ids).execute({})
    assert VerifyOperator(task_id="verify", **ids).execute({})["ok"]
    target_db.execute("UPDATE users SET email = 'changed' WHERE id = 10")  # one value in one row
    target_db.execute("DELETE FROM posts WHERE id = 5")  # a missing row
    target_db.execute("INSERT INTO tags VALUES (99, 'extra')")  # an extra row
    capsys.readouterr()
    with raises_step(VerificationError) as info:
        VerifyOperator(task_id="verify", **ids).execute({})
    message = str(info.value)
    assert "users: same row count but content differs" in message
    assert "posts: row count differs: source 800, target 799" in message
    assert "tags: row count differs: source 10, target 11" in message
    out = capsys.readouterr().out
    assert "Source rows" in out and "DIFFERS" in out
    # and the reference tool's report, with the checks it claimed
    assert "✗ Row counts differ" in out and "→ posts: 800 (source) ≠ 799 (target)" in out
    assert "✗ Checksum verification failed" in out
    # one table at a time
    with raises_step(VerificationError, match="tags: row count differs"):
        VerifyOperator(task_id="verify", tables="tags", **ids).execute({})


@pytest.fixture
def psycopg2_hooks(monkeypatch):
    """PostgresHook hands out psycopg2 connections (as on stacks without psycopg 3 + SQLAlchemy 2)."""
    import airflow.providers.postgres.hooks.postgres as hooks

    monkeypatch.setattr(hooks, "USE_PSYCOPG3", False)


@pytest.mark.parametrize("driver", ["psycopg3", "psycopg2"])
def test_operators_with_either_driver_and_dict_cursors(
    shop, source_db, target_db, airflow_conn, request, driver
):
    """Whatever the hook hands out (psycopg 3 or psycopg2, with a dict cursor configured in the
    connection's extras), every step works."""
    if driver == "psycopg2":
        request.getfixturevalue("psycopg2_hooks")
    extra = json.dumps({"cursor": "dictcursor"})
    ids = dict(
        _ids(shop),
        source_conn_id=airflow_conn("op_source_dict", source_db, extra=extra),
        target_conn_id=airflow_conn("op_target_dict", target_db, extra=extra),
    )
    from airflow_provider_confiture.core.db import dbapi
    from airflow_provider_confiture.hooks import connections

    with connections.connect(ids["target_conn_id"]) as conn:
        assert dbapi.driver_name(conn) == driver
    FdwSetupOperator(task_id="setup", ddl_path=shop["ddl"], **ids).execute({})
    assert len(AnalyzeOperator(task_id="analyze", **ids).execute({})["units"]) == 3
    PrepareLoadOperator(task_id="prepare", **ids).execute({})
    for table, strategy in (("users", "copy"), ("posts", "fdw"), ("tags", "copy")):
        result = TableMigrateOperator(task_id=table, table=table, strategy=strategy, **ids).execute({})
        assert result["strategy"] == strategy and result["rows"] > 0
    FinalizeLoadOperator(task_id="finalize", **ids).execute({})
    assert VerifyOperator(task_id="verify", **ids).execute({})["ok"]
    CleanupOperator(task_id="cleanup", target_conn_id=ids["target_conn_id"]).execute({})
    assert target_db.execute("SELECT count(*) FROM users") == [(490,)]


def test_cleanup_operator_never_touches_the_source(shop, source_db, target_db, pg_source, monkeypatch):
    ids = _ids(shop)
    FdwSetupOperator(task_id="setup", ddl_path=shop["ddl"], **ids).execute({})
    target_db.execute("CREATE VIEW old_report AS SELECT count(*) FROM old_schema.old_users")
    cleanup = CleanupOperator(task_id="cleanup", target_conn_id=ids["target_conn_id"])
    with pytest.raises(Exception, match="view old_report"):
        cleanup.execute({})
    target_db.execute("DROP VIEW old_report")
    # the source is gone and its connection undefined: cleanup does not need it
    monkeypatch.delenv("AIRFLOW_CONN_OP_SOURCE")
    pg_source.drop_database(source_db.dbname)
    report = cleanup.execute({})
    assert len(report["foreign_tables"]) == 3 and report["extension"] == "dropped"
    assert target_db.execute("SELECT count(*) FROM pg_foreign_server") == [(0,)]


def test_no_password_in_task_output(shop, source_db, target_db, capsys):
    ids = _ids(shop)
    password = source_db.cluster.password
    FdwSetupOperator(task_id="setup", ddl_path=shop["ddl"], **ids).execute({})
    TableMigrateOperator(task_id="users", table="users", **ids).execute({})
    with pytest.raises(Exception) as info:  # the target server cannot reach the source at that port
        FdwSetupOperator(task_id="setup", fdw_port=1, fdw_server_name="unreachable", **ids).execute({})
    out = capsys.readouterr()
    assert "unreachable" in str(info.value) or "could not" in str(info.value)
    for text in (out.out, out.err, str(info.value)):
        assert password not in text
    assert target_db.execute("SELECT count(*) FROM users") == [(490,)]


def test_finalize_fails_naming_the_constraint_and_the_offending_key(shop, source_db, target_db):
    """posts 50, 100, ... point at users the mapping's 'where' filters out: the data violates the FK."""
    source_db.execute("UPDATE posts SET user_id = 50 WHERE id = 7")
    ids = _ids(shop)
    FdwSetupOperator(task_id="setup", ddl_path=shop["ddl"], **ids).execute({})
    PrepareLoadOperator(task_id="prepare", **ids).execute({})
    for table in ("posts", "tags", "users"):  # the order does not matter once the keys are set aside
        TableMigrateOperator(task_id=table, table=table, **ids).execute({})
    with raises_step(VerificationError) as info:
        FinalizeLoadOperator(task_id="finalize", **ids).execute({})
    assert "public.posts.posts_user_fk" in str(info.value) and "Key (user_id)=(50)" in str(info.value)
    with raises_step(VerificationError, match="posts_user_fk is NOT VALID"):
        VerifyOperator(task_id="verify", **ids).execute({})
    # fixing the data and re-running the table, then finalize, completes the migration
    source_db.execute("UPDATE posts SET user_id = 1 WHERE id = 7")
    TableMigrateOperator(task_id="posts", table="posts", **ids).execute({})
    assert FinalizeLoadOperator(task_id="finalize", **ids).execute({})["validated"] == [
        "public.posts.posts_user_fk"
    ]
    assert VerifyOperator(task_id="verify", **ids).execute({})["ok"]


def test_progress_is_logged_and_counts_returned(shop, target_db, capsys):
    """A long copy logs rows and rows/s while it runs; the task returns its counts and timings."""
    (shop["tmp"] / "slow.yaml").write_text(
        "tags:\n  columns:\n    name:\n      transform: \"name || (SELECT '' FROM pg_sleep(CASE WHEN id = 10 "
        'THEN 2.5 ELSE 0 END))"\n'
    )
    ids = dict(_ids(shop), mapping_path=str(shop["tmp"] / "slow.yaml"))
    FdwSetupOperator(task_id="setup", ddl_path=shop["ddl"], **ids).execute({})
    capsys.readouterr()
    result = TableMigrateOperator(
        task_id="tags", table="tags", strategy="copy", progress_interval=0.5, **ids
    ).execute({})
    out = capsys.readouterr().out
    assert "tags: 9 rows, " in out and " MB copied (" in out and "rows/s" in out, out[-2000:]
    assert result["rows"] == 10 and result["seconds"] >= 2.5 and result["rows_per_second"] > 0
    assert result["copy_format"] == "binary" and result["strategy"] == "copy"


def test_dry_runs_change_nothing(shop, source_db, target_db, pg_target, airflow_conn):
    ids = _ids(shop)
    missing = f"tgt_never_{secrets.token_hex(4)}"
    dry_target = airflow_conn("op_target_missing", pg_target, dbname=missing)
    report = FdwSetupOperator(
        task_id="setup", ddl_path=shop["ddl"], dry_run=True, **dict(ids, target_conn_id=dry_target)
    ).execute({})
    assert report["dry_run"] and pg_target.execute(
        "SELECT count(*) FROM pg_database WHERE datname = %s", (missing,)
    ) == [(0,)]
    FdwSetupOperator(task_id="setup", ddl_path=shop["ddl"], **ids).execute({})
    target_db.execute("INSERT INTO tags VALUES (1, 'kept')")
    result = TableMigrateOperator(task_id="tags", table="tags", strategy="copy", dry_run=True, **ids).execute(
        {}
    )
    assert result["dry_run"] and result["rows"] == 0
    assert result["statements"][0].startswith(
        'COPY (SELECT "id"::integer, "name"::text FROM "public"."tags")'
    )
    assert target_db.execute("SELECT * FROM tags") == [(1, "kept")]
