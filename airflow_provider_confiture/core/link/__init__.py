"""The link room: the target database built from DDL, linked to the source by postgres_fdw, and
the link removed once the migration is over."""

from airflow_provider_confiture.core.link.build import build_and_link
from airflow_provider_confiture.core.link.cleanup import cleanup
from airflow_provider_confiture.core.link.fdw import (
    DEFAULT_FETCH_SIZE,
    DEFAULT_SERVER,
    FdwLink,
    ensure_extension_recorded,
    setup_link,
)
from airflow_provider_confiture.core.link.target_database import apply_ddl, database_exists, ensure_database

__all__ = [
    "DEFAULT_FETCH_SIZE",
    "DEFAULT_SERVER",
    "FdwLink",
    "apply_ddl",
    "build_and_link",
    "cleanup",
    "database_exists",
    "ensure_database",
    "ensure_extension_recorded",
    "setup_link",
]
