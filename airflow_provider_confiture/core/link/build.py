"""The setup step on an existing target database: the extension, the DDL (once), then the link for
exactly the tables the mapping needs (which depends on the target tables the DDL created)."""

from __future__ import annotations

from typing import Any

from airflow_provider_confiture.core.db.dbapi import Connection
from airflow_provider_confiture.core.link import target_database
from airflow_provider_confiture.core.link.fdw import (
    FdwLink,
    ensure_extension_recorded,
    precheck_link,
    setup_link,
)
from airflow_provider_confiture.core.planning.mapping import Mapping
from airflow_provider_confiture.core.planning.plan import PlanOptions, plan_migration


def build_and_link(
    source_conn: Connection,
    target_conn: Connection,
    mapping: Mapping,
    options: PlanOptions,
    link: FdwLink,
    *,
    ddl_path: str | None = None,
    tables: list[str] | None = None,
) -> dict[str, Any]:
    """Create postgres_fdw (first, so a target that cannot have it fails before anything is built),
    apply the DDL not applied yet, and link the source tables the plans read. Commits. The link's
    options are checked against the target server's postgres_fdw before anything changes."""
    report: dict[str, Any] = {}
    precheck_link(target_conn, link)
    created_extension = ensure_extension_recorded(target_conn)
    if ddl_path:
        report["ddl"] = target_database.apply_ddl(target_conn, ddl_path)
    result, source_catalog = plan_migration(source_conn, target_conn, mapping, options, tables)
    report.update(setup_link(target_conn, link, result.plans, source_catalog, options))
    if created_extension:
        report["extension"] = "created"
    return report
