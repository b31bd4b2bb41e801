"""Setup (target database, DDL once, postgres_fdw link) on the two real clusters, through
FdwSetupOperator and real Airflow connections: creating the database, applying DDL once, re-running,
switching sources, fetch_size, a non-superuser target role, separate FDW credentials, a host override."""

from __future__ import annotations

import secrets

import pytest
from psycopg import sql

from airflow_provider_confiture.core.errors import MigrationError, SetupError
from airflow_provider_confiture.operators import (
    CleanupOperator,
    FdwSetupOperator,
    TableMigrateOperator,
    VerifyOperator,
)
from tests.support.engine import rows, table_rows
from tests.support.steps import raises_step

SOURCE = """
CREATE TABLE users (id int PRIMARY KEY, name text);
INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, 50) g;
CREATE TABLE tags (id int PRIMARY KEY, name text);
INSERT INTO tags SELECT g, 'tag ' || g FROM generate_series(1, 20) g;
"""
TARGET = """
CREATE TABLE users (id int PRIMARY KEY, name text);
CREATE TABLE tags (id int PRIMARY KEY, name text);
"""


def server_options(db, server: str = "confiture_source") -> dict[str, str]:
    got = rows(db, "SELECT srvoptions FROM pg_foreign_server WHERE srvname = %s", (server,))
    assert got, f"no foreign server {server}"
    return dict(item.split("=", 1) for item in got[0][0])


def user_mapping_options(db) -> dict[str, str]:
    got = rows(db, "SELECT umoptions FROM pg_user_mappings WHERE srvname = 'confiture_source'")
    assert len(got) == 1
    return dict(item.split("=", 1) for item in got[0][0])


@pytest.fixture
def make_role():
    """``make_role(cluster, {dbname: grants}) -> (name, password)``; ``{role}``/``{db}`` are filled in.

    Roles are cluster-wide, so each is dropped (with what it owns) at teardown."""
    made: list[tuple] = []

    def make(cluster, grants: dict[str, str] | None = None, password: bool = True):
        name = f"role_{secrets.token_hex(4)}"
        pw = secrets.token_urlsafe(12) if password else None
        stmt = sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(pw))
        cluster.execute(stmt)
        dbs = list((grants or {}).keys())
        for dbname, statements in (grants or {}).items():
            stmt = sql.SQL(statements).format(role=sql.Identifier(name), db=sql.Identifier(dbname))
            cluster.execute(stmt, dbname=dbname)
        made.append((cluster, name, dbs))
        return name, pw

    yield make
    for cluster, name, dbs in made:
        for dbname in dbs:
            try:
                cluster.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)), dbname=dbname)
            except Exception:  # noqa: BLE001 - the database may be gone already
                pass
        cluster.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture
def conns(source_db, target_db, airflow_conn):
    source_db.execute(SOURCE)
    return {
        "source_conn_id": airflow_conn("setup_source", source_db),
        "target_conn_id": airflow_conn("setup_target", target_db),
    }


def _ddl_dir(tmp_path):
    ddl = tmp_path / "ddl"
    (ddl / "a").mkdir(parents=True)
    (ddl / "b" / "sub").mkdir(parents=True)
    # each file depends on the previous ones: only the sorted, recursive order works
    (ddl / "00_base.sql").write_text("CREATE TABLE users (id int PRIMARY KEY);")
    (ddl / "a" / "01_more.sql").write_text(
        "ALTER TABLE users ADD COLUMN name text; CREATE TABLE tags (id int PRIMARY KEY, name text);"
    )
    (ddl / "b" / "sub" / "02_index.sql").write_text("CREATE INDEX users_name_idx ON users (name);")
    (ddl / "README.md").write_text("not SQL")
    (ddl / "99_old.sql.bak").write_text("this is not applied")
    return ddl


def test_creates_missing_database_and_applies_ddl_once(source_db, pg_target, airflow_conn, tmp_path, request):
    source_db.execute(SOURCE)
    dbname = f"tgt_created_{secrets.token_hex(4)}"
    request.addfinalizer(lambda: pg_target.drop_database(dbname))
    ids = {
        "source_conn_id": airflow_conn("setup_source", source_db),
        "target_conn_id": airflow_conn("setup_target", pg_target, dbname=dbname),
    }
    ddl = _ddl_dir(tmp_path)
    setup = FdwSetupOperator(task_id="setup", ddl_path=str(ddl), **ids)
    first = setup.execute({})
    assert first["database"] == "created"
    assert first["ddl"] == {
        "applied": ["00_base.sql", "a/01_more.sql", "b/sub/02_index.sql"],
        "already_applied": [],
    }
    assert (
        first["server"] == "created"
        and first["user_mapping"] == "created"
        and first["extension"] == "created"
    )
    assert sorted(first["foreign_tables"]["old_schema"]["imported"]) == ["tags", "users"]
    assert pg_target.execute(
        "SELECT count(*) FROM pg_indexes WHERE indexname = 'users_name_idx'", dbname=dbname
    ) == [(1,)]

    TableMigrateOperator(task_id="m", table="users", **ids).execute({})
    loaded = pg_target.execute("SELECT count(*) FROM users", dbname=dbname)

    second = setup.execute({})  # re-running is harmless
    assert second["database"] == "exists"
    assert second["ddl"] == {
        "applied": [],
        "already_applied": ["00_base.sql", "a/01_more.sql", "b/sub/02_index.sql"],
    }
    assert second["server"] == "unchanged" and second["user_mapping"] == "unchanged"
    assert second["foreign_tables"]["old_schema"]["unchanged"] == ["tags", "users"]
    assert pg_target.execute("SELECT count(*) FROM users", dbname=dbname) == loaded == [(50,)]

    # a new file is applied next; a failing one rolls the whole run back
    (ddl / "c_03_new.sql").write_text("CREATE TABLE extra (id int);")
    (ddl / "c_04_bad.sql").write_text("CREATE TABLE broken (id nosuchtype);")
    with raises_step(SetupError, match="DDL file 'c_04_bad.sql' failed: type \"nosuchtype\" does not exist"):
        setup.execute({})
    assert pg_target.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'extra'", dbname=dbname) == [
        (0,)
    ]
    (ddl / "c_04_bad.sql").unlink()
    assert setup.execute({})["ddl"]["applied"] == ["c_03_new.sql"]

    # a file changed after it was applied is refused, naming it
    (ddl / "a" / "01_more.sql").write_text("ALTER TABLE users ADD COLUMN name text; -- edited")
    with raises_step(SetupError, match="DDL file 'a/01_more.sql' changed after it was applied"):
        setup.execute({})


def test_rerun_against_another_source_updates_the_server(
    conns, source_db, target_db, pg_source, airflow_conn, request
):
    target_db.execute(TARGET)
    other = pg_source.create_database(f"src_other_{secrets.token_hex(4)}")
    request.addfinalizer(lambda: pg_source.drop_database(other))
    pg_source.execute(SOURCE.replace("'user '", "'other user '"), dbname=other)

    FdwSetupOperator(task_id="setup", **conns).execute({})
    opts = server_options(target_db)
    assert opts["dbname"] == source_db.dbname and opts["port"] == str(source_db.port)
    TableMigrateOperator(task_id="m", table="users", strategy="fdw", **conns).execute({})
    assert rows(target_db, "SELECT name FROM users WHERE id = 1") == [("user 1",)]

    airflow_conn("setup_source", pg_source, dbname=other)  # the Airflow connection now names another database
    report = FdwSetupOperator(task_id="setup", **conns).execute({})
    assert report["server"] == "updated" and report["fdw_target"].endswith(f"/{other}")
    assert server_options(target_db)["dbname"] == other
    for strategy in ("fdw", "copy"):
        TableMigrateOperator(task_id="m", table="users", strategy=strategy, **conns).execute({})
        assert rows(target_db, "SELECT name FROM users WHERE id = 1") == [("other user 1",)]
    assert rows(target_db, "SELECT name FROM old_schema.users WHERE id = 2") == [("other user 2",)]


def test_server_is_fast_and_read_only(conns, target_db):
    target_db.execute(TARGET)
    FdwSetupOperator(task_id="setup", **conns).execute({})
    opts = server_options(target_db)
    assert int(opts["fetch_size"]) >= 10_000
    assert opts["options"] == "-c default_transaction_read_only=on"
    with pytest.raises(Exception, match="read-only transaction"):
        target_db.execute("INSERT INTO old_schema.tags VALUES (100, 'written through the link')")
    # fetch_size is configurable, and a re-run brings it up to date
    assert FdwSetupOperator(task_id="setup", fetch_size=50_000, **conns).execute({})["server"] == "updated"
    assert server_options(target_db)["fetch_size"] == "50000"


def test_fdw_host_override(conns, target_db):
    target_db.execute(TARGET)
    report = FdwSetupOperator(task_id="setup", fdw_host="localhost", **conns).execute({})
    assert server_options(target_db)["host"] == "localhost" and report["fdw_target"].startswith("localhost:")
    TableMigrateOperator(task_id="m", table="tags", strategy="fdw", **conns).execute({})
    assert rows(target_db, "SELECT count(*) FROM tags") == [(20,)]
    FdwSetupOperator(task_id="setup", **conns).execute({})  # back to the connection's host
    assert server_options(target_db)["host"] == "127.0.0.1"


def test_fdw_credentials_from_a_separate_read_only_connection(
    conns, source_db, target_db, airflow_conn, make_role
):
    target_db.execute(TARGET + "CREATE TABLE secret (id int PRIMARY KEY);")
    source_db.execute("CREATE TABLE secret (id int PRIMARY KEY); INSERT INTO secret VALUES (1);")
    reader, password = make_role(
        source_db.cluster,
        {
            source_db.dbname: (
                "GRANT CONNECT ON DATABASE {db} TO {role};"
                "GRANT USAGE ON SCHEMA public TO {role}; GRANT SELECT ON users, tags TO {role};"
            )
        },
    )
    fdw_conn = airflow_conn("setup_fdw_ro", source_db, user=reader, password=password)
    report = FdwSetupOperator(task_id="setup", fdw_conn_id=fdw_conn, **conns).execute({})
    assert report["user_mapping"] == "created"
    mapping = user_mapping_options(target_db)
    assert mapping["user"] == reader and mapping["password"] == password
    TableMigrateOperator(task_id="m", table="tags", strategy="fdw", **conns).execute({})
    assert table_rows(target_db, "tags") == table_rows(source_db, "tags")
    # the link really runs as the read-only role: a table it may not read fails through FDW...
    with raises_step(MigrationError, match="permission denied for table secret"):
        TableMigrateOperator(task_id="m", table="secret", strategy="fdw", **conns).execute({})
    # ... while COPY reads with the source connection's own role
    TableMigrateOperator(task_id="m", table="secret", strategy="copy", **conns).execute({})
    assert rows(target_db, "SELECT count(*) FROM secret") == [(1,)]
    # back to the source connection's credentials
    assert FdwSetupOperator(task_id="setup", **conns).execute({})["user_mapping"] == "updated"
    assert user_mapping_options(target_db)["user"] == source_db.cluster.superuser


def _migrator(make_role, target_db, extension: bool = True, usage: bool = True):
    grants = "GRANT CREATE ON DATABASE {db} TO {role}; GRANT CREATE ON SCHEMA public TO {role};"
    if extension:
        grants += "CREATE EXTENSION IF NOT EXISTS postgres_fdw;"
    if usage:
        grants += "GRANT USAGE ON FOREIGN DATA WRAPPER postgres_fdw TO {role};"
    return make_role(target_db.cluster, {target_db.dbname: grants})


def test_non_superuser_target_role_runs_the_whole_migration(
    conns, source_db, target_db, airflow_conn, make_role, tmp_path
):
    role, password = _migrator(make_role, target_db)
    ids = dict(
        conns, target_conn_id=airflow_conn("setup_target_role", target_db, user=role, password=password)
    )
    (tmp_path / "ddl.sql").write_text(TARGET)
    report = FdwSetupOperator(task_id="setup", ddl_path=str(tmp_path / "ddl.sql"), **ids).execute({})
    assert report["extension"] == "present" and report["user_mapping"] == "created"
    assert rows(target_db, "SELECT tableowner FROM pg_tables WHERE tablename = 'users'") == [(role,)]
    TableMigrateOperator(task_id="m1", table="users", strategy="copy", **ids).execute({})
    TableMigrateOperator(task_id="m2", table="tags", strategy="fdw", **ids).execute({})
    assert VerifyOperator(task_id="v", **ids).execute({})["ok"]
    cleaned = CleanupOperator(task_id="c", target_conn_id=ids["target_conn_id"]).execute({})
    assert cleaned["extension"] == "kept"  # the admin created it; cleanup leaves it
    assert rows(target_db, "SELECT count(*) FROM pg_foreign_server") == [(0,)]
    assert rows(target_db, "SELECT count(*) FROM pg_extension WHERE extname = 'postgres_fdw'") == [(1,)]


def test_non_superuser_target_role_is_told_what_is_missing(
    conns, source_db, target_db, airflow_conn, make_role
):
    target_db.execute(TARGET)
    role, password = _migrator(make_role, target_db, extension=False, usage=False)
    ids = dict(
        conns, target_conn_id=airflow_conn("setup_target_role", target_db, user=role, password=password)
    )
    with raises_step(SetupError) as info:
        FdwSetupOperator(task_id="setup", **ids).execute({})
    assert f"role {role!r} cannot create extension postgres_fdw" in str(info.value)
    assert (
        f"CREATE EXTENSION postgres_fdw; GRANT USAGE ON FOREIGN DATA WRAPPER postgres_fdw TO {role};"
        in str(info.value)
    )

    target_db.execute("CREATE EXTENSION postgres_fdw")
    with raises_step(SetupError) as info:
        FdwSetupOperator(task_id="setup", **ids).execute({})
    assert "permission denied for foreign-data wrapper postgres_fdw" in str(info.value)
    assert f"GRANT USAGE ON FOREIGN DATA WRAPPER postgres_fdw TO {role}" in str(info.value)

    target_db.execute(
        sql.SQL("GRANT USAGE ON FOREIGN DATA WRAPPER postgres_fdw TO {}").format(sql.Identifier(role))
    )
    # the FDW credentials have no password: a non-superuser's user mapping needs one
    nopw = airflow_conn("setup_fdw_nopw", source_db, user=source_db.cluster.superuser, password="")
    with raises_step(SetupError) as info:
        FdwSetupOperator(task_id="setup", fdw_conn_id=nopw, **ids).execute({})
    message = str(info.value)
    assert f"target role {role!r} is not a superuser" in message
    assert "requires a password in the user mapping" in message and "fdw_conn_id" in message
    assert rows(target_db, "SELECT count(*) FROM pg_user_mappings") == [(0,)]
    # with the password, it works
    FdwSetupOperator(task_id="setup", **ids).execute({})
    assert rows(target_db, "SELECT count(*) FROM pg_user_mappings") == [(1,)]


def test_rerun_refreshes_a_foreign_table_whose_source_changed(conns, source_db, target_db):
    target_db.execute(TARGET + "ALTER TABLE tags ADD COLUMN color text;")
    FdwSetupOperator(task_id="setup", **conns).execute({})
    source_db.execute("ALTER TABLE tags ADD COLUMN color text; UPDATE tags SET color = 'red';")
    report = FdwSetupOperator(task_id="setup", **conns).execute({})
    assert report["foreign_tables"]["old_schema"] == {
        "imported": [],
        "refreshed": ["tags"],
        "unchanged": ["users"],
    }
    TableMigrateOperator(task_id="m", table="tags", strategy="fdw", **conns).execute({})
    assert rows(target_db, "SELECT DISTINCT color FROM tags") == [("red",)]
    # a user's view on the stale foreign table: setup refuses to drop it, and says what to do
    target_db.execute("CREATE VIEW tag_names AS SELECT name FROM old_schema.tags")
    source_db.execute("ALTER TABLE tags ADD COLUMN weight int")
    with raises_step(SetupError, match="old_schema.tags no longer matches .* other objects depend on it"):
        FdwSetupOperator(task_id="setup", **conns).execute({})
    assert rows(target_db, "SELECT count(*) FROM tag_names") == [(20,)]
