"""What every Confiture operator shares: connection ids, where tables live, the mapping, timeouts,
the ``tables`` and ``dry_run`` run params, and how failures reach Airflow.

Operators are thin: :meth:`ConfitureBaseOperator.execute_step` opens connections through
``PostgresHook`` (:mod:`hooks.connections`), makes one call into :mod:`core`, logs its report and
returns a JSON-serialisable dict as XCom. Two things are done once, here, for all of them:

* rendered template values are converted back to their types once (Jinja renders ``{{ params.dry_run
  }}`` as the text ``"False"``), in :meth:`render_template_fields`, as Airflow's own transfer operators do;
* an error a retry cannot fix (``ConfitureError.retryable`` false: a bad mapping, data violating a
  constraint, a missing privilege) fails the task at once (``AirflowFailException``) instead of burning
  its retries; one that can heal (a lost connection, a timeout, a lock wait) is raised as is and retried.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_confiture.core import planning
from airflow_provider_confiture.core.db.dbapi import Connection
from airflow_provider_confiture.core.errors import ConfitureError
from airflow_provider_confiture.hooks import connections

if TYPE_CHECKING:
    from airflow.sdk import Context


def as_bool(value: Any) -> bool:
    """Booleans arrive as strings from Jinja-rendered params ("False"), and must not be truthy then."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off", "", "none"):
            return False
        raise ValueError(f"{value!r} is not a boolean (use true or false)")
    return bool(value)


def as_tables(value: Any) -> list[str] | None:
    """``None``/empty means all tables; accepts a list or a comma-separated string."""
    if value is None:
        return None
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",")]
    else:
        items = [str(v).strip() for v in value]
    items = [v for v in items if v]
    return items or None


def run_id_of(context: Context) -> str | None:
    """The DAG run's id (None when an operator is executed outside a run, e.g. in a script)."""
    try:
        run_id = context["run_id"]
    except (KeyError, TypeError):
        return None
    return str(run_id) if run_id else None


class StepOperator(BaseOperator):
    """One step of a migration: ``execute_step`` does the work; failures reach Airflow as the module
    docstring says (non-retryable errors fail at once)."""

    ui_color = "#f6d6b8"

    def render_template_fields(self, context: Context, jinja_env: Any = None) -> None:
        super().render_template_fields(context, jinja_env)
        self.convert_rendered_fields()

    def convert_rendered_fields(self) -> None:
        """Turn rendered text back into values (idempotent; also run before executing, for direct use).

        Subclasses with typed templated fields of their own extend it.
        """

    def execute(self, context: Context) -> Any:
        self.convert_rendered_fields()
        try:
            return self.execute_step(context)
        except ConfitureError as exc:
            if exc.retryable:
                raise
            # Same message; no retry (nothing changes between attempts).
            raise AirflowFailException(str(exc)) from exc

    def execute_step(self, context: Context) -> Any:
        """The step itself: connections -> one core call -> log -> return (JSON for XCom)."""
        raise NotImplementedError


class ConfitureBaseOperator(StepOperator):
    """Base of the schema-to-schema operators.

    :param source_conn_id: Airflow Postgres connection of the old database (read only; never written).
        (templated)
    :param target_conn_id: Airflow Postgres connection of the new database. (templated)
    :param mapping_path: column-mapping YAML; None migrates every target table from the source table
        of the same name, columns matched by name. (templated)
    :param source_schema: schema of the source tables named without a schema.
    :param target_schema: schema whose tables are migrated.
    :param foreign_schema: local schema on the target holding the source's foreign tables.
    :param strategy: ``auto`` (by size), ``fdw`` or ``copy`` for every table (overrides the mapping).
        (templated)
    :param copy_threshold_rows: ``auto`` uses COPY from this many rows up. (templated)
    :param tables: only these tables (target names or mapping entry keys; a list or a comma-separated
        string); None or empty = every table. (templated)
    :param dry_run: plan, validate and log what would be done; change nothing. (templated)
    :param statement_timeout: server statement_timeout for every statement (e.g. ``"2h"``); None = none.
    """

    template_fields: Sequence[str] = (
        "source_conn_id",
        "target_conn_id",
        "mapping_path",
        "strategy",
        "copy_threshold_rows",
        "tables",
        "dry_run",
    )
    #: The run param, as rendered then converted to bool. It shadows ``BaseOperator.dry_run()`` (a
    #: method Airflow's CLI calls for ``tasks test --dry-run``), as the operators always have.
    dry_run: Any
    #: Target table names or entry keys; a list (or None = all) once converted.
    tables: Any

    def __init__(
        self,
        *,
        source_conn_id: str,
        target_conn_id: str,
        mapping_path: str | None = None,
        source_schema: str = "public",
        target_schema: str = "public",
        foreign_schema: str = planning.DEFAULT_FOREIGN_SCHEMA,
        strategy: str = "auto",
        copy_threshold_rows: int | str = planning.DEFAULT_COPY_THRESHOLD_ROWS,
        tables: list[str] | str | None = None,
        dry_run: bool | str = False,
        statement_timeout: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source_conn_id = source_conn_id
        self.target_conn_id = target_conn_id
        self.mapping_path = str(mapping_path) if mapping_path is not None else None
        self.source_schema = source_schema
        self.target_schema = target_schema
        self.foreign_schema = foreign_schema
        self.strategy = strategy
        self.copy_threshold_rows = copy_threshold_rows
        self.tables = tables
        self.dry_run = dry_run
        self.statement_timeout = statement_timeout

    def convert_rendered_fields(self) -> None:
        super().convert_rendered_fields()
        self.dry_run = as_bool(self.dry_run)
        self.tables = as_tables(self.tables)
        self.strategy = str(self.strategy or "auto").strip().lower()
        self.copy_threshold_rows = int(self.copy_threshold_rows)

    # -- shared helpers ---------------------------------------------------------------------------
    def plan_options(self) -> planning.PlanOptions:
        return planning.PlanOptions(
            source_schema=self.source_schema,
            target_schema=self.target_schema,
            foreign_schema=self.foreign_schema,
            strategy=str(self.strategy),
            copy_threshold_rows=int(self.copy_threshold_rows),
        )

    def load_mapping(self) -> planning.Mapping:
        return planning.load_mapping(Path(self.mapping_path) if self.mapping_path else None)

    def plans(
        self, source_conn: Connection, target_conn: Connection, tables: list[str] | None = None
    ) -> planning.PlanResult:
        """The migration's table plans (all, or ``tables``), from the live catalogs."""
        result, _ = planning.plan_migration(
            source_conn, target_conn, self.load_mapping(), self.plan_options(), tables
        )
        return result

    @contextlib.contextmanager
    def source_connection(self) -> Iterator[Connection]:
        with connections.connect(
            self.source_conn_id, read_only=True, statement_timeout=self.statement_timeout
        ) as conn:
            yield conn

    @contextlib.contextmanager
    def target_connection(
        self, database: str | None = None, autocommit: bool = False
    ) -> Iterator[Connection]:
        with connections.connect(
            self.target_conn_id,
            database=database,
            statement_timeout=self.statement_timeout,
            autocommit=autocommit,
        ) as conn:
            yield conn

    @contextlib.contextmanager
    def both(self) -> Iterator[tuple[Connection, Connection]]:
        with self.source_connection() as source, self.target_connection() as target:
            yield source, target
