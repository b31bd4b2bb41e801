"""Every option of a factory-built migration, declared once: name, type, default, validation, paths.

The DAG builder, the task-group builder, the task wiring and the cleanup DAG all read one
:class:`MigrationOptions`. An option reaches the operators that take it by name (see
:meth:`MigrationOptions.operator_kwargs`): adding one means a field here, the parameter on the operator
that uses it, and its documentation. The public ``create_schema_to_schema_dag`` repeats the fields as
explicit keywords for IDE help; ``tests/dag/test_options.py`` keeps the two identical.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, field, fields
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow_provider_confiture.core import link, planning
from airflow_provider_confiture.core.errors import ConfitureError, SetupError, did_you_mean

_PACKAGE_DIR = Path(__file__).resolve().parent.parent


class OptionsError(ConfitureError, ValueError):
    """A factory argument is invalid (raised while the DAG file is parsed: a DAG import error)."""


@dataclass(kw_only=True)
class MigrationOptions:
    """What a migration DAG (or task group) is built from.

    Relative ``mapping_path``/``ddl_path`` resolve against the file that calls the factory; the mapping
    is loaded and validated here, so a bad one is a DAG import error naming file, entry and key.

    :param mapping_path: column-mapping YAML; None migrates every target table from the source table
        of the same name.
    :param source_conn_id: Airflow Postgres connection of the old database (only ever read).
    :param target_conn_id: Airflow Postgres connection of the new database (created if missing).
    :param ddl_path: directory or file of ``.sql`` building the new schema, applied once.
    :param target_schema: schema whose tables are migrated.
    :param source_schema: schema of the source tables named without a schema.
    :param foreign_schema: local schema on the target holding the source's foreign tables.
    :param table_retries: attempts after the first for each table's migrate and verify.
    :param table_retry_delay: wait between a table's attempts (default: ``default_args['retry_delay']``,
        else 30 s).
    :param copy_threshold_rows: default of the ``copy_threshold_rows`` run param.
    :param strategy: default of the ``strategy`` run param (auto, fdw or copy).
    :param split_threshold_rows: tables with at least this many rows load as key ranges in parallel.
    :param rows_per_part: rows per key range.
    :param max_tables_per_unit: small tables share one load task, up to this many (each still loads in
        its own transaction; a retry of the task reloads only the tables not yet loaded and verified
        in that run). 0 or 1: one task per table.
    :param fdw_conn_id: connection whose login/password the postgres_fdw user mapping uses.
    :param fdw_host: address the *target server* uses to reach the source (also ``fdw_port``,
        ``fdw_dbname``), when it differs from the source connection's (e.g. inside Docker).
    :param fdw_server_name: name of the foreign server on the target.
    :param fdw_server_options: server options of the link set or overridden (paths are on the
        *target server*); the TLS settings of the connections' extras are carried over without it.
    :param overwrite_target_writes: default of the ``overwrite_target_writes`` run param: reload tables
        that took writes not the migration's since their last load (rehearsal targets only). Off: such
        a run fails at analyze, listing the tables, before anything changes.
    """

    mapping_path: str | os.PathLike[str] | None
    source_conn_id: str
    target_conn_id: str
    ddl_path: str | os.PathLike[str] | None = None
    target_schema: str = "public"
    source_schema: str = "public"
    foreign_schema: str = planning.DEFAULT_FOREIGN_SCHEMA
    table_retries: int = 2
    table_retry_delay: timedelta | None = None
    copy_threshold_rows: int = planning.DEFAULT_COPY_THRESHOLD_ROWS
    strategy: str = "auto"
    split_threshold_rows: int = planning.DEFAULT_SPLIT_THRESHOLD_ROWS
    rows_per_part: int = planning.DEFAULT_ROWS_PER_PART
    max_tables_per_unit: int = planning.DEFAULT_MAX_TABLES_PER_UNIT
    fdw_conn_id: str | None = None
    fdw_host: str | None = None
    fdw_port: int | str | None = None
    fdw_dbname: str | None = None
    fdw_server_name: str = link.DEFAULT_SERVER
    fdw_server_options: dict[str, str | int] | None = None
    overwrite_target_writes: bool = False

    # Derived when built (not options).
    mapping: planning.Mapping = field(init=False, repr=False)
    caller_file: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.strategy not in planning.STRATEGIES:
            raise OptionsError(
                f"strategy {self.strategy!r} is not valid: use one of {', '.join(planning.STRATEGIES)}"
                f"{did_you_mean(self.strategy, planning.STRATEGIES)}"
            )
        if not isinstance(self.overwrite_target_writes, bool):
            raise OptionsError(
                f"overwrite_target_writes must be True or False, not {self.overwrite_target_writes!r}"
            )
        for name in (
            "table_retries",
            "split_threshold_rows",
            "rows_per_part",
            "copy_threshold_rows",
            "max_tables_per_unit",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise OptionsError(f"{name} must be an integer >= 0, not {value!r}")
        try:
            link.check_fdw_server_options(self.fdw_server_options)
        except SetupError as exc:
            raise OptionsError(str(exc)) from exc
        if not self.source_conn_id or not self.target_conn_id:
            raise OptionsError(
                "source_conn_id and target_conn_id are required (Airflow Postgres connection ids)"
            )
        self.caller_file = _caller_file()
        base = Path(self.caller_file).parent if self.caller_file else Path.cwd()
        self.mapping_path = _resolve(self.mapping_path, base, "mapping_path", self.caller_file)
        self.ddl_path = _resolve(self.ddl_path, base, "ddl_path", self.caller_file)
        # Parse-time validation: MappingError names file, entry and key (Airflow: DAG import error).
        self.mapping = planning.load_mapping(Path(self.mapping_path) if self.mapping_path else None)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The option names, in declaration order (the factory's keywords)."""
        return tuple(f.name for f in fields(cls) if f.init)

    @classmethod
    def from_kwargs(cls, values: dict[str, Any]) -> MigrationOptions:
        """Build from keyword arguments, refusing unknown ones with the nearest known name."""
        known = cls.names()
        for name in values:
            if name not in known:
                raise OptionsError(f"unknown option {name!r}{did_you_mean(name, known)}")
        return cls(**values)

    def relative_path(self, path: str | os.PathLike[str] | None) -> str | None:
        """``path`` as shown in DAG docs: relative to the DAG file's folder when inside it."""
        if path is None:
            return None
        if self.caller_file:
            try:
                return Path(path).relative_to(Path(self.caller_file).parent).as_posix()
            except ValueError:
                pass
        return Path(path).name

    def operator_kwargs(self, operator: type) -> dict[str, Any]:
        """The options ``operator``'s constructor takes (its own parameters and its Confiture bases')."""
        accepted = accepted_arguments(operator)
        values = {name: getattr(self, name) for name in self.names() if name in accepted}
        for name in ("mapping_path", "ddl_path"):
            if name in values and values[name] is not None:
                values[name] = str(values[name])
        return values


def accepted_arguments(operator: type) -> frozenset[str]:
    """Keyword arguments the constructors of ``operator`` and of its Confiture base classes declare
    (not Airflow's ``BaseOperator`` ones: an option never sets ``retries`` by accident)."""
    out: set[str] = set()
    for klass in operator.__mro__:
        if "__init__" in vars(klass) and klass.__module__.startswith("airflow_provider_confiture."):
            out.update(inspect.signature(vars(klass)["__init__"]).parameters)
    out.discard("self")
    out.discard("kwargs")
    return frozenset(out)


def _caller_file() -> str | None:
    """File of the nearest frame outside this package: the DAG file that called the factory."""
    frame = inspect.currentframe()
    try:
        while frame is not None:
            filename = frame.f_code.co_filename
            if not filename.startswith("<"):
                path = Path(filename).resolve()
                if _PACKAGE_DIR not in path.parents:
                    return str(path)
            frame = frame.f_back
        return None
    finally:
        del frame


def _resolve(path: str | os.PathLike[str] | None, base: Path, what: str, caller: str | None) -> str | None:
    if path is None:
        return None
    text = os.fspath(path)
    if not text.strip():
        raise OptionsError(f"{what} is empty: give a path, or None")
    resolved = Path(text).expanduser()
    if not resolved.is_absolute():
        resolved = base / resolved
    resolved = resolved.resolve()
    if not resolved.exists():
        relative_to = f" (relative paths resolve against {caller})" if caller else ""
        raise FileNotFoundError(f"{what} {text!r} not found: {resolved} does not exist{relative_to}")
    return str(resolved)
