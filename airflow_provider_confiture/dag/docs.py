"""The DAG's rendered documentation (``doc_md``): what it migrates, how a run goes, how to repair.

Paths are shown relative to the DAG file's folder: the docs are rendered where the file is parsed,
and the parsing machine's absolute paths mean nothing to the person reading them in the UI.
"""

from __future__ import annotations

from airflow_provider_confiture.dag.options import MigrationOptions


def migration_doc_md(dag_id: str, options: MigrationOptions, cleanup_dag_id: str | None) -> str:
    entries = [
        f"| `{e.key}` | `{e.source_table}` | `{e.target_table}` | {len(e.columns)} | {e.strategy or 'run param'} |"
        for e in options.mapping.tables
    ]
    table = (
        "| entry | source table | target table | column rules | strategy |\n|---|---|---|---|---|\n"
        + "\n".join(entries)
        if entries
        else "_No mapping entries: every table migrates from the source table of the same name._"
    )
    cleanup = (
        f"When the application runs on the new database and the monitoring period is over, trigger "
        f"**`{cleanup_dag_id}`** by hand: it removes the postgres_fdw link (server `{options.fdw_server_name}`, "
        f"schema `{options.foreign_schema}`). It refuses while a table is not repaired."
        if cleanup_dag_id
        else "Cleanup (removing the postgres_fdw link) is not part of this DAG."
    )
    ddl = options.relative_path(options.ddl_path) or "an existing schema"
    mapping = options.relative_path(options.mapping_path) or "(none)"
    return f"""### Schema-to-schema migration `{dag_id}`

Copies the old database (connection `{options.source_conn_id}`, schema `{options.source_schema}`) into the new
one (connection `{options.target_conn_id}`, schema `{options.target_schema}`) built from
`{ddl}`, with the column mapping `{mapping}`.
The old database is only read.

{table}

**Run**: setup → analyze (plan, validation, estimates; no data moves) → prepare (foreign keys set aside)
→ one `table` instance per table or key range `table [k/n]` (migrate in one transaction, then verify
row count and checksum) → finalize (foreign keys back and validated) → summary. The run is red when any
table failed or differs.

**Params**: `tables` (default: all), `strategy` (default `{options.strategy}`), `copy_threshold_rows`
(default {options.copy_threshold_rows:,}), `dry_run` (log the plan and SQL, change nothing), `skip_checksum`.

**Repairing a table**: each table retries {options.table_retries} time(s) by itself. After fixing the
cause, clear that table's `table.migrate` instance with *Downstream*: it reloads that table alone, then
finalize and summary run again. Re-running the whole DAG re-syncs every table (safe, idempotent); one run
at a time, and a per-table lock keeps two runs from writing one table.

{cleanup}
"""


def cleanup_doc_md(migration_dag_id: str, target_conn_id: str, fdw_server_name: str | None) -> str:
    return (
        f"### Cleanup of migration `{migration_dag_id}`\n\nDrops the foreign tables, user mappings and "
        f"server `{fdw_server_name}` that setup created on `{target_conn_id}`. Trigger it by hand once "
        "the application runs on the new database and the monitoring period is over. It refuses, "
        "changing nothing, while a table of the migration is not repaired or user objects depend on "
        "the foreign tables."
    )
