"""PrepareLoadOperator and FinalizeLoadOperator: foreign keys set aside before the parallel table
loads and restored (and validated) after them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_provider_confiture.core import foreign_keys
from airflow_provider_confiture.core.analyze import plan_migration
from airflow_provider_confiture.operators.base import ConfitureBaseOperator, as_bool, as_tables


class PrepareLoadOperator(ConfitureBaseOperator):
    """Drop (and remember) every foreign key touching the migrated tables, so tables can be emptied
    and loaded in any order and in parallel. FinalizeLoadOperator puts them back."""

    template_fields: Sequence[str] = (*ConfitureBaseOperator.template_fields, "tables", "dry_run")

    def __init__(self, *, tables: list[str] | str | None = None, dry_run: bool | str = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.tables = tables
        self.dry_run = dry_run

    def execute(self, context: Any) -> dict[str, Any]:
        mapping = self.load_mapping()
        if as_bool(self.dry_run):
            self.log.info("Dry run: foreign keys would be set aside during the load; nothing changed")
            return {"deferred_foreign_keys": [], "dry_run": True}
        with self.both() as (source_conn, target_conn):
            result, _ = plan_migration(
                source_conn, target_conn, mapping, self.plan_options(), as_tables(self.tables)
            )
            names = foreign_keys.defer_foreign_keys(target_conn, [p.target for p in result.plans])
        self.log.info("Foreign keys set aside until the load ends: %s", ", ".join(names) or "none")
        return {"deferred_foreign_keys": names}


class FinalizeLoadOperator(ConfitureBaseOperator):
    """Re-create the foreign keys set aside by PrepareLoadOperator and validate every foreign key of
    the migrated tables; fails naming each one the data violates."""

    template_fields: Sequence[str] = (*ConfitureBaseOperator.template_fields, "dry_run")

    def __init__(self, *, dry_run: bool | str = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.dry_run = dry_run

    def execute(self, context: Any) -> dict[str, Any]:
        if as_bool(self.dry_run):
            self.log.info("Dry run: nothing to restore")
            return {"restored": [], "validated": [], "dry_run": True}
        mapping = self.load_mapping()
        with self.both() as (source_conn, target_conn):
            result, _ = plan_migration(source_conn, target_conn, mapping, self.plan_options())
            report = foreign_keys.restore_foreign_keys(target_conn, [p.target for p in result.plans])
        self.log.info(
            "Foreign keys restored: %s; validated: %s",
            ", ".join(report["restored"]) or "none",
            ", ".join(report["validated"]) or "none",
        )
        return report
