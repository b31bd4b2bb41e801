"""Helpers shared by the engine tests: driver connections, a link, plan and setup shortcuts.

The engine works on plain DB-API connections of either driver, so tests open them directly, through
the ``connect`` fixture (:mod:`tests.fixtures.engine`): ``connect(db, "pg3")`` (psycopg 3) or
``connect(db, "pg2")`` (psycopg2), both in transaction mode as the operators hand them out.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
import psycopg2
from psycopg import sql

from airflow_provider_confiture.core.db import dbapi
from airflow_provider_confiture.core.link import fdw
from airflow_provider_confiture.core.planning import plan_migration
from airflow_provider_confiture.core.planning.mapping import Mapping, parse_mapping_text
from airflow_provider_confiture.core.planning.plan import PlanOptions, PlanResult, TablePlan

DRIVERS = ("pg3", "pg2")


def open_connection(
    db: Any, driver: str = "pg3", *, user: str | None = None, password: str | None = None
) -> Any:
    """A transaction-mode connection of ``driver`` ("pg3" or "pg2") to a ClusterDatabase (or a libpq
    connection string), with the session settings the operators set."""
    info = db if isinstance(db, str) else db.conninfo(user=user, password=password)
    if driver == "pg3":
        conn = psycopg.connect(info, autocommit=False)
    elif driver == "pg2":
        conn = psycopg2.connect(info)
    else:
        raise ValueError(driver)
    dbapi.set_session(conn, dict(dbapi.DETERMINISTIC_SETTINGS))
    conn.commit()
    return conn


def link_to(source_db: Any, **overrides: Any) -> fdw.FdwLink:
    """The FDW link the target server uses to reach ``source_db`` (superuser credentials by default)."""
    args = {
        "host": source_db.host,
        "port": source_db.port,
        "dbname": source_db.dbname,
        "user": source_db.cluster.superuser,
        "password": source_db.cluster.password,
    }
    args.update(overrides)
    return fdw.FdwLink(**args)


def as_mapping(mapping: str | Mapping | None) -> Mapping:
    if mapping is None:
        return Mapping((), None)
    if isinstance(mapping, Mapping):
        return mapping
    return parse_mapping_text(mapping, "mapping.yaml")


def plans(
    source_conn: Any,
    target_conn: Any,
    mapping: str | Mapping | None = None,
    options: PlanOptions | None = None,
    tables: list[str] | None = None,
) -> PlanResult:
    result, _ = plan_migration(
        source_conn, target_conn, as_mapping(mapping), options or PlanOptions(), tables
    )
    return result


def plan_for(
    source_conn: Any,
    target_conn: Any,
    table: str,
    mapping: str | Mapping | None = None,
    options: PlanOptions | None = None,
) -> TablePlan:
    return plans(source_conn, target_conn, mapping, options, [table]).get(table)


def link_up(
    source_conn: Any,
    target_conn: Any,
    source_db: Any,
    mapping: str | Mapping | None = None,
    options: PlanOptions | None = None,
    **link_overrides: Any,
) -> PlanResult:
    """Run the setup step's link part (extension, server, user mapping, foreign tables) for ``mapping``."""
    options = options or PlanOptions()
    result, source_catalog = plan_migration(source_conn, target_conn, as_mapping(mapping), options)
    fdw.setup_link(target_conn, link_to(source_db, **link_overrides), result.plans, source_catalog, options)
    return result


def as_the_migration(db: Any, statement: str) -> None:
    """Run ``statement`` on ``db`` as one of the migration's own writes (a load that went wrong), which
    the target guard does not count: for tests of a target that is wrong without anyone writing to it.
    A write without this is an outsider's (the application's), reported as ``target written``."""
    db.execute(f"SELECT set_config('confiture.writer', 'on', true); {statement}")


def rows(db: Any, query: str | sql.Composable, params: Any = None) -> list[tuple]:
    return db.execute(query, params) or []


def table_rows(db: Any, table: str, order_by: str = "id") -> list[tuple]:
    """Every row of ``table`` as text, ordered (for exact before/after comparisons)."""
    return rows(
        db,
        sql.SQL("SELECT t::text FROM {} t ORDER BY {}").format(
            sql.Identifier(table), sql.Identifier(order_by)
        ),
    )


def wait_for_stats(db: Any, table: str, inserts: int, timeout: float = 10.0) -> None:
    """Wait until the statistics system has counted ``inserts`` inserts on ``table``.

    A backend reports its counters when it exits, a moment after its client disconnected; verify's
    drift detection compares these counters, so tests wait for them to settle first.
    """
    deadline = time.monotonic() + timeout
    while True:
        got = rows(
            db, "SELECT coalesce(sum(n_tup_ins), 0) FROM pg_stat_all_tables WHERE relname = %s", (table,)
        )
        if got and got[0][0] >= inserts:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"statistics never showed {inserts} inserts on {table}: {got}")
        time.sleep(0.05)


#: Tables holding every kind of value a migration must carry unchanged (both sides use this DDL).
RICH_DDL = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy', 'très content');
CREATE TABLE rich (id int PRIMARY KEY, t text, j jsonb, n numeric(30,4), ts timestamptz, b bytea,
                   a int[], ta text[], f float8, d date, u uuid, iv interval);
CREATE TABLE moods (id int PRIMARY KEY, m mood, ms mood[], note text);
"""

RICH_DATA = r"""
INSERT INTO rich
SELECT g,
       CASE WHEN g % 7 = 0 THEN NULL
            WHEN g % 5 = 0 THEN E'tab\there\nnew line \\ backslash ''quote'' "dq" \\N'
            ELSE 'héllo ✓ 日本語 🎉 ' || g END,
       CASE WHEN g % 6 = 0 THEN NULL
            ELSE jsonb_build_object('id', g, 'name', 'ünï ' || g, 'tags', jsonb_build_array('a', g, null),
                                    'nested', jsonb_build_object('x', g * 1.5)) END,
       CASE WHEN g % 9 = 0 THEN NULL ELSE (g * 12345678901.1234)::numeric(30,4) END,
       CASE WHEN g % 8 = 0 THEN NULL ELSE timestamptz '2001-02-03 04:05:06.789012+02' + g * interval '1 day 7 min' END,
       CASE WHEN g % 4 = 0 THEN NULL ELSE decode(lpad(to_hex(g), 8, '0') || '00ff5c0a', 'hex') END,
       CASE WHEN g % 10 = 0 THEN NULL WHEN g % 3 = 0 THEN ARRAY[g, NULL, -g] ELSE ARRAY[]::int[] END,
       ARRAY['x', NULL, 'ü, "q" {b}', g::text],
       CASE WHEN g % 11 = 0 THEN 'NaN'::float8 ELSE g / 3.0 END,
       date '2020-02-29' + g,
       md5(g::text)::uuid,
       g * interval '1 hour 2 seconds'
FROM generate_series(1, 300) g;
INSERT INTO moods
SELECT g, CASE WHEN g % 5 = 0 THEN NULL ELSE (enum_range(NULL::mood))[1 + g % 4] END,
       ARRAY[(enum_range(NULL::mood))[1 + g % 4], NULL], 'n' || g
FROM generate_series(1, 200) g;
"""
