"""Setup step: the postgres_fdw link and the bookkeeping schema, for exactly the tables a plan needs.

Database creation and DDL (:mod:`target_database`) come first, because which source tables are
needed depends on which target tables exist.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_confiture.core import catalog, fdw, state
from airflow_provider_confiture.core.plan import PlanOptions, TablePlan


def source_tables_by_schema(
    plans: list[TablePlan], source_catalog: catalog.Catalog
) -> dict[str, list[catalog.Table]]:
    out: dict[str, list[catalog.Table]] = {}
    for plan in plans:
        table = source_catalog.get(plan.source)
        if table is not None and table not in out.setdefault(plan.source.schema or "", []):
            out[plan.source.schema or ""].append(table)
    return out


def ensure_extension_recorded(target_conn: Any) -> bool:
    """Create postgres_fdw if missing (remembering that setup created it, so cleanup drops it only
    then). Run before the DDL: a target that cannot have the extension fails before anything is
    built. Commits. True when this call created it."""
    state.ensure_state_schema(target_conn)
    created = fdw.ensure_extension(target_conn)
    if created:
        state.set_setting(target_conn, "created_extension", "true")
    target_conn.commit()
    return created


def setup_link(
    target_conn: Any,
    link: fdw.FdwLink,
    plans: list[TablePlan],
    source_catalog: catalog.Catalog,
    options: PlanOptions,
) -> dict[str, Any]:
    """Create or refresh extension, server, user mapping and foreign tables. Commits."""
    created_extension = ensure_extension_recorded(target_conn)
    server = fdw.ensure_server(target_conn, link)
    mapping = fdw.ensure_user_mapping(target_conn, link)
    state.set_setting(target_conn, "fdw_server", link.server)
    imports: dict[str, Any] = {}
    for source_schema, tables in source_tables_by_schema(plans, source_catalog).items():
        local = options.foreign_schema_for(source_schema)
        imports[local] = fdw.import_tables(target_conn, link, source_schema, local, tables)
        state.set_setting(target_conn, f"foreign_schema:{local}", source_schema)
    target_conn.commit()
    return {
        "extension": "created" if created_extension else "present",
        "server": server,
        "user_mapping": mapping,
        "foreign_tables": imports,
        "fdw_target": f"{link.host}:{link.port}/{link.dbname}",
    }
