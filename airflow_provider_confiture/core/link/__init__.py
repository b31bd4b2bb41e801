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
from airflow_provider_confiture.core.link.transport import (
    ConnectionSecurity,
    LinkSecurity,
    check_fdw_server_options,
    plan_link_security,
)

__all__ = [
    "ConnectionSecurity",
    "DEFAULT_FETCH_SIZE",
    "DEFAULT_SERVER",
    "FdwLink",
    "LinkSecurity",
    "apply_ddl",
    "build_and_link",
    "check_fdw_server_options",
    "cleanup",
    "database_exists",
    "ensure_database",
    "ensure_extension_recorded",
    "plan_link_security",
    "setup_link",
]
