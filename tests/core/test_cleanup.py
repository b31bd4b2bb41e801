"""Cleanup (core.cleanup) on a real target: it removes exactly what setup made, never cascades into
a user's objects, keeps an extension it did not create, and never needs the source."""

from __future__ import annotations

import pytest

from airflow_provider_confiture.core.db import state
from airflow_provider_confiture.core.errors import CleanupError
from airflow_provider_confiture.core.link import cleanup
from airflow_provider_confiture.core.loading import foreign_keys
from airflow_provider_confiture.core.names import QualifiedName
from tests.support.engine import link_up, rows

LINK_STATE = {
    "extension": "SELECT count(*) FROM pg_extension WHERE extname = 'postgres_fdw'",
    "servers": "SELECT srvname FROM pg_foreign_server ORDER BY 1",
    "user_mappings": "SELECT srvname, usename FROM pg_user_mappings ORDER BY 1, 2",
    "foreign_tables": "SELECT c.oid::regclass::text FROM pg_foreign_table f JOIN pg_class c ON c.oid = f.ftrelid "
    "ORDER BY 1",
    "schemas": "SELECT nspname FROM pg_namespace WHERE nspname IN ('old_schema', 'old_schema_legacy', '_confiture') "
    "ORDER BY 1",
    "views": "SELECT table_schema, table_name FROM information_schema.views WHERE table_schema = 'public'",
}


def link_state(db) -> dict[str, list]:
    return {name: rows(db, query) for name, query in LINK_STATE.items()}


@pytest.fixture
def linked(source_db, target_db, connect):
    source_db.execute(
        "CREATE SCHEMA legacy; CREATE TABLE legacy.old_users (id int PRIMARY KEY, full_name text);"
        "CREATE TABLE tags (id int PRIMARY KEY, name text);"
    )
    target_db.execute(
        "CREATE TABLE users (id int PRIMARY KEY, full_name text);"
        "CREATE TABLE tags (id int PRIMARY KEY, name text);"
    )
    return source_db, target_db


def _setup(connect, source_db, target_db):
    src, tgt = connect(source_db), connect(target_db)
    link_up(src, tgt, source_db, "users:\n  source_table: legacy.old_users\n")
    return tgt


def test_cleanup_removes_everything_setup_created(linked, connect):
    source_db, target_db = linked
    tgt = _setup(connect, source_db, target_db)
    made = link_state(target_db)
    assert made["extension"] == [(1,)] and made["servers"] == [("confiture_source",)]
    assert made["foreign_tables"] == [("old_schema.tags",), ("old_schema_legacy.old_users",)]
    assert made["schemas"] == [("_confiture",), ("old_schema",), ("old_schema_legacy",)]
    assert len(made["user_mappings"]) == 1

    report = cleanup(tgt)
    assert report["extension"] == "dropped" and report["server"] == "confiture_source"
    assert sorted(report["schemas"]) == ["old_schema", "old_schema_legacy"]
    assert link_state(target_db) == {
        "extension": [(0,)],
        "servers": [],
        "user_mappings": [],
        "foreign_tables": [],
        "schemas": [],
        "views": [],
    }
    # the migrated tables are untouched; a second cleanup is harmless
    assert rows(target_db, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(2,)]
    again = cleanup(tgt)
    assert again["foreign_tables"] == [] and again["extension"] == "kept"


def test_pre_existing_extension_and_schema_are_kept(linked, connect):
    source_db, target_db = linked
    target_db.execute("CREATE EXTENSION postgres_fdw; CREATE SCHEMA old_schema;")
    tgt = _setup(connect, source_db, target_db)
    report = cleanup(tgt)
    assert report["extension"] == "kept" and report["schemas"] == ["old_schema_legacy"]
    after = link_state(target_db)
    assert after["extension"] == [(1,)] and after["schemas"] == [("old_schema",)]
    assert after["servers"] == [] and after["foreign_tables"] == [] and after["user_mappings"] == []


def test_extension_kept_while_another_server_uses_it(linked, connect):
    source_db, target_db = linked
    tgt = _setup(connect, source_db, target_db)
    target_db.execute("CREATE SERVER someone_elses FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host 'x')")
    report = cleanup(tgt)
    assert report["extension"] == "kept"
    assert link_state(target_db)["servers"] == [("someone_elses",)]


def test_refuses_when_a_user_view_depends_on_a_foreign_table(linked, connect):
    source_db, target_db = linked
    tgt = _setup(connect, source_db, target_db)
    target_db.execute("CREATE VIEW legacy_report AS SELECT count(*) AS n FROM old_schema_legacy.old_users")
    before = link_state(target_db)
    with pytest.raises(CleanupError) as info:
        cleanup(tgt)
    message = str(info.value)
    assert "view legacy_report" in message and "old_schema_legacy.old_users" in message
    assert "Drop or rewrite them yourself" in message
    assert link_state(target_db) == before  # nothing changed, the view included
    target_db.execute("DROP VIEW legacy_report")
    cleanup(tgt)
    assert link_state(target_db)["servers"] == []


def test_refuses_while_foreign_keys_are_set_aside(linked, connect):
    source_db, target_db = linked
    target_db.execute(
        "CREATE TABLE posts (id int PRIMARY KEY, user_id int CONSTRAINT posts_user_fk REFERENCES users)"
    )
    tgt = _setup(connect, source_db, target_db)
    foreign_keys.defer_foreign_keys(tgt, [QualifiedName("public", "users")])
    before = link_state(target_db)
    with pytest.raises(CleanupError, match="public.posts.posts_user_fk are still set aside"):
        cleanup(tgt)
    assert link_state(target_db) == before


def test_cleanup_never_needs_the_source(linked, connect, pg_source):
    """The source database can be gone (decommissioned) when cleanup runs."""
    source_db, target_db = linked
    tgt = _setup(connect, source_db, target_db)
    assert state.get_setting(tgt, "fdw_server") == "confiture_source"
    tgt.commit()
    pg_source.drop_database(source_db.dbname)
    report = cleanup(tgt)
    assert len(report["foreign_tables"]) == 2 and link_state(target_db)["servers"] == []
