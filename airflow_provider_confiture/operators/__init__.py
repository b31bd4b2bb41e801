"""Operators of the schema-to-schema migration, in the order a migration runs them."""

from airflow_provider_confiture.operators.analyze import AnalyzeOperator, AnalyzeUnitsOperator
from airflow_provider_confiture.operators.cleanup import CleanupOperator
from airflow_provider_confiture.operators.fdw_setup import FdwSetupOperator
from airflow_provider_confiture.operators.load_constraints import FinalizeLoadOperator, PrepareLoadOperator
from airflow_provider_confiture.operators.table_migrate import TableMigrateOperator
from airflow_provider_confiture.operators.verify import VerifyOperator

__all__ = [
    "AnalyzeOperator",
    "AnalyzeUnitsOperator",
    "CleanupOperator",
    "FdwSetupOperator",
    "FinalizeLoadOperator",
    "PrepareLoadOperator",
    "TableMigrateOperator",
    "VerifyOperator",
]
