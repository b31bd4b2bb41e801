"""SQL-level checks of a table plan, run before any data moves.

PostgreSQL itself is the judge: ``EXPLAIN`` parses, resolves and type-checks a statement without
executing it. Explaining the FDW load (``INSERT INTO target ... SELECT ... FROM foreign table``) on
the target catches a transform that does not parse, references a missing column, or yields a type
that cannot be assigned to its target column (text into integer), with INSERT's own rules. Explaining
the COPY strategy's source query on the source tells whether the transforms can also run there (a
transform using a function or type that exists only on the target cannot; such a table uses FDW).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from psycopg import sql

from airflow_provider_confiture.core.db import dbapi
from airflow_provider_confiture.core.db.dbapi import Connection
from airflow_provider_confiture.core.errors import PlanError
from airflow_provider_confiture.core.planning import statements
from airflow_provider_confiture.core.planning.plan import TablePlan


@dataclass(frozen=True)
class Validation:
    copy_capable: bool
    copy_problem: str | None = None
    link_checked: bool = True


def _explain(conn: Connection, statement: sql.Composable) -> str | None:
    """None when the statement is valid, else the server's message. Leaves no transaction open."""
    try:
        dbapi.fetch_all(conn, sql.SQL("EXPLAIN (COSTS OFF) {}").format(statement))
        return None
    except dbapi.DB_ERRORS as exc:
        return dbapi.error_text(exc)
    finally:
        dbapi.safe_rollback(conn)


def _foreign_table_exists(conn: Connection, plan: TablePlan) -> bool:
    return bool(
        dbapi.fetch_value(
            conn,
            "SELECT count(*) FROM pg_foreign_table f JOIN pg_class c ON c.oid = f.ftrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
            (plan.foreign.schema, plan.foreign.name),
        )
    )


def _one_column(plan: TablePlan, index: int) -> TablePlan:
    return replace(plan, columns=[plan.columns[index]], where=None)


def validate_table(
    source_conn: Connection,
    target_conn: Connection,
    plan: TablePlan,
    origin: str = "<mapping>",
    *,
    require_link: bool = True,
) -> Validation:
    """Raise PlanError naming the entry and column when the plan's SQL is invalid.

    ``require_link=False`` (dry runs before the first setup) checks only the source side when the
    foreign tables do not exist yet.
    """
    at = f"{origin}: entry {plan.key!r}"
    present = _foreign_table_exists(target_conn, plan)
    dbapi.safe_rollback(target_conn)
    if not present and not require_link:
        source_problem = _explain(source_conn, statements.source_select(plan))
        return Validation(source_problem is None, source_problem, link_checked=False)
    if not present:
        raise PlanError(
            f"{at}: foreign table {plan.foreign} is missing on the target: run the setup step "
            "(FdwSetupOperator) first, or re-run it after adding source schemas or tables"
        )
    problem = _explain(target_conn, statements.fdw_insert(plan))
    if problem is not None:
        _pinpoint(target_conn, plan, at, problem)
    source_problem = _explain(source_conn, statements.source_select(plan))
    if source_problem is None:
        return Validation(True)
    return Validation(False, source_problem)


def _pinpoint(target_conn: Connection, plan: TablePlan, at: str, problem: str) -> None:
    for i, col in enumerate(plan.columns):
        single = _explain(target_conn, statements.fdw_insert(_one_column(plan, i)))
        if single is not None:
            what = f"transform {col.transform!r}" if col.transform else f"source column {col.source!r}"
            raise PlanError(
                f"{at}, column {col.target!r}: {what} does not fit target column "
                f"{plan.target}.{col.target} ({col.target_type}): {single}. Fix the transform (an explicit "
                "cast such as ::integer, or a different expression) in the mapping"
            )
    if plan.where:
        raise PlanError(f"{at}, key 'where': the row filter {plan.where!r} is invalid: {problem}")
    raise PlanError(f"{at}: the load statement for {plan.target} is invalid: {problem}")
