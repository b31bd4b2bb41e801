"""Resolve a column mapping against the real source and target catalogs into per-table load plans.

This is where "unknown table", "unknown column", "two sources for one column" and "NOT NULL column
with nothing to fill it" are caught: from catalog facts alone, before any data moves. SQL-level checks
(a transform that does not parse or does not fit its column) live in :mod:`validate`.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from psycopg import sql

from airflow_provider_confiture.core.db import dbapi
from airflow_provider_confiture.core.db.catalog import (
    Catalog,
    Table,
    count_rows,
    existing_tables,
    read_catalog,
)
from airflow_provider_confiture.core.db.dbapi import Connection
from airflow_provider_confiture.core.errors import PlanError, did_you_mean
from airflow_provider_confiture.core.names import QualifiedName
from airflow_provider_confiture.core.planning import joins as joins_module
from airflow_provider_confiture.core.planning import user_sql
from airflow_provider_confiture.core.planning.joins import VIEW_KINDS, CatchupSupport, JoinPlan
from airflow_provider_confiture.core.planning.mapping import Mapping, TableMapping
from airflow_provider_confiture.core.planning.strategy import STRATEGIES

#: Tables with at least this many rows use the COPY strategy under ``auto``.
#: Measured (docs/benchmarks.md): our streamed COPY beats postgres_fdw at every size tried (1k rows:
#: 25 vs 39 ms; full tables 2-2.5x), so a threshold of 10,000,000 would pick the slower strategy for
#: nearly every table. Below 10k rows the difference is a few milliseconds and FDW needs no second
#: connection or thread on the worker.
DEFAULT_COPY_THRESHOLD_ROWS = 10_000
#: Local schema on the target that holds the foreign tables of the source's default schema.
DEFAULT_FOREIGN_SCHEMA = "old_schema"


@dataclass(frozen=True)
class PlanOptions:
    """Where tables live and how strategies are chosen; shared by every step of a migration."""

    source_schema: str = "public"
    target_schema: str = "public"
    foreign_schema: str = DEFAULT_FOREIGN_SCHEMA
    strategy: str = "auto"  # global override: auto | fdw | copy
    copy_threshold_rows: int = DEFAULT_COPY_THRESHOLD_ROWS

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise PlanError(f"strategy {self.strategy!r} is not valid: use one of {', '.join(STRATEGIES)}")
        if int(self.copy_threshold_rows) < 0:
            raise PlanError("copy_threshold_rows must be 0 or more")

    def foreign_schema_for(self, source_schema: str) -> str:
        """Local schema holding the foreign tables of ``source_schema`` (one per source schema)."""
        if source_schema == self.source_schema:
            return self.foreign_schema
        return f"{self.foreign_schema}_{source_schema}"


@dataclass(frozen=True)
class ColumnPlan:
    """One target column and the source expression that fills it."""

    target: str
    source: str | None  # plain source column (copy or rename)
    transform: str | None  # SQL expression over source columns
    target_type: str  # with type modifier, e.g. numeric(12,2)
    target_base_type: str  # without type modifier
    builtin_type: bool
    identity: str
    #: Alias qualifying a plain source column (set when the entry joins tables: a same-name column
    #: of a joined table must not make ``id`` ambiguous; plain columns read the main table).
    qualifier: str | None = None

    def expression(self) -> sql.Composable:
        """The source-side expression: a quoted column, or the transform in parentheses."""
        if self.transform is not None:
            checked_fragment(self.transform, f"transform of column {self.target!r}")
            return sql.SQL("({})").format(sql.SQL(self.transform))
        assert self.source is not None
        if self.qualifier is not None:
            return sql.Identifier(self.qualifier, self.source)
        return sql.Identifier(self.source)


def checked_fragment(text: str, what: str) -> str:
    """``text`` if it is one self-contained SQL expression, else PlanError (last line of defence: the
    planner already reported it with the entry's name)."""
    why = user_sql.problem(text)
    if why:
        raise PlanError(f"{what} {text!r} is not one SQL expression: {why}")
    return text


@dataclass
class TablePlan:
    key: str
    source: QualifiedName
    target: QualifiedName
    foreign: QualifiedName
    columns: list[ColumnPlan]
    where: str | None
    requested_strategy: str  # after global override: auto | fdw | copy
    estimated_rows: int
    source_bytes: int
    target_primary_key: tuple[str, ...]
    split_by: str | None = None
    unmapped_source_columns: list[str] = field(default_factory=list)
    defaulted_target_columns: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: How the entry's SQL names the main source table (None: not aliased; always set with joins).
    source_alias: str | None = None
    #: Further source tables joined to the main one (see :mod:`joins`).
    joins: list[JoinPlan] = field(default_factory=list)
    #: pg_class.relkind of the main source: r/p tables, v/m (materialized) views.
    source_kind: str = "r"

    @property
    def label(self) -> str:
        return table_label(self.target)

    @property
    def source_tables(self) -> list[QualifiedName]:
        """Every source relation the entry reads: the main one, then the joined ones (each once)."""
        out = [self.source]
        for join in self.joins:
            if join.table not in out:
                out.append(join.table)
        return out

    def catchup_support(self) -> CatchupSupport:
        """Whether catch-up can follow this entry, and how changes in joined tables map back to
        target keys: the contract is in :mod:`joins`."""
        return joins_module.catchup_support(self)

    @property
    def binary_copy(self) -> bool:
        """COPY's binary format carries type OIDs of arrays/composites: safe only for built-in types."""
        return all(c.builtin_type for c in self.columns)

    @property
    def overriding_system_value(self) -> bool:
        return any(c.identity == "a" for c in self.columns)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("source", "target", "foreign"):
            d[k] = [getattr(self, k).schema, getattr(self, k).name]
        for j, join in zip(d["joins"], self.joins, strict=True):
            j["table"] = [join.table.schema, join.table.name]
            j["foreign"] = [join.foreign.schema, join.foreign.name]
        return d


@dataclass
class PlanResult:
    plans: list[TablePlan]
    skipped: list[tuple[str, str]]  # (target table, reason)

    def get(self, table: str) -> TablePlan:
        for p in self.plans:
            if table in (p.key, p.target.name, str(p.target), p.label):
                return p
        known = ", ".join(p.label for p in self.plans) or "none"
        skipped = dict(self.skipped)
        if table in skipped:
            raise PlanError(f"table {table!r} is not migrated: {skipped[table]}")
        raise PlanError(f"table {table!r} is not part of this migration (tables: {known})")


def _location(entry: TableMapping | None) -> str:
    return f"entry {entry.key!r}" if entry else "table"


def build_plans(
    mapping: Mapping,
    source_catalog: Catalog,
    target_catalog: Catalog,
    options: PlanOptions,
    tables: list[str] | None = None,
    *,
    only_requested_entries: bool = False,
    index: dict[str, list[tuple[QualifiedName, TableMapping]]] | None = None,
) -> PlanResult:
    """Plan every table of the target schema (or only ``tables``). Raises PlanError on bad input.

    ``only_requested_entries``: the catalogs hold only the requested tables (see
    :func:`plan_migration`), so other entries are not checked against them.
    """
    origin = mapping.origin or "<mapping>"
    entries_by_target: dict[QualifiedName, TableMapping] = {}
    problems: list[str] = []
    requested_targets: set[QualifiedName] = set()
    if only_requested_entries and tables:
        index = index if index is not None else _entries_by_name(mapping, options)
        requested_targets = {target for wanted in tables for target, _ in index.get(wanted, [])}
    for entry in mapping.tables:
        target_name = entry.target_table.with_default_schema(options.target_schema)
        source_name = entry.source_table.with_default_schema(options.source_schema)
        if only_requested_entries and tables and target_name not in requested_targets:
            continue
        if target_catalog.get(target_name) is None:
            names = [
                t.name.name for t in target_catalog.in_schema(target_name.schema or options.target_schema)
            ]
            problems.append(
                f"{origin}: entry {entry.key!r}: target table {target_name} does not exist in the target "
                f"database{did_you_mean(target_name.name, names)} (create it in the DDL, or fix 'target_table')"
            )
        if source_catalog.get(source_name) is None:
            names = [
                t.name.name for t in source_catalog.in_schema(source_name.schema or options.source_schema)
            ]
            problems.append(
                f"{origin}: entry {entry.key!r}: source table {source_name} does not exist in the source "
                f"database{did_you_mean(source_name.name, names)} (fix 'source_table')"
            )
        for number, join in enumerate(entry.joins, start=1):
            joined = join.table.with_default_schema(options.source_schema)
            if source_catalog.get(joined) is None:
                names = [
                    t.name.name for t in source_catalog.in_schema(joined.schema or options.source_schema)
                ]
                problems.append(
                    f"{origin}: entry {entry.key!r}, join {join.alias!r}: source table {joined} does not "
                    f"exist in the source database{did_you_mean(joined.name, names)} (fix 'joins[{number}].table')"
                )
        entries_by_target[target_name] = entry
    if problems:
        raise PlanError("\n".join(problems))

    targets = [t.name for t in target_catalog.in_schema(options.target_schema)]
    for name in entries_by_target:
        if name not in targets:
            targets.append(name)
    if tables:
        # Plan only the requested tables: a problem in another table must not block this one.
        for requested in tables:
            if not any(_is_named(t, entries_by_target.get(t), requested) for t in targets):
                known = ", ".join(table_label(t) for t in targets) or "none"
                raise PlanError(f"table {requested!r} is not part of this migration (tables: {known})")
        targets = [t for t in targets if any(_is_named(t, entries_by_target.get(t), w) for w in tables)]

    plans: list[TablePlan] = []
    skipped: list[tuple[str, str]] = []
    for target_name in targets:
        target = target_catalog.get(target_name)
        assert target is not None
        found = entries_by_target.get(target_name)
        if found is not None:
            source_name = found.source_table.with_default_schema(options.source_schema)
        else:
            source_name = QualifiedName(options.source_schema, target_name.name)
        source = source_catalog.get(source_name)
        if source is None:
            skipped.append(
                (
                    table_label(target_name),
                    f"no source table {source_name}: add a mapping entry with 'source_table'",
                )
            )
            continue
        plans.append(_plan_table(origin, found, source, target, options, source_catalog))

    if tables:
        wanted: list[TablePlan] = []
        for requested in tables:
            chosen = PlanResult(plans, skipped).get(requested)
            if chosen not in wanted:
                wanted.append(chosen)
        plans = wanted
        skipped = []
    return PlanResult(plans, skipped)


def table_label(name: QualifiedName) -> str:
    """How a target table is named in logs and UI labels: bare in ``public``, qualified elsewhere."""
    return name.name if name.schema in (None, "public") else str(name)


def _is_named(target: QualifiedName, entry: TableMapping | None, wanted: str) -> bool:
    """Whether ``wanted`` names this target table (as PlanResult.get accepts: key, name or label)."""
    return wanted in (target.name, str(target), table_label(target)) or (
        entry is not None and wanted == entry.key
    )


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


def _join_plans(entry: TableMapping | None, source_catalog: Catalog, options: PlanOptions) -> list[JoinPlan]:
    out = []
    for join in entry.joins if entry else ():
        name = join.table.with_default_schema(options.source_schema)
        table = source_catalog.get(name)
        assert table is not None  # build_plans reported missing joined tables
        out.append(
            JoinPlan(
                alias=join.alias,
                table=table.name,
                foreign=QualifiedName(
                    options.foreign_schema_for(table.name.schema or options.source_schema), table.name.name
                ),
                kind=join.kind,
                on=join.on,
                relkind=table.relkind,
                primary_key=table.primary_key,
            )
        )
    return out


def _plan_table(
    origin: str,
    entry: TableMapping | None,
    source: Table,
    target: Table,
    options: PlanOptions,
    source_catalog: Catalog | None = None,
) -> TablePlan:
    at = f"{origin}: {_location(entry)}"
    key = entry.key if entry else target.name.name
    errors: list[str] = []
    rules = entry.columns if entry else ()
    ignored = entry.ignored_sources() if entry else frozenset()
    join_plans = _join_plans(entry, source_catalog or Catalog(), options)
    source_alias = entry.source_alias if entry and (entry.joins or entry.alias is not None) else None

    explicit: dict[str, ColumnPlan] = {}
    used_sources: set[str] = set()
    for rule in rules:
        if rule.source is not None and source.column(rule.source) is None:
            errors.append(
                f"{at}, column {rule.source!r}: source table {source.name} has no column {rule.source!r}"
                f"{did_you_mean(rule.source, source.column_names)}"
            )
        if rule.target is None:
            continue
        tcol = target.column(rule.target)
        if tcol is None:
            errors.append(
                f"{at}, column {rule.target!r}: target table {target.name} has no column {rule.target!r}"
                f"{did_you_mean(rule.target, target.column_names)}"
            )
            continue
        if not tcol.writable:
            errors.append(
                f"{at}, column {rule.target!r}: target column is GENERATED and cannot be written; "
                "remove it from the mapping"
            )
            continue
        if rule.source is not None:
            used_sources.add(rule.source)
        explicit[rule.target] = ColumnPlan(
            rule.target,
            rule.source if rule.transform is None else None,
            rule.transform,
            tcol.type_name,
            tcol.base_type_name,
            tcol.builtin_type,
            tcol.identity,
            source_alias if rule.transform is None else None,
        )

    columns: list[ColumnPlan] = []
    defaulted: list[str] = []
    warnings_early: list[str] = []
    for tcol in target.columns:
        if not tcol.writable:
            continue
        if tcol.name in explicit:
            columns.append(explicit[tcol.name])
            continue
        scol = source.column(tcol.name)
        if scol is not None and tcol.name not in ignored:
            used_sources.add(tcol.name)
            columns.append(
                ColumnPlan(
                    tcol.name,
                    tcol.name,
                    None,
                    tcol.type_name,
                    tcol.base_type_name,
                    tcol.builtin_type,
                    tcol.identity,
                    source_alias,
                )
            )
            continue
        in_joins = _joined_with_column(join_plans, source_catalog, tcol.name)
        hint = (
            f" (joined table {in_joins[0].table} has a column {tcol.name!r}: map it with "
            f"'transform: \"{in_joins[0].alias}.{tcol.name}\"'; plain column rules read the main source table)"
            if in_joins
            else ""
        )
        if tcol.not_null and not tcol.fills_itself:
            errors.append(
                f"{at}, column {tcol.name!r}: target column {target.name}.{tcol.name} is NOT NULL, has no "
                "default and no source column: map a source column to it, give it a 'transform', "
                f"or give it a DEFAULT in the DDL{hint}"
            )
        elif hint:
            warnings_early.append(f"target column {tcol.name!r} is left to its default{hint}")
        defaulted.append(tcol.name)
    errors += _fragment_errors(at, entry)
    if errors:
        raise PlanError("\n".join(errors))
    if not columns:
        raise PlanError(
            f"{at}: no column of {source.name} maps to {target.name}: list the columns in the mapping"
        )

    referenced: set[str] = set()
    for text in (
        [c.transform for c in columns if c.transform]
        + ([entry.where] if entry and entry.where else [])
        + [j.on for j in join_plans]
    ):
        referenced.update(_WORD.findall(text))
    unmapped = [
        c.name
        for c in source.columns
        if c.name not in used_sources and c.name not in ignored and c.name not in referenced
    ]
    warnings: list[str] = list(warnings_early)
    if unmapped:
        warnings.append(
            f"source columns not copied: {', '.join(unmapped)} (map them, or list them with a null value "
            "to silence this)"
        )
    if defaulted:
        warnings.append(f"target columns left to their default: {', '.join(defaulted)}")

    requested = options.strategy
    if requested == "auto" and entry is not None and entry.strategy:
        requested = entry.strategy
    elif options.strategy != "auto" and entry is not None and entry.strategy and entry.strategy != requested:
        warnings.append(f"global strategy {requested!r} overrides the entry's {entry.strategy!r}")

    split_by = entry.split_by if entry else None
    if split_by is not None and source.column(split_by) is None:
        raise PlanError(
            f"{at}, key 'split_by': source table {source.name} has no column {split_by!r}"
            f"{did_you_mean(split_by, source.column_names)}"
        )

    return TablePlan(
        key=key,
        source=source.name,
        target=target.name,
        foreign=QualifiedName(
            options.foreign_schema_for(source.name.schema or options.source_schema), source.name.name
        ),
        columns=columns,
        where=entry.where if entry else None,
        requested_strategy=requested,
        estimated_rows=source.estimated_rows,
        source_bytes=source.total_bytes,
        target_primary_key=target.primary_key,
        split_by=split_by,
        unmapped_source_columns=unmapped,
        defaulted_target_columns=defaulted,
        warnings=warnings,
        source_alias=source_alias,
        joins=join_plans,
        source_kind=source.relkind,
    )


def _joined_with_column(
    join_plans: list[JoinPlan], source_catalog: Catalog | None, column: str
) -> list[JoinPlan]:
    if source_catalog is None:
        return []
    out = []
    for join in join_plans:
        table = source_catalog.get(join.table)
        if table is not None and table.column(column) is not None:
            out.append(join)
    return out


def _fragment_errors(at: str, entry: TableMapping | None) -> list[str]:
    """Transforms and 'where' must each be one expression: they are embedded in our statements."""
    if entry is None:
        return []
    found = [(f"column {r.target!r}: transform", r.transform) for r in entry.columns if r.transform]
    if entry.where:
        found.append(("key 'where': row filter", entry.where))
    for number, join in enumerate(entry.joins, start=1):
        found.append(
            (f"join {join.alias!r} ({join.table}), key 'joins[{number}].on': join condition", join.on)
        )
    out = []
    for label, text in found:
        why = user_sql.problem(text)
        if why:
            out.append(
                f"{at}, {label} {text!r} is not one SQL expression: {why}. It is embedded, in parentheses, "
                "in the source query: write a single expression (no ';', balanced parentheses and quotes)"
            )
    return out


def plan_migration(
    source_conn: Connection,
    target_conn: Connection,
    mapping: Mapping,
    options: PlanOptions,
    tables: list[str] | None = None,
) -> tuple[PlanResult, Catalog]:
    """Read both catalogs and resolve the mapping (catalog-level checks only).

    With ``tables`` (a per-table task, a unit of small tables, the ``tables`` param), only the tables
    those names can mean are read, so planning one table costs the same in a schema of 50 tables as
    in one of 2,000 (measured: 11 ms and 487 ms for one table of 2,000 when whole catalogs were read).
    Any problem is then reported from the whole catalogs, so messages (and their suggestions) are
    those of a full plan.
    """
    source_schemas = sorted(
        {options.source_schema}
        | {e.source_table.schema for e in mapping.tables if e.source_table.schema}
        | {j.table.schema for e in mapping.tables for j in e.joins if j.table.schema}
    )
    target_schemas = sorted(
        {options.target_schema} | {e.target_table.schema for e in mapping.tables if e.target_table.schema}
    )
    result: PlanResult | None = None
    if tables:
        index = _entries_by_name(mapping, options)
        source_names, target_names = _names_to_read(index, options, tables)
        try:
            _every_entry_exists(source_conn, target_conn, mapping, options)
            # Views are read on the source only: they can feed a target table, never be one.
            source_catalog = read_catalog(source_conn, source_schemas, source_names, views=True)
            target_catalog = read_catalog(target_conn, target_schemas, target_names)
            result = build_plans(
                mapping,
                source_catalog,
                target_catalog,
                options,
                tables,
                only_requested_entries=True,
                index=index,
            )
        except PlanError:
            result = None  # report it from the whole catalogs, below
        finally:
            dbapi.safe_rollback(source_conn)
            dbapi.safe_rollback(target_conn)
    if result is None:
        source_catalog = read_catalog(source_conn, source_schemas, views=True)
        target_catalog = read_catalog(target_conn, target_schemas)
        dbapi.safe_rollback(source_conn)
        dbapi.safe_rollback(target_conn)
        result = build_plans(mapping, source_catalog, target_catalog, options, tables)
    for plan in result.plans:
        if plan.source_kind in VIEW_KINDS:
            _estimate_view(source_conn, plan)
    dbapi.safe_rollback(source_conn)
    return result, source_catalog


def _estimate_view(source_conn: Connection, plan: TablePlan) -> None:
    """A view has no statistics of its own (no reltuples, no size; a materialized view has them only
    once analyzed): take the planner's estimate of its rows and width, and say so."""
    kind = VIEW_KINDS[plan.source_kind]
    if plan.estimated_rows > 0 and plan.source_bytes > 0:
        return
    try:
        row = dbapi.fetch_value(
            source_conn, sql.SQL("EXPLAIN (FORMAT JSON) SELECT * FROM {}").format(plan.source.identifier())
        )
    except dbapi.DB_ERRORS as exc:
        dbapi.safe_rollback(source_conn)
        plan.warnings.append(
            f"source {plan.source} is a {kind} whose size is unknown ({dbapi.error_text(exc)})"
        )
        return
    top = (json.loads(row) if isinstance(row, str) else row)[0]["Plan"]
    rows, width = int(top.get("Plan Rows", 0)), int(top.get("Plan Width", 0))
    if plan.estimated_rows <= 0:
        plan.estimated_rows = rows
    if plan.source_bytes <= 0:
        plan.source_bytes = rows * width
    plan.warnings.append(
        f"source {plan.source} is a {kind} (read-only): its {rows:,} rows and size are the planner's estimate"
    )


def _every_entry_exists(
    source_conn: Connection, target_conn: Connection, mapping: Mapping, options: PlanOptions
) -> None:
    """PlanError unless every entry's tables exist: a mapping naming a missing table is refused in
    every step, even one planning other tables (names only: cheap for thousands of entries)."""
    sources = [e.source_table.with_default_schema(options.source_schema) for e in mapping.tables]
    sources += [j.table.with_default_schema(options.source_schema) for e in mapping.tables for j in e.joins]
    targets = [e.target_table.with_default_schema(options.target_schema) for e in mapping.tables]
    if not set(sources) <= existing_tables(source_conn, sources) or not set(targets) <= existing_tables(
        target_conn, targets
    ):
        raise PlanError("a mapping entry names a table that does not exist")  # reported in full below


def _entries_by_name(
    mapping: Mapping, options: PlanOptions
) -> dict[str, list[tuple[QualifiedName, TableMapping]]]:
    """Every name a user may give for an entry's table (as :func:`_is_named` accepts) -> the entries:
    one pass over the mapping, so resolving many names does not scan it once per name."""
    index: dict[str, list[tuple[QualifiedName, TableMapping]]] = {}
    for entry in mapping.tables:
        target_name = entry.target_table.with_default_schema(options.target_schema)
        for name in {entry.key, target_name.name, str(target_name), table_label(target_name)}:
            index.setdefault(name, []).append((target_name, entry))
    return index


def _names_to_read(
    index: dict[str, list[tuple[QualifiedName, TableMapping]]], options: PlanOptions, tables: list[str]
) -> tuple[list[QualifiedName], list[QualifiedName]]:
    """(source, target) tables that the requested names can mean: the entries they name (by key or
    target table, through :func:`_entries_by_name`'s index) and, for a target table mapped by name,
    the source table of the same name."""
    source: list[QualifiedName] = []
    target: list[QualifiedName] = []
    for wanted in tables:
        for target_name, entry in index.get(wanted, []):
            target.append(target_name)
            source.append(entry.source_table.with_default_schema(options.source_schema))
            source.extend(j.table.with_default_schema(options.source_schema) for j in entry.joins)
        try:
            named = QualifiedName.parse(wanted, options.target_schema)
        except ValueError:
            continue
        target.append(named)
        source.append(QualifiedName(options.source_schema, named.name))
        if named.schema != options.target_schema:  # "schema.table" may also be a bare name with a dot
            target.append(QualifiedName(options.target_schema, wanted))
    # A target table any entry writes is planned from that entry: read the entry's source too.
    for target_name in list(target):
        for _, entry in index.get(str(target_name), []):
            source.append(entry.source_table.with_default_schema(options.source_schema))
            source.extend(j.table.with_default_schema(options.source_schema) for j in entry.joins)
    return source, target


def exact_rows_if_unknown(source_conn: Connection, plan: TablePlan) -> int:
    if plan.estimated_rows > 0:
        return plan.estimated_rows
    rows = count_rows(source_conn, plan.source)
    dbapi.safe_rollback(source_conn)
    return rows
