"""PrepareLoadOperator and FinalizeLoadOperator: foreign keys set aside before the parallel table
loads and restored (and validated) after them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_confiture.core import loading
from airflow_provider_confiture.operators.base import ConfitureBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class PrepareLoadOperator(ConfitureBaseOperator):
    """Drop (and remember) every foreign key touching the migrated tables, so tables can be emptied
    and loaded in any order and in parallel. FinalizeLoadOperator puts them back."""

    def execute_step(self, context: Context) -> dict[str, Any]:
        self.load_mapping()  # a bad mapping fails here, before anything changes
        if self.dry_run:
            self.log.info("Dry run: foreign keys would be set aside during the load; nothing changed")
            return {"deferred_foreign_keys": [], "dry_run": True}
        with self.both() as (source_conn, target_conn):
            plans = self.plans(source_conn, target_conn, self.tables).plans
            names = loading.defer_foreign_keys(target_conn, [p.target for p in plans])
        self.log.info("Foreign keys set aside until the load ends: %s", ", ".join(names) or "none")
        return {"deferred_foreign_keys": names}


class FinalizeLoadOperator(ConfitureBaseOperator):
    """Re-create the foreign keys set aside by PrepareLoadOperator and validate every foreign key of
    the migrated tables; fails naming each one the data violates."""

    def execute_step(self, context: Context) -> dict[str, Any]:
        if self.dry_run:
            self.log.info("Dry run: nothing to restore")
            return {"restored": [], "validated": [], "dry_run": True}
        with self.both() as (source_conn, target_conn):
            plans = self.plans(source_conn, target_conn).plans
            report = loading.restore_foreign_keys(target_conn, [p.target for p in plans])
        self.log.info(
            "Foreign keys restored: %s; validated: %s",
            ", ".join(report["restored"]) or "none",
            ", ".join(report["validated"]) or "none",
        )
        return report
