"""Planning (the analyze step's work): mapping file -> per-table plans, validated, with strategies."""

from airflow_provider_confiture.core.planning.analyze import (
    DEFAULT_MAX_TABLES_PER_UNIT,
    DEFAULT_ROWS_PER_PART,
    DEFAULT_SPLIT_THRESHOLD_ROWS,
    Analysis,
    StrategyDecision,
    analyze,
    decide_strategy,
)
from airflow_provider_confiture.core.planning.mapping import Mapping, load_mapping, one_table_mapping
from airflow_provider_confiture.core.planning.plan import (
    DEFAULT_COPY_THRESHOLD_ROWS,
    DEFAULT_FOREIGN_SCHEMA,
    PlanOptions,
    PlanResult,
    TablePlan,
    plan_migration,
)
from airflow_provider_confiture.core.planning.ranges import KeyRange
from airflow_provider_confiture.core.planning.strategy import STRATEGIES, Strategy, choose_strategy
from airflow_provider_confiture.core.planning.units import LoadUnit, UnitTable, unit_table, unit_tables

__all__ = [
    "DEFAULT_COPY_THRESHOLD_ROWS",
    "DEFAULT_FOREIGN_SCHEMA",
    "DEFAULT_MAX_TABLES_PER_UNIT",
    "DEFAULT_ROWS_PER_PART",
    "DEFAULT_SPLIT_THRESHOLD_ROWS",
    "STRATEGIES",
    "Analysis",
    "KeyRange",
    "LoadUnit",
    "Mapping",
    "PlanOptions",
    "PlanResult",
    "Strategy",
    "StrategyDecision",
    "TablePlan",
    "UnitTable",
    "analyze",
    "choose_strategy",
    "decide_strategy",
    "load_mapping",
    "one_table_mapping",
    "plan_migration",
    "unit_table",
    "unit_tables",
]
