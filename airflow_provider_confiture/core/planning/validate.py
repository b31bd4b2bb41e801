"""SQL-level checks of a table plan, run before any data moves.

PostgreSQL itself is the judge: ``EXPLAIN`` parses, resolves and type-checks a statement without
executing it. Explaining the FDW load (``INSERT INTO target ... SELECT ... FROM foreign table``) on
the target catches a transform that does not parse, references a missing column, or yields a type
that cannot be assigned to its target column (text into integer), with INSERT's own rules. Explaining
the COPY strategy's source query on the source tells whether the transforms can also run there (a
transform using a function or type that exists only on the target cannot; such a table uses FDW).

An entry with joins is checked join by join first (the main table plus the first joins), so a bad
``on`` condition is reported as that join's, not as the first column's; :func:`check_join_duplicates`
then looks for target keys the join would give twice, before any data moves.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from psycopg import sql

from airflow_provider_confiture.core.db import dbapi
from airflow_provider_confiture.core.db.dbapi import Connection
from airflow_provider_confiture.core.errors import PlanError
from airflow_provider_confiture.core.names import QualifiedName
from airflow_provider_confiture.core.planning import joins, statements
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


def _missing_foreign_tables(conn: Connection, plan: TablePlan) -> list[QualifiedName]:
    """The plan's foreign tables (main, then joined) that do not exist on the target."""
    wanted = [plan.foreign] + [j.foreign for j in plan.joins if j.foreign != plan.foreign]
    missing = []
    for name in wanted:
        if name in missing:
            continue
        found = dbapi.fetch_value(
            conn,
            "SELECT count(*) FROM pg_foreign_table f JOIN pg_class c ON c.oid = f.ftrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
            (name.schema, name.name),
        )
        if not found:
            missing.append(name)
    return missing


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
    missing = _missing_foreign_tables(target_conn, plan)
    dbapi.safe_rollback(target_conn)
    if missing and not require_link:
        source_problem = _explain(source_conn, statements.source_select(plan))
        return Validation(source_problem is None, source_problem, link_checked=False)
    if missing:
        raise PlanError(
            f"{at}: foreign table{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))} "
            f"{'are' if len(missing) > 1 else 'is'} missing on the target: run the setup step "
            "(FdwSetupOperator) first, or re-run it after "
            "adding source schemas, tables or joins"
        )
    _check_joins(target_conn, plan, at)
    problem = _explain(target_conn, statements.fdw_insert(plan))
    if problem is not None:
        _pinpoint(target_conn, plan, at, problem)
    source_problem = _explain(source_conn, statements.source_select(plan))
    if source_problem is None:
        return Validation(True)
    return Validation(False, source_problem)


def _check_joins(target_conn: Connection, plan: TablePlan, at: str) -> None:
    """Explain the main table plus the first 1, 2, ... joins: the first that fails is the culprit."""
    for count, join in enumerate(plan.joins, start=1):
        statement = sql.SQL("SELECT 1 FROM {}").format(joins.from_clause(plan, True, plan.joins[:count]))
        problem = _explain(target_conn, statement)
        if problem is not None:
            raise PlanError(
                f"{at}, {join.label}: the join condition {join.on!r} is invalid: {problem}. It may use the "
                f"main table's alias {plan.source_alias!r} and the aliases of the joins listed before it "
                f"({', '.join(repr(j.alias) for j in plan.joins[: count - 1]) or 'none'}); fix its 'on'"
            )


def check_join_duplicates(
    source_conn: Connection,
    target_conn: Connection,
    plan: TablePlan,
    via_foreign_table: bool,
    origin: str = "<mapping>",
) -> bool:
    """Refuse (PlanError naming entry, join and keys) a join that gives one target key several rows.

    Runs one bounded ``GROUP BY key HAVING count(*) > 1 LIMIT 5`` through the join (on the source,
    or through the foreign tables when the mapping runs only there). False when it cannot check: no
    joins, or a target key not fully filled from the source (the target generates it).
    """
    names = plan.target_primary_key
    mapped = {c.target for c in plan.columns}
    if not plan.joins or not names or not set(names) <= mapped:
        return False
    conn = target_conn if via_foreign_table else source_conn
    at = f"{origin}: entry {plan.key!r}"

    def duplicates(joins_used: int) -> list[tuple[object, ...]] | None:
        statement = statements.duplicate_target_keys(plan, via_foreign_table, joins_used)
        try:
            return dbapi.fetch_all(conn, statement)
        except dbapi.DB_ERRORS:
            return None  # the key or filter uses a later join: this prefix cannot be checked alone
        finally:
            dbapi.safe_rollback(conn)

    found = duplicates(len(plan.joins))
    if not found:
        return True
    culprit = None
    for count in range(len(plan.joins) + 1):
        if duplicates(count):
            culprit = count
            break
    shown = ", ".join(
        "(" + ", ".join(f"{n}={v}" for n, v in zip(names, row[:-1], strict=True)) + f": {row[-1]} rows)"
        for row in found
    )
    key = f"target key ({', '.join(names)}) of {plan.target}"
    if culprit == 0:
        raise PlanError(
            f"{at}: the rows of source table {plan.source} (before any join) give {key} more than once, "
            f"e.g. {shown}; fix the key's mapping or filter the rows with 'where'"
        )
    join = plan.joins[(culprit or len(plan.joins)) - 1]
    which = join.label if culprit else f"{join.label} (or one of the joins before it)"
    raise PlanError(
        f"{at}, {which}: the join gives {key} more than one row, e.g. {shown}: several {join.table} rows "
        f"match one {plan.source} row. Make the join match at most one row (join on a unique key of "
        f"{join.table}, or narrow its 'on' condition), or give the target a key that tells the rows apart"
    )


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
