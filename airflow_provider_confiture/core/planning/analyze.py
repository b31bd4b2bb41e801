"""Analyze step: per table, estimated rows and size, the strategy that will be used, an estimated
time, whether the target table took writes that are not the migration's since its last load (the
target guard: a re-run would destroy them), and warnings; and the list of load units (a whole table, or one key range of a large table)
that the DAG fans out over. Read-only on both databases.

The strategy shown here is the one the load uses: both call :func:`decide_strategy`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airflow_provider_confiture.core.db import target_guard
from airflow_provider_confiture.core.db.dbapi import Connection
from airflow_provider_confiture.core.db.text_table import box_table
from airflow_provider_confiture.core.errors import PlanError, TargetWrittenError
from airflow_provider_confiture.core.planning import estimates, ranges
from airflow_provider_confiture.core.planning.joins import VIEW_KINDS
from airflow_provider_confiture.core.planning.mapping import Mapping
from airflow_provider_confiture.core.planning.plan import (
    PlanOptions,
    TablePlan,
    exact_rows_if_unknown,
    plan_migration,
)
from airflow_provider_confiture.core.planning.strategy import Strategy, choose_strategy
from airflow_provider_confiture.core.planning.units import KeyRangeDict, LoadUnit, UnitTable, bundle_label
from airflow_provider_confiture.core.planning.validate import (
    Validation,
    check_join_duplicates,
    validate_table,
)

#: Tables with at least this many rows are split into key ranges that load as separate tasks.
#: Measured (docs/benchmarks.md): on one 2-core target two parallel ranges were *slower* than one
#: whole-table load (a range load cannot set indexes aside and deletes instead of truncating), so
#: splitting pays only for tables that take a single stream 30+ minutes, spread over several workers.
DEFAULT_SPLIT_THRESHOLD_ROWS = 500_000_000
#: Rows per part when a table is split.
DEFAULT_ROWS_PER_PART = 100_000_000
#: Small tables share a load unit (one task instance for many tables), at most this many per unit.
#: Under a real scheduler every task instance costs seconds of start-up, far more than loading a
#: table of a few thousand rows; a unit of 50 small tables is still a few seconds of work and a
#: short retry. 0 or 1: one unit per table.
DEFAULT_MAX_TABLES_PER_UNIT = 50
#: A table is "small" (bundled) when its estimated load time is below this.
SMALL_TABLE_SECONDS = 1.0
#: A bundle closes when the estimates of its tables add up to this (a few seconds of work per task).
UNIT_SECONDS = 10.0


@dataclass
class TableAnalysis:
    label: str
    key: str
    source: str
    target: str
    rows: int
    bytes: int
    strategy: str
    estimated_seconds: float
    copy_format: str
    warnings: list[str] = field(default_factory=list)
    parts: list[KeyRangeDict] = field(default_factory=list)
    #: Writes from outside the migration since the table's last load (TargetWrites.to_dict), or None.
    target_writes: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Analysis:
    tables: list[TableAnalysis]
    skipped: list[tuple[str, str]]
    #: Small tables per load unit (1: one unit per table).
    max_tables_per_unit: int = 1

    def units(self) -> list[LoadUnit]:
        """One load unit per per-table task instance (see :mod:`units`): large tables (and each key
        range of a split one) first, each alone; then the small tables, bundled."""
        out: list[LoadUnit] = []
        small: list[TableAnalysis] = []
        for t in self.tables:
            if not t.parts and self.max_tables_per_unit > 1 and t.estimated_seconds < SMALL_TABLE_SECONDS:
                small.append(t)
                continue
            if not t.parts:
                out.append(LoadUnit(table=t.key, label=t.label, strategy=t.strategy, key_range=None))
            for part in t.parts:
                label = f"{t.label} [{part['index']}/{part['count']}]"
                out.append(LoadUnit(table=t.key, label=label, strategy=t.strategy, key_range=part))
        bundles: list[list[TableAnalysis]] = []
        seconds = 0.0
        for t in small:
            if not bundles or len(bundles[-1]) >= self.max_tables_per_unit or seconds >= UNIT_SECONDS:
                bundles.append([])
                seconds = 0.0
            bundles[-1].append(t)
            seconds += t.estimated_seconds
        for index, bundle in enumerate(bundles, start=1):
            if len(bundle) == 1:
                t = bundle[0]
                out.append(LoadUnit(table=t.key, label=t.label, strategy=t.strategy, key_range=None))
                continue
            members = [UnitTable(table=t.key, label=t.label, strategy=t.strategy) for t in bundle]
            out.append(
                LoadUnit(
                    table=members[0]["table"],
                    label=bundle_label(index, len(bundles), members),
                    strategy=members[0]["strategy"],
                    key_range=None,
                    tables=members,
                )
            )
        return out

    def render(self) -> str:
        rows = [
            (
                t.label,
                estimates.human_rows(t.rows),
                estimates.human_bytes(t.bytes),
                t.strategy + (" ⚡" if t.strategy == Strategy.COPY else ""),
                f"{len(t.parts)} parts" if t.parts else "1",
                estimates.human_seconds(t.estimated_seconds),
                f"WRITTEN ({t.target_writes['statements']:,})" if t.target_writes else "none",
            )
            for t in self.tables
        ]
        text = "Table Analysis:\n" + box_table(
            ["Table", "Rows", "Size", "Strategy", "Tasks", "Est. Time", "Target writes"], rows
        )
        notes = [
            f"  {t.label}: target written since its last load: {t.target_writes['detail']}; a reload would "
            "destroy those writes"
            for t in self.tables
            if t.target_writes
        ]
        notes += [f"  {t.label}: {w}" for t in self.tables for w in t.warnings]
        bundled = [u for u in self.units() if u.get("tables")]
        if bundled:
            count = sum(len(u.get("tables") or []) for u in bundled)
            text += (
                f"\n{count} small tables load in {len(bundled)} units of up to {self.max_tables_per_unit} "
                "(each table in its own transaction)"
            )
        notes += [f"  {name}: skipped, {why}" for name, why in self.skipped]
        if notes:
            text += "\nWarnings:\n" + "\n".join(notes)
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "tables": [t.to_dict() for t in self.tables],
            "skipped": [list(s) for s in self.skipped],
            "units": self.units(),
        }

    def written_tables(self) -> dict[str, str]:
        """Tables written from outside the migration since their last load: label -> what was written."""
        return {t.label: str(t.target_writes["detail"]) for t in self.tables if t.target_writes}

    def refuse_target_writes(self) -> None:
        """TargetWrittenError listing every table written since its last load (a scheduled or manual
        re-run after cutover fails here, before any table task starts). Nothing when there are none."""
        written = self.written_tables()
        if written:
            raise TargetWrittenError(target_guard.refusal(written, step="the migration"))


def analyze(
    source_conn: Connection,
    target_conn: Connection,
    mapping: Mapping,
    options: PlanOptions,
    tables: list[str] | None = None,
    *,
    split_threshold_rows: int = DEFAULT_SPLIT_THRESHOLD_ROWS,
    rows_per_part: int = DEFAULT_ROWS_PER_PART,
    max_tables_per_unit: int = 1,
    require_link: bool = True,
) -> Analysis:
    """Plan, validate (EXPLAIN, no data moved) and estimate every table."""
    result, _ = plan_migration(source_conn, target_conn, mapping, options, tables)
    out = []
    for plan in result.plans:
        decision = decide_strategy(
            source_conn, target_conn, plan, options, origin=mapping.origin, require_link=require_link
        )
        check, strategy = decision.validation, decision.strategy
        warnings = list(plan.warnings)
        if not check.link_checked:
            warnings.append("postgres_fdw link not set up yet: the FDW load statement was not checked")
        if not check.copy_capable:
            warnings.append(f"expressions only valid on the target ({check.copy_problem}): FDW strategy used")
        written = target_guard.writes_since_load(target_conn, plan.target)
        if plan.joins:
            if check.copy_capable or check.link_checked:
                check_join_duplicates(
                    source_conn, target_conn, plan, not check.copy_capable, mapping.origin or "<mapping>"
                )
            else:
                warnings.append("the join was not checked for duplicate target keys (no link set up yet)")
        if plan.source_kind in VIEW_KINDS:
            warnings.append(_view_note(plan))
        parts: list[KeyRangeDict] = []
        if split_threshold_rows > 0 and plan.estimated_rows >= split_threshold_rows:
            count = max(2, -(-plan.estimated_rows // max(rows_per_part, 1)))
            key_ranges = ranges.compute_ranges(source_conn, plan, count)
            if key_ranges:
                parts = [r.to_dict() for r in key_ranges]  # KeyRange.to_dict gives a KeyRangeDict
            else:
                warnings.append("large table without an integer key to split by: loads as one task")
        out.append(
            TableAnalysis(
                label=plan.label,
                key=plan.key,
                source=str(plan.source),
                target=str(plan.target),
                rows=plan.estimated_rows,
                bytes=plan.source_bytes,
                strategy=str(strategy),
                estimated_seconds=estimates.estimate_seconds(
                    strategy, plan.estimated_rows, plan.source_bytes
                ),
                copy_format="binary" if plan.binary_copy else "text",
                warnings=warnings,
                parts=parts,
                target_writes=written.to_dict() if written else None,
            )
        )
    return Analysis(out, result.skipped, max_tables_per_unit)


def _view_note(plan: TablePlan) -> str:
    """What a view source allows: read-only always; key ranges only with a usable key; never catch-up."""
    kind = VIEW_KINDS[plan.source_kind]
    try:
        columns = ranges.split_column(plan)
    except PlanError:  # a split_by problem: reported by compute_ranges itself
        columns = None
    if columns is None:
        return (
            f"source {plan.source} is a {kind} with no usable key (no split_by, and the target has no "
            "single-column primary key copied unchanged from it): it loads as one task, is never split "
            "into key ranges, and catch-up cannot follow it"
        )
    return (
        f"source {plan.source} is a {kind}: read-only; key ranges split it by column {columns[0]!r}; "
        "catch-up cannot follow it (its rows change through the tables beneath it: map those with "
        "'joins' to follow them)"
    )


@dataclass(frozen=True)
class StrategyDecision:
    strategy: Strategy
    validation: Validation


def decide_strategy(
    source_conn: Connection,
    target_conn: Connection,
    plan: TablePlan,
    options: PlanOptions,
    *,
    origin: str | None = None,
    planned: str | None = None,
    require_link: bool = True,
) -> StrategyDecision:
    """The one place that decides a table's strategy, for analyze and for the load itself.

    Validates the plan's SQL (raising PlanError naming entry and column). ``planned`` is the strategy
    analyze chose (carried in the load unit): it is kept, unless the live catalogs say COPY can no
    longer run the mapping on the source; without it the table's size decides (an exact count when the
    statistics know nothing), as analyze does.
    """
    check = validate_table(source_conn, target_conn, plan, origin or "<mapping>", require_link=require_link)
    if planned and not (planned == Strategy.COPY and not check.copy_capable):
        return StrategyDecision(Strategy(planned), check)
    if not planned:
        plan.estimated_rows = exact_rows_if_unknown(source_conn, plan)
    strategy = choose_strategy(plan, options.copy_threshold_rows, check.copy_capable, check.copy_problem)
    return StrategyDecision(strategy, check)
