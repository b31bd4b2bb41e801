"""The trigger form of a migration DAG: Airflow ``Param``s with JSON schemas, and how operators read them.

Every value a user can change per run is a DAG param, so the Airflow UI shows a form (titles,
descriptions) and refuses invalid values before a run is created (``create_dagrun`` validates the
run's conf against these schemas; so does the form). Operators receive the values through templated
fields; Jinja renders to text, which the operators coerce (once, in ``ConfitureBaseOperator.render_template_fields``:
``"False"`` reads as false, a comma-separated list splits), so the DAG keeps Airflow's default
string rendering instead of ``render_template_as_native_obj`` (which would also turn a connection id
such as ``"1"`` into an integer).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param

from airflow_provider_confiture.core.planning import STRATEGIES

TABLES = "tables"
STRATEGY = "strategy"
COPY_THRESHOLD_ROWS = "copy_threshold_rows"
DRY_RUN = "dry_run"
SKIP_CHECKSUM = "skip_checksum"
OVERWRITE_TARGET_WRITES = "overwrite_target_writes"
NAMES = (TABLES, STRATEGY, COPY_THRESHOLD_ROWS, DRY_RUN, SKIP_CHECKSUM, OVERWRITE_TARGET_WRITES)

#: Templates handing each param to an operator's templated field.
TABLES_TEMPLATE = "{{ params.tables | join(',') if params.tables else '' }}"
STRATEGY_TEMPLATE = "{{ params.strategy }}"
COPY_THRESHOLD_TEMPLATE = "{{ params.copy_threshold_rows }}"
DRY_RUN_TEMPLATE = "{{ params.dry_run }}"
CHECKSUM_TEMPLATE = "{{ not params.skip_checksum }}"
OVERWRITE_TARGET_WRITES_TEMPLATE = "{{ params.overwrite_target_writes }}"
#: Label of a mapped per-table task instance in the UI: the table name, or ``table [k/n]`` for a part.
UNIT_LABEL_TEMPLATE = "{{ task.unit['label'] if task.unit is mapping else '' }}"


def migration_params(
    strategy: str = "auto", copy_threshold_rows: int = 10_000, *, overwrite_target_writes: bool = False
) -> dict[str, Param]:
    """The six params of a migration run, with the factory's arguments (validated by
    :class:`~airflow_provider_confiture.dag.options.MigrationOptions`) as defaults."""
    return {
        TABLES: Param(
            [],
            type="array",
            items={"type": "string", "minLength": 1},
            uniqueItems=True,
            title="Tables to migrate",
            description=(
                "Target table names (or mapping entry keys), one per line. Empty: every table of the "
                "target schema. Tables not listed are left untouched."
            ),
        ),
        STRATEGY: Param(
            strategy,
            type="string",
            enum=list(STRATEGIES),
            title="Load strategy",
            description=(
                "auto: streamed COPY from the source for tables with at least 'Copy threshold rows' "
                "rows, postgres_fdw INSERT ... SELECT below; fdw or copy: that strategy for every table "
                "(a table whose transforms only run on the target always uses fdw)."
            ),
        ),
        COPY_THRESHOLD_ROWS: Param(
            copy_threshold_rows,
            type="integer",
            minimum=0,
            title="Copy threshold rows",
            description="With strategy auto, tables with at least this many rows use COPY.",
        ),
        DRY_RUN: Param(
            False,
            type="boolean",
            title="Dry run",
            description=(
                "Plan, validate and log the SQL each table would run; create, load, drop and verify "
                "nothing. The target database is left untouched."
            ),
        ),
        SKIP_CHECKSUM: Param(
            False,
            type="boolean",
            title="Skip checksum",
            description=(
                "Verify row counts only, not content checksums (faster on very large tables; a "
                "changed value then goes unnoticed)."
            ),
        ),
        OVERWRITE_TARGET_WRITES: Param(
            overwrite_target_writes,
            type="boolean",
            title="Overwrite target writes",
            description=(
                "Reload tables even though something other than the migration (the application, after "
                "cutover) wrote to them since their last load; those writes are lost. Off: the run "
                "fails at analyze listing such tables, and nothing changes. Only for rehearsal targets."
            ),
        ),
    }


def add_missing_params(dag: Any, params: dict[str, Param]) -> list[str]:
    """Add ``params`` a DAG does not define yet (a task group inside a larger DAG); returns names added.

    A param the DAG already defines wins, so a DAG author can set other defaults or share one
    ``tables`` param between several migrations.
    """
    added = []
    for name, param in params.items():
        if name not in dag.params:
            dag.params[name] = param
            added.append(name)
    return added
