"""VerifyOperator: row counts, content checksums, foreign keys and sequences; fails naming each table
that differs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_confiture.core import planning, verify
from airflow_provider_confiture.operators.base import ConfitureBaseOperator, as_bool, run_id_of

if TYPE_CHECKING:
    from airflow.sdk import Context


class VerifyOperator(ConfitureBaseOperator):
    """Compare source (mapping applied) and target.

    Three uses: one ``unit`` (a table or key range, after its load); a list of ``tables`` (None = all);
    or ``table_results`` (the XComs of per-table verify tasks) to summarise them and check the
    migration-wide facts (foreign keys in force and validated) without scanning tables again.

    :param unit: one element of AnalyzeOperator's ``units``. (templated)
    :param table_results: XComs of per-table verify tasks to summarise. (templated)
    :param checksum: compare content checksums, not only row counts. (templated)
    :param fail_on_drift: fail when the source changed since the load (True), or only report it.
    :param check_foreign_keys: also require every foreign key of the migrated tables to be validated
        (default: yes, except for one unit).
    """

    template_fields: Sequence[str] = (
        *ConfitureBaseOperator.template_fields,
        "unit",
        "checksum",
        "table_results",
    )

    def __init__(
        self,
        *,
        unit: planning.LoadUnit | None = None,
        table_results: Any = None,
        checksum: bool | str = True,
        fail_on_drift: bool = True,
        check_foreign_keys: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.unit = unit
        self.table_results = table_results
        self.checksum = checksum
        self.fail_on_drift = fail_on_drift
        self.check_foreign_keys = check_foreign_keys

    def convert_rendered_fields(self) -> None:
        super().convert_rendered_fields()
        self.checksum = as_bool(self.checksum)

    def execute_step(self, context: Context) -> dict[str, Any]:
        if self.dry_run:
            self.log.info("Dry run: no data was loaded, nothing to verify")
            return {"tables": [], "foreign_key_problems": [], "ok": True, "dry_run": True}
        unit: dict[str, Any] = dict(self.unit or {})
        table = planning.unit_table(self.unit)
        bundled = [t["table"] for t in planning.unit_tables(self.unit)]
        check_fks = self.check_foreign_keys if self.check_foreign_keys is not None else not unit
        with self.both() as (source_conn, target_conn):
            report = verify.run_verify(
                source_conn,
                target_conn,
                self.load_mapping(),
                self.plan_options(),
                tables=bundled or ([table] if table else self.tables),
                run_id=run_id_of(context) if unit else None,
                key_range=planning.KeyRange.from_dict(unit["key_range"]) if unit.get("key_range") else None,
                checksum=bool(self.checksum),
                table_results=self.table_results,
                check_foreign_keys=check_fks,
                fail_on_drift=self.fail_on_drift,
            )
        if report.checks:
            self.log.info(
                "\n%s\n%s", verify.render_checks(report.checks), verify.render_verdicts(report.checks)
            )
        if report.foreign_key_problems:
            self.log.error("✗ Foreign key integrity:\n  %s", "\n  ".join(report.foreign_key_problems))
        elif check_fks:
            self.log.info("✓ Foreign key integrity verified")
        report.raise_if_failed()
        return report.to_dict()
