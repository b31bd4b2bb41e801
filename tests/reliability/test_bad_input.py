"""Every kind of bad input, in one table: each fails with a clear error naming the file, entry, table,
column or connection and saying what to do, and fails BEFORE any data moves (the target table's
pre-existing rows are exactly as they were; a constraint violation during the load is rolled back).

Each case runs the operator step that meets the problem first in a DAG (analyze for a bad mapping,
the table load for bad data, setup for the link), called directly on real Airflow connections; the
mapping cases also run the table load on its own, which must refuse the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from airflow_provider_confiture.testing import free_port
from tests.support.steps import step_error

SOURCE = """
CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL, qty int, code text);
INSERT INTO items SELECT g, 'item ' || g, g, 'c' || g FROM generate_series(1, 200) g;
"""
TARGET = """
CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL, qty int CHECK (qty >= 0), code text UNIQUE);
INSERT INTO items VALUES (-1, 'sentinel', 1, 'keep me');
"""
GOOD = "items:\n  source_table: items\n"


@dataclass
class World:
    source_db: Any
    target_db: Any
    airflow_conn: Callable[..., str]
    make_role: Callable[..., tuple[str, str]]
    kwargs: dict[str, Any] = field(default_factory=dict)  # operator arguments; a case may override them
    secrets: list[str] = field(default_factory=list)  # must never appear in an error


def _unlink(w: World) -> None:
    """Back to a target that setup never ran on (the world links it as the superuser)."""
    w.target_db.execute(
        "DROP SERVER confiture_source CASCADE; DROP SCHEMA old_schema; DROP SCHEMA _confiture CASCADE"
    )


def _no_link(w: World) -> None:
    """The target without postgres_fdw, owned by a non-superuser role that cannot create it."""
    _unlink(w)
    w.target_db.execute("DROP EXTENSION postgres_fdw")
    role, password = w.make_role(w.target_db, "ALTER DATABASE " + w.target_db.dbname + " OWNER TO {role}")
    w.secrets.append(password)
    w.kwargs["target_conn_id"] = w.airflow_conn("bad_tgt_role", w.target_db, user=role, password=password)


def _role_without_source_password(w: World) -> None:
    """A non-superuser target role (allowed to use postgres_fdw), linking with a credential-less login."""
    _unlink(w)
    role, password = w.make_role(
        w.target_db,
        "GRANT USAGE ON FOREIGN DATA WRAPPER postgres_fdw TO {role}",
        "GRANT CREATE ON DATABASE " + w.target_db.dbname + " TO {role}",
    )
    w.secrets.append(password)
    w.kwargs["target_conn_id"] = w.airflow_conn("bad_tgt_role", w.target_db, user=role, password=password)
    w.kwargs["fdw_conn_id"] = w.airflow_conn(
        "fdw_no_pw", w.source_db, user=w.source_db.cluster.superuser, password=None
    )


def _wrong_password(w: World) -> None:
    w.secrets.append("Wr0ng-Pa55-unique-7f3a")
    w.kwargs["source_conn_id"] = w.airflow_conn(
        "bad_src_pw", w.source_db, user=w.source_db.cluster.superuser, password="Wr0ng-Pa55-unique-7f3a"
    )


def _unreachable(w: World) -> None:
    from types import SimpleNamespace

    nowhere = SimpleNamespace(host="127.0.0.1", port=free_port(), superuser="nobody", password="unused-9q")
    w.kwargs["source_conn_id"] = w.airflow_conn("bad_src_host", nowhere, dbname="postgres")


def _missing_connection(w: World) -> None:
    w.kwargs["source_conn_id"] = "no_such_connection"


def _negative_qty(w: World) -> None:
    w.source_db.execute("UPDATE items SET qty = -5 WHERE id = 7")


def _duplicate_code(w: World) -> None:
    w.source_db.execute("UPDATE items SET code = 'c3' WHERE id = 9")


@dataclass(frozen=True)
class Case:
    id: str
    mapping: str | None  # YAML text of the mapping file (None: no mapping, tables matched by name)
    steps: tuple[str, ...]  # operator steps that must each refuse: setup / analyze / migrate
    error: str  # exception class name
    expect: tuple[str, ...]  # fragments the message must hold: where, what, what to do
    prepare: Callable[[World], None] | None = None
    operator_kwargs: dict[str, Any] = field(default_factory=dict)


MAPPING_STEPS = ("analyze", "migrate")
CASES = [
    Case(
        "malformed_yaml",
        "items:\n  source_table: [items\n  where: x\n",
        MAPPING_STEPS,
        "MappingError",
        ("mapping.yaml", "invalid YAML at line", "fix the syntax there"),
    ),
    Case(
        "empty_mapping",
        "# nothing yet\n",
        MAPPING_STEPS,
        "MappingError",
        ("mapping.yaml", "the mapping is empty", "list at least one table"),
    ),
    Case(
        "unknown_key_typo",
        "items:\n  source_table: items\n  colums:\n    name: name\n",
        MAPPING_STEPS,
        "MappingError",
        ("mapping.yaml", "entry 'items'", "unknown key 'colums'", "did you mean 'columns'?"),
    ),
    Case(
        "unknown_source_table",
        "items:\n  source_table: itemz\n",
        MAPPING_STEPS,
        "PlanError",
        (
            "mapping.yaml",
            "entry 'items'",
            "source table public.itemz does not exist",
            "did you mean 'items'?",
            "fix 'source_table'",
        ),
    ),
    Case(
        "unknown_target_table",
        "itemz:\n  source_table: items\n",
        MAPPING_STEPS,
        "PlanError",
        (
            "mapping.yaml",
            "entry 'itemz'",
            "target table public.itemz does not exist",
            "did you mean 'items'?",
            "create it in the DDL",
        ),
    ),
    Case(
        "unknown_source_column",
        "items:\n  source_table: items\n  columns:\n    nmae: name\n",
        MAPPING_STEPS,
        "PlanError",
        ("mapping.yaml", "entry 'items'", "column 'nmae'", "has no column 'nmae'", "did you mean 'name'?"),
    ),
    Case(
        "unknown_target_column",
        "items:\n  source_table: items\n  columns:\n    name: titel\n",
        MAPPING_STEPS,
        "PlanError",
        ("mapping.yaml", "entry 'items'", "target table public.items has no column 'titel'"),
    ),
    Case(
        "transform_not_sql",
        "items:\n  columns:\n    qty:\n      transform: 'CASE qty WHEN 1 THEN 2'\n",
        MAPPING_STEPS,
        "PlanError",
        (
            "mapping.yaml",
            "entry 'items'",
            "column 'qty'",
            "transform 'CASE qty WHEN 1 THEN 2'",
            "syntax error",
            "Fix the transform",
        ),
    ),
    Case(
        "transform_missing_column",
        "items:\n  columns:\n    qty:\n      transform: 'quantity * 2'\n",
        MAPPING_STEPS,
        "PlanError",
        ("mapping.yaml", "entry 'items'", "column 'qty'", 'column "quantity" does not exist'),
    ),
    Case(
        "text_into_integer",
        "items:\n  columns:\n    code: qty\n    qty: null\n",
        MAPPING_STEPS,
        "PlanError",
        (
            "mapping.yaml",
            "entry 'items'",
            "column 'qty'",
            "source column 'code'",
            "(integer)",
            "is of type integer but expression is of type text",
            "explicit cast",
        ),
    ),
    Case(
        "two_rules_one_target_column",
        "items:\n  columns:\n    name: name\n    code: name\n",
        MAPPING_STEPS,
        "MappingError",
        (
            "mapping.yaml",
            "entry 'items'",
            "key 'columns.code'",
            "target column 'name' is written twice",
            "keep one rule per target column",
        ),
    ),
    Case(
        "two_entries_one_target_table",
        "items:\n  source_table: items\nmore:\n  source_table: items\n  target_table: items\n",
        MAPPING_STEPS,
        "MappingError",
        (
            "mapping.yaml",
            "entry 'more'",
            "both write target table 'items'",
            "keep one entry per target table",
        ),
    ),
    Case(
        "invalid_strategy_in_mapping",
        "items:\n  strategy: fastest\n",
        MAPPING_STEPS,
        "MappingError",
        (
            "mapping.yaml",
            "entry 'items'",
            "key 'strategy'",
            "strategy 'fastest' is not one of auto, fdw, copy",
        ),
    ),
    Case(
        "invalid_strategy_argument",
        GOOD,
        MAPPING_STEPS,
        "PlanError",
        ("strategy 'turbo' is not valid", "use one of auto, fdw, copy"),
        operator_kwargs={"strategy": "turbo"},
    ),
    Case(
        "missing_airflow_connection",
        GOOD,
        MAPPING_STEPS,
        "ConnectionFailedError",
        (
            "Airflow connection 'no_such_connection' is not defined",
            "AIRFLOW_CONN_NO_SUCH_CONNECTION",
            "fix the operator's *_conn_id argument",
        ),
        prepare=_missing_connection,
    ),
    Case(
        "wrong_password",
        GOOD,
        MAPPING_STEPS,
        "ConnectionFailedError",
        (
            "cannot connect to Airflow connection 'bad_src_pw'",
            "as 'confiture'",
            'password authentication failed for user "confiture"',
            "login and password",
        ),
        prepare=_wrong_password,
    ),
    Case(
        "unreachable_host",
        GOOD,
        MAPPING_STEPS,
        "ConnectionFailedError",
        (
            "cannot connect to Airflow connection 'bad_src_host' (127.0.0.1:",
            "Connection refused",
            "Check the connection's host, port",
        ),
        prepare=_unreachable,
    ),
    Case(
        "missing_airflow_connection_for_setup",
        GOOD,
        ("setup",),
        "ConnectionFailedError",
        ("Airflow connection 'no_such_connection' is not defined",),
        prepare=_missing_connection,
    ),
    Case(
        "postgres_fdw_not_available",
        GOOD,
        ("setup",),
        "SetupError",
        (
            "cannot create extension postgres_fdw",
            "ask a superuser",
            "CREATE EXTENSION postgres_fdw",
            "GRANT USAGE ON FOREIGN DATA WRAPPER postgres_fdw",
        ),
        prepare=_no_link,
    ),
    Case(
        "non_superuser_target_without_password",
        GOOD,
        ("setup",),
        "SetupError",
        (
            "is not a superuser",
            "requires a password in the user mapping",
            "set a password on the source connection",
        ),
        prepare=_role_without_source_password,
    ),
    Case(
        "check_constraint_violated",
        GOOD,
        ("migrate",),
        "MigrationError",
        (
            "table public.items",
            "entry 'items'",
            "rolled back, the table is unchanged",
            "constraint 'items_qty_check'",
            "Failing row contains (7, item 7, -5, c7)",
            "where' filter or a 'transform'",
        ),
        prepare=_negative_qty,
    ),
    Case(
        "unique_constraint_violated",
        GOOD,
        ("migrate",),
        "MigrationError",
        (
            "table public.items",
            "rolled back, the table is unchanged",
            "items_code_key",
            "Key (code)=(c3) is duplicated",
        ),
        prepare=_duplicate_code,
    ),
]


@pytest.fixture
def world(source_db, target_db, connect, rel, airflow_conn, make_role):
    source_db.execute(SOURCE)
    target_db.execute(TARGET)
    src, tgt = connect(source_db), connect(target_db)
    rel.link_up(src, tgt, rel.fdw_link(source_db), GOOD)
    return World(
        source_db,
        target_db,
        airflow_conn,
        make_role,
        kwargs={
            "source_conn_id": airflow_conn("bad_src", source_db),
            "target_conn_id": airflow_conn("bad_tgt", target_db),
        },
        secrets=[source_db.cluster.password, target_db.cluster.password],
    )


def _operator(step: str, kwargs: dict[str, Any]):
    from airflow_provider_confiture.operators import AnalyzeOperator, FdwSetupOperator, TableMigrateOperator

    kwargs = dict(kwargs)
    if step == "setup":
        return FdwSetupOperator(task_id="setup", create_database=False, **kwargs)
    kwargs.pop("fdw_conn_id", None)
    if step == "analyze":
        return AnalyzeOperator(task_id="analyze", **kwargs)
    return TableMigrateOperator(task_id="migrate", table="items", **kwargs)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_clearly_before_any_data_moves(case, world, rel, tmp_path):
    if case.prepare:
        case.prepare(world)
    path = tmp_path / "mapping.yaml"
    path.write_text(case.mapping or "")
    kwargs = {
        **world.kwargs,
        "mapping_path": str(path) if case.mapping is not None else None,
        **case.operator_kwargs,
    }
    before = rel.table_text(world.target_db)
    source_before = rel.table_text(world.source_db)
    for step in case.steps:
        with pytest.raises(Exception) as caught:  # noqa: B017 - the class is checked by name below
            _operator(step, kwargs).execute({})
        error = step_error(caught.value)
        message = str(error)
        assert type(error).__name__ == case.error, f"{step}: {type(error).__name__}: {message}"
        # bad input cannot heal on a retry: the task fails at once; a server that cannot be reached
        # (or refuses the login) may come back, so that one is left to Airflow's retries
        expected_wrapper = (
            "ConnectionFailedError" if case.error == "ConnectionFailedError" else "AirflowFailException"
        )
        if case.error == "ConnectionFailedError" and "is not defined" in message:
            expected_wrapper = "AirflowFailException"
        assert type(caught.value).__name__ == expected_wrapper, f"{step}: {caught.value!r}"
        for fragment in case.expect:
            assert fragment in message, f"{step}: {fragment!r} not in:\n{message}"
        for secret in world.secrets:
            assert secret not in message and secret not in repr(error)
        assert rel.table_text(world.target_db) == before, f"{step} changed the target table"
    assert rel.table_text(world.source_db) == source_before
