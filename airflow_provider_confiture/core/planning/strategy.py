"""How a table's rows travel: the strategies, and the rule that picks one for a table.

``Strategy`` is a ``StrEnum``: its members compare equal to the plain strings found in mapping YAML,
DAG params and XComs (``Strategy.COPY == "copy"``), so nothing serialised changes.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from airflow_provider_confiture.core.errors import PlanError

if TYPE_CHECKING:
    from airflow_provider_confiture.core.planning.plan import TablePlan


class Strategy(StrEnum):
    #: COPY from this many rows up, FDW below (``copy_threshold_rows``).
    AUTO = "auto"
    #: ``INSERT INTO target SELECT ... FROM <foreign table>`` on the target.
    FDW = "fdw"
    #: ``COPY (SELECT ...) TO STDOUT`` on the source streamed into ``COPY ... FROM STDIN`` on the target.
    COPY = "copy"


#: Every accepted spelling, in the order forms and messages list them.
STRATEGIES: tuple[str, ...] = tuple(s.value for s in Strategy)


def choose_strategy(
    plan: TablePlan, copy_threshold_rows: int, copy_capable: bool = True, copy_problem: str | None = None
) -> Strategy:
    """``fdw`` or ``copy`` for this table; ``auto`` picks COPY from ``copy_threshold_rows`` rows up.

    COPY runs the mapping's expressions on the source; when they only work on the target
    (``copy_capable`` False), ``auto`` falls back to FDW and a forced ``copy`` is an error.
    """
    if plan.requested_strategy == Strategy.COPY:
        if not copy_capable:
            raise PlanError(
                f"entry {plan.key!r}: strategy 'copy' runs the mapping's expressions on the source, where "
                f"they fail ({copy_problem}); use strategy 'fdw' for this table"
            )
        return Strategy.COPY
    if plan.requested_strategy == Strategy.FDW or not copy_capable:
        return Strategy.FDW
    return Strategy.COPY if max(plan.estimated_rows, 0) >= copy_threshold_rows else Strategy.FDW
