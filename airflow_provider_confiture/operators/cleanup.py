"""CleanupOperator: remove the postgres_fdw link once the application runs on the new database."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from airflow_provider_confiture.core import cleanup as cleanup_core
from airflow_provider_confiture.operators import connections


class CleanupOperator(BaseOperator):
    """Drop the foreign tables, user mappings and server setup created (and the extension if setup
    created it) on the target. Refuses, changing nothing, if user objects depend on the foreign
    tables or the migration still holds foreign keys aside. Never connects to the source.

    :param target_conn_id: Airflow Postgres connection of the new database.
    :param fdw_server_name: foreign server to remove (default: the one setup recorded).
    :param keep_state: keep the ``_confiture`` bookkeeping schema.
    """

    template_fields: Sequence[str] = ("target_conn_id", "fdw_server_name")
    ui_color = "#f6d6b8"

    def __init__(
        self,
        *,
        target_conn_id: str,
        fdw_server_name: str | None = None,
        keep_state: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.target_conn_id = target_conn_id
        self.fdw_server_name = fdw_server_name
        self.keep_state = keep_state

    def execute(self, context: Any) -> dict[str, Any]:
        with connections.connect(self.target_conn_id) as conn:
            report = cleanup_core.cleanup(conn, self.fdw_server_name, keep_state=self.keep_state)
        self.log.info(
            "Removed server %s, %d foreign tables, user mappings for %s, schemas %s; extension %s",
            report["server"],
            len(report["foreign_tables"]),
            report["user_mappings"] or "none",
            report["schemas"] or "none",
            report["extension"],
        )
        return report
