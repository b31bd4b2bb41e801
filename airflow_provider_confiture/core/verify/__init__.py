"""The verify room: source (mapping applied) against target, per table, and the step's verdict."""

from airflow_provider_confiture.core.verify.checks import (
    DRIFT,
    MATCH,
    MISMATCH,
    TARGET_WRITTEN,
    Status,
    TableCheck,
    foreign_key_problems,
    verify_plans,
    verify_table,
)
from airflow_provider_confiture.core.verify.render import render_checks, render_verdicts
from airflow_provider_confiture.core.verify.run import run_verify
from airflow_provider_confiture.core.verify.summary import VerifyReport, checks_from_results, summarize

__all__ = [
    "DRIFT",
    "MATCH",
    "MISMATCH",
    "TARGET_WRITTEN",
    "Status",
    "TableCheck",
    "VerifyReport",
    "checks_from_results",
    "foreign_key_problems",
    "render_checks",
    "render_verdicts",
    "run_verify",
    "summarize",
    "verify_plans",
    "verify_table",
]
