"""The analyze task of a factory-built DAG: AnalyzeOperator whose return value is the list of load units.

Airflow maps tasks only over a task's *return value* (a list), not over one key of a returned dict
(``task.output["units"]`` names another XCom key, which cannot be mapped over). So this task returns
``units`` (one per mapped per-table task instance: a whole table, or one key range ``table [k/n]`` of a
large one) and pushes the whole analysis (tables, sizes, strategies, estimates, skipped tables) under
the XCom key ``analysis``.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_confiture.operators.analyze import AnalyzeOperator

ANALYSIS_XCOM_KEY = "analysis"


class AnalyzeUnitsOperator(AnalyzeOperator):
    """Plan, validate and estimate the migration (see AnalyzeOperator); return its load units."""

    def execute(self, context: Any) -> list[dict[str, Any]]:
        analysis = super().execute(context)
        context["ti"].xcom_push(key=ANALYSIS_XCOM_KEY, value=analysis)
        units = list(analysis["units"])
        self.log.info("%d load task(s): %s", len(units), ", ".join(u["label"] for u in units) or "none")
        return units
