"""CleanupOperator: remove the postgres_fdw link once the application runs on the new database."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_confiture.core import link
from airflow_provider_confiture.hooks import connections
from airflow_provider_confiture.operators.base import StepOperator, as_bool

if TYPE_CHECKING:
    from airflow.sdk import Context


class CleanupOperator(StepOperator):
    """Drop the foreign tables, user mappings and server setup created (and the extension if setup
    created it) on the target. Refuses, changing nothing, if user objects depend on the foreign
    tables or the migration still holds foreign keys aside. Never connects to the source.

    :param target_conn_id: Airflow Postgres connection of the new database. (templated)
    :param fdw_server_name: foreign server to remove (default: the one setup recorded). (templated)
    :param keep_state: keep the ``_confiture`` bookkeeping schema.
    """

    template_fields: Sequence[str] = ("target_conn_id", "fdw_server_name")

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

    def execute_step(self, context: Context) -> dict[str, Any]:
        with connections.connect(self.target_conn_id) as conn:
            report = link.cleanup(conn, self.fdw_server_name, keep_state=as_bool(self.keep_state))
        self.log.info(
            "Removed server %s, %d foreign tables, user mappings for %s, schemas %s; extension %s; "
            "target guard removed from %s",
            report["server"],
            len(report["foreign_tables"]),
            report["user_mappings"] or "none",
            report["schemas"] or "none",
            report["extension"],
            ", ".join(report["guards_removed"]) or "no table",
        )
        return report
