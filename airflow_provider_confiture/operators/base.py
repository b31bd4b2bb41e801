"""What every Confiture operator shares: connection ids, where tables live, the mapping, timeouts.

Operators are thin: they open connections through ``PostgresHook``, call :mod:`core`, log its
report and return a JSON-serialisable dict as XCom.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator

from airflow_provider_confiture.core import mapping as mapping_module
from airflow_provider_confiture.core.plan import DEFAULT_COPY_THRESHOLD_ROWS, PlanOptions
from airflow_provider_confiture.operators import connections


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


class ConfitureBaseOperator(BaseOperator):
    """Base of the schema-to-schema operators.

    :param source_conn_id: Airflow Postgres connection of the old database (read only; never written).
    :param target_conn_id: Airflow Postgres connection of the new database.
    :param mapping_path: column-mapping YAML; None migrates every target table from the source table
        of the same name, columns matched by name.
    :param source_schema: schema of the source tables named without a schema.
    :param target_schema: schema whose tables are migrated.
    :param foreign_schema: local schema on the target holding the source's foreign tables.
    :param strategy: ``auto`` (by size), ``fdw`` or ``copy`` for every table (overrides the mapping).
    :param copy_threshold_rows: ``auto`` uses COPY from this many rows up.
    :param statement_timeout: server statement_timeout for every statement (e.g. ``"2h"``); None = none.
    """

    template_fields: Sequence[str] = (
        "source_conn_id",
        "target_conn_id",
        "mapping_path",
        "strategy",
        "copy_threshold_rows",
    )
    ui_color = "#f6d6b8"

    def __init__(
        self,
        *,
        source_conn_id: str,
        target_conn_id: str,
        mapping_path: str | None = None,
        source_schema: str = "public",
        target_schema: str = "public",
        foreign_schema: str = "old_schema",
        strategy: str = "auto",
        copy_threshold_rows: int | str = DEFAULT_COPY_THRESHOLD_ROWS,
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
        self.statement_timeout = statement_timeout

    # -- shared helpers ------------------------------------------------------------------------
    def plan_options(self) -> PlanOptions:
        return PlanOptions(
            source_schema=self.source_schema,
            target_schema=self.target_schema,
            foreign_schema=self.foreign_schema,
            strategy=str(self.strategy or "auto").strip().lower(),
            copy_threshold_rows=int(self.copy_threshold_rows),
        )

    def load_mapping(self) -> mapping_module.Mapping:
        if not self.mapping_path:
            return mapping_module.load_mapping(None)
        return mapping_module.load_mapping(Path(self.mapping_path))

    @contextlib.contextmanager
    def source_connection(self) -> Iterator[Any]:
        with connections.connect(
            self.source_conn_id, read_only=True, statement_timeout=self.statement_timeout
        ) as conn:
            yield conn

    @contextlib.contextmanager
    def target_connection(self, database: str | None = None, autocommit: bool = False) -> Iterator[Any]:
        with connections.connect(
            self.target_conn_id,
            database=database,
            statement_timeout=self.statement_timeout,
            autocommit=autocommit,
        ) as conn:
            yield conn

    @contextlib.contextmanager
    def both(self) -> Iterator[tuple[Any, Any]]:
        with self.source_connection() as source, self.target_connection() as target:
            yield source, target
