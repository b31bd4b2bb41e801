"""The loading room: one table (or key range) per transaction, complete or untouched, and the
foreign keys set aside around the parallel loads."""

from airflow_provider_confiture.core.loading.foreign_keys import defer_foreign_keys, restore_foreign_keys
from airflow_provider_confiture.core.loading.load import LoadOptions, LoadResult, load_table, statements_for
from airflow_provider_confiture.core.loading.unit import BundleLoad, UnitLoad, load_tables, load_unit

__all__ = [
    "BundleLoad",
    "LoadOptions",
    "LoadResult",
    "UnitLoad",
    "defer_foreign_keys",
    "load_table",
    "load_tables",
    "load_unit",
    "restore_foreign_keys",
    "statements_for",
]
