"""The example DAG in dags/: it parses cleanly (no connection needed), and migrates the seeded example
shop end to end on the two real clusters, every table verified equal."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DAGS = REPO / "dags"
EXAMPLE = DAGS / "example_schema_to_schema"
DAG_ID = "example_schema_to_schema"
TABLES = ["categories", "order_items", "orders", "products", "users"]
SEED_ROWS = 2_000  # order_line; the other tables scale with it (seed_demo.Sizes)


def load_seeder():
    """scripts/seed_demo.py (a script, not a package module)."""
    if "seed_demo" in sys.modules:
        return sys.modules["seed_demo"]
    spec = importlib.util.spec_from_file_location("seed_demo", REPO / "scripts" / "seed_demo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["seed_demo"] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def example_dagbag(monkeypatch):
    """The dags/ folder parsed the way the dag-processor does, with the example's connections undefined."""
    from airflow.dag_processing.dagbag import DagBag

    for conn_id in ("CONFITURE_SOURCE", "CONFITURE_TARGET"):
        monkeypatch.delenv(f"AIRFLOW_CONN_{conn_id}", raising=False)
    return DagBag(str(DAGS), bundle_name="dags-folder")


def test_example_dag_imports_without_connections_and_has_the_expected_tasks(example_dagbag):
    assert example_dagbag.import_errors == {}
    assert {DAG_ID, f"{DAG_ID}_cleanup"} <= set(example_dagbag.dags)
    dag = example_dagbag.dags[DAG_ID]
    assert dag.fileloc == str(DAGS / "example_schema_to_schema.py")
    assert set(dag.task_dict) == {
        "setup", "analyze", "prepare", "table.migrate", "table.verify", "finalize", "summary",
    }  # fmt: skip
    assert dag.schedule is None  # runs only when triggered
    setup = dag.task_dict["setup"]
    assert (setup.source_conn_id, setup.target_conn_id) == ("confiture_source", "confiture_target")
    # relative paths in the DAG file resolve against the DAG file, not the current directory
    assert Path(setup.mapping_path) == EXAMPLE / "mapping.yaml"
    assert Path(setup.ddl_path) == EXAMPLE / "ddl"
    assert "example" in dag.tags
    assert set(dag.params.keys()) >= {"tables", "strategy", "copy_threshold_rows", "dry_run", "skip_checksum"}

    cleanup = example_dagbag.dags[f"{DAG_ID}_cleanup"]
    assert cleanup.schedule is None  # never scheduled: trigger it by hand after cutover
    assert set(cleanup.task_dict) == {"cleanup"}


def test_example_mapping_and_files_are_consistent():
    from airflow_provider_confiture.core.planning.mapping import load_mapping

    mapping = load_mapping(EXAMPLE / "mapping.yaml")
    assert [t.key for t in mapping.tables] == ["users", "products", "orders", "order_items"]
    assert mapping.entry("users").source_table.name == "tb_user"
    assert mapping.entry("users").ignored_sources() == {"legacy_flags"}
    assert mapping.entry("categories") is None  # mapped by name, without an entry
    assert sorted(p.name for p in (EXAMPLE / "ddl").glob("*.sql")) == ["01_tables.sql", "02_indexes.sql"]
    seeder = load_seeder()
    assert seeder.OLD_SCHEMA_SQL == EXAMPLE / "old_schema.sql"
    sizes = seeder.Sizes.for_rows(SEED_ROWS)
    assert sizes.as_dict() == {
        "categories": 12,
        "tb_user": 133,
        "product": 20,
        "orders": 666,
        "order_line": 2000,
    }


@pytest.fixture
def seeded_example(source_db, target_db, airflow_conn):
    """The example's old database seeded small, and the example's connections pointing at the clusters."""
    with source_db.connect() as conn:
        counts = load_seeder().seed(conn, SEED_ROWS)
    airflow_conn("confiture_source", source_db)
    airflow_conn("confiture_target", target_db)
    return counts


def _return_values(run, task_id: str) -> list:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == run.dag_id, XComModel.run_id == run.run_id,
                XComModel.task_id == task_id, XComModel.key == "return_value",
            ).order_by(XComModel.map_index)
        ).all()  # fmt: skip
        return [XComModel.deserialize_value(x) for x in rows]


def test_example_dag_migrates_the_seeded_shop_end_to_end(seeded_example, source_db, target_db, run_dag):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(DAGS / "example_schema_to_schema.py"), bundle_name="dags-folder")
    assert bag.import_errors == {}
    dag = bag.dags[DAG_ID]
    # A threshold between the table sizes: orders and order_items stream by COPY, the others go through FDW.
    run = run_dag(dag, run_conf={"copy_threshold_rows": 500})
    assert run.state == "success", run.state

    # small tables travel together: a unit's XCom holds each of its tables' results
    results = [
        t for r in _return_values(run, "table.migrate") for t in (r["tables"] if "tables" in r else [r])
    ]
    loads = {r["key"]: r for r in results}
    assert {k: (r["rows"], r["strategy"]) for k, r in loads.items()} == {
        "categories": (12, "fdw"),
        "users": (133, "fdw"),
        "products": (20, "fdw"),
        "orders": (666, "copy"),
        "order_items": (2000, "copy"),
    }
    [summary] = _return_values(run, "summary")
    assert summary["ok"] is True and summary["foreign_key_problems"] == []
    checks = {c["label"]: c for c in summary["tables"]}
    assert sorted(checks) == TABLES
    for label, check in checks.items():
        assert check["status"] == "match", (label, check)
        assert check["source_checksum"] == check["target_checksum"] is not None, label
        assert check["source_rows"] == check["target_rows"] > 0, label

    # The refactor really happened (the verify above compares against the mapping, so check the mapping too).
    tgt = target_db.execute
    assert tgt("SELECT count(*) FROM users") == [(seeded_example["tb_user"],)]
    assert tgt("SELECT count(*) FROM order_items") == [(seeded_example["order_line"],)]
    # computed display_name: full name, else nickname, else login (user5: blank full name, no nickname)
    assert tgt(
        "SELECT id, login_name, display_name, email FROM users WHERE id IN (1, 5, 10, 30) ORDER BY id"
    ) == [
        (1, "user1", "Alan Hopper", "alan.1@example.com"),
        (5, "user5", "user5", "edsger.5@example.com"),
        (10, "user10", "user10", "jean.10@example.com"),
        (30, "user30", "nick30", "jean.30@example.com"),
    ]
    # text settings -> jsonb ('' and NULL -> {}); timestamp -> timestamptz read as UTC
    assert tgt("SELECT settings, created_at::text FROM users WHERE id IN (1, 2) ORDER BY id") == [
        ({}, "2019-01-01 00:37:11+00"),
        ({"theme": "light", "newsletter": False}, "2019-01-01 01:14:22+00"),
    ]
    # cents -> numeric(12,2), in products and order_items; line_total computed by the target
    src_cents = source_db.execute("SELECT sum(price_cents) FROM product")[0][0]
    assert tgt("SELECT sum(price) * 100 FROM products")[0][0] == src_cents
    assert tgt("SELECT count(*) FROM order_items WHERE line_total <> quantity * unit_price") == [(0,)]
    # status codes -> words
    assert {s for (s,) in tgt("SELECT DISTINCT status FROM orders")} == {
        "new",
        "paid",
        "shipped",
        "cancelled",
    }
    # foreign keys in force and validated; the unique index on lower(login_name) rebuilt
    assert tgt(
        "SELECT count(*), bool_and(convalidated) FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace"
    ) == [(4, True)]
    assert tgt(
        "SELECT indexdef LIKE '%UNIQUE%lower(login_name)%' FROM pg_indexes WHERE indexname = 'users_login_name_key'"
    ) == [(True,)]
    # identity (GENERATED ALWAYS) advanced past the copied ids: the application's next insert works
    new_id = tgt(
        "INSERT INTO users (login_name, display_name, email) VALUES ('new', 'New', 'new@example.com') RETURNING id"
    )
    assert new_id == [(seeded_example["tb_user"] + 1,)]
    # the source was only read
    assert source_db.execute("SELECT count(*) FROM tb_user") == [(seeded_example["tb_user"],)]
