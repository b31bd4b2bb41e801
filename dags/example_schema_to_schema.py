"""Example: migrate a small shop database onto its refactored schema, with zero downtime.

The old database (``example_schema_to_schema/old_schema.sql``) keeps serving the application while
this DAG builds the new one from ``example_schema_to_schema/ddl/`` beside it, links the two with
postgres_fdw, and moves the data table by table as ``example_schema_to_schema/mapping.yaml`` says:

==============  ================  ===========================================================
old table       new table         what changes
==============  ================  ===========================================================
tb_user         users             renamed columns, computed display_name (COALESCE), text ->
                                  jsonb settings, timestamp -> timestamptz, a dropped column,
                                  identity id, unique index on lower(login_name)
product         products          renamed columns, integer cents -> numeric(12,2)
orders          orders            status codes 'N'/'P'/'S'/'C' -> words, placed -> placed_at
order_line      order_items       renamed, cents -> numeric, a GENERATED line_total
categories      categories        unchanged: no mapping entry, copied by name
==============  ================  ===========================================================

Foreign keys: users <- orders <- order_items -> products -> categories.

Connections (Airflow Postgres connections; define them in the UI, with ``airflow connections add``,
or as environment variables)::

    AIRFLOW_CONN_CONFITURE_SOURCE=postgresql://USER:PASSWORD@OLD_HOST:5432/shop      # the old database
    AIRFLOW_CONN_CONFITURE_TARGET=postgresql://USER:PASSWORD@NEW_HOST:5432/shop_v2   # the new one

``confiture_source`` is only ever read (read-only sessions). The new database ``shop_v2`` is created by
the ``setup`` task if it does not exist. The *target server* connects to the source with the source
connection's host, port and credentials (postgres_fdw): that host must be reachable from the target
server, not only from Airflow (``fdw_host=`` overrides it).

Nothing here touches a database when the file is parsed: a missing connection only fails a run.
``make demo`` runs this DAG end to end on two local clusters; ``docker compose up`` shows it in the UI.
The companion DAG ``example_schema_to_schema_cleanup`` (trigger it by hand, after cutover) removes
the postgres_fdw link.
"""

from __future__ import annotations

from airflow_provider_confiture import create_schema_to_schema_dag

dag = create_schema_to_schema_dag(
    "example_schema_to_schema",
    mapping_path="example_schema_to_schema/mapping.yaml",  # relative to this file
    ddl_path="example_schema_to_schema/ddl",
    source_conn_id="confiture_source",
    target_conn_id="confiture_target",
    tags=["example"],
)
