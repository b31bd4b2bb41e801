"""VerifyOperator: row counts, content checksums, foreign keys and sequences; fails naming each table
that differs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_provider_confiture.core import verify as verify_core
from airflow_provider_confiture.core.analyze import plan_migration
from airflow_provider_confiture.core.errors import VerificationError
from airflow_provider_confiture.core.ranges import KeyRange
from airflow_provider_confiture.core.validate import validate_table
from airflow_provider_confiture.operators.base import ConfitureBaseOperator, as_bool, as_tables


class VerifyOperator(ConfitureBaseOperator):
    """Compare source (mapping applied) and target.

    Three uses: one ``unit`` (a table or key range, after its load); a list of ``tables`` (None = all);
    or ``table_results`` (the XComs of per-table verify tasks) to summarise them and check the
    migration-wide facts (foreign keys in force and validated) without scanning tables again.

    :param checksum: compare content checksums, not only row counts.
    :param fail_on_drift: fail when the source changed since the load (True), or only report it.
    :param check_foreign_keys: also require every foreign key of the migrated tables to be validated.
    :param dry_run: a dry run loaded nothing, so there is nothing to compare: log and succeed.
    """

    template_fields: Sequence[str] = (
        *ConfitureBaseOperator.template_fields,
        "tables",
        "unit",
        "checksum",
        "table_results",
        "dry_run",
    )

    def __init__(
        self,
        *,
        tables: list[str] | str | None = None,
        unit: dict[str, Any] | None = None,
        table_results: Any = None,
        checksum: bool | str = True,
        fail_on_drift: bool = True,
        check_foreign_keys: bool | None = None,
        dry_run: bool | str = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.tables = tables
        self.unit = unit
        self.table_results = table_results
        self.checksum = checksum
        self.fail_on_drift = fail_on_drift
        self.check_foreign_keys = check_foreign_keys
        self.dry_run = dry_run

    def execute(self, context: Any) -> dict[str, Any]:
        if as_bool(self.dry_run):
            self.log.info("Dry run: no data was loaded, nothing to verify")
            return {"tables": [], "foreign_key_problems": [], "ok": True, "dry_run": True}
        mapping = self.load_mapping()
        options = self.plan_options()
        unit = self.unit or {}
        tables = [unit["table"]] if unit.get("table") else as_tables(self.tables)
        key_range = KeyRange.from_dict(unit["key_range"]) if unit.get("key_range") else None
        check_fks = self.check_foreign_keys if self.check_foreign_keys is not None else not unit
        checks: list[verify_core.TableCheck] = []
        with self.both() as (source_conn, target_conn):
            result, _ = plan_migration(source_conn, target_conn, mapping, options, tables)
            if self.table_results is not None:
                results = self.table_results
                if isinstance(
                    results, dict
                ):  # xcom_pull gives one value, not a list, for one mapped instance
                    results = [results]
                summaries = [r for r in (results or []) if r]
                checks = [
                    verify_core.TableCheck(**{k: v for k, v in r.items() if k != "ok"})
                    for r in _flatten(summaries)
                ]
            else:
                for plan in result.plans:
                    copy_capable = validate_table(
                        source_conn, target_conn, plan, mapping.origin or ""
                    ).copy_capable
                    checks.append(
                        verify_core.verify_table(
                            source_conn,
                            target_conn,
                            plan,
                            checksum=as_bool(self.checksum),
                            via_foreign_table=not copy_capable,
                            key_range=key_range,
                        )
                    )
            fk_problems = (
                verify_core.foreign_key_problems(target_conn, [p.target for p in result.plans])
                if check_fks
                else []
            )
        if checks:
            self.log.info(
                "\n%s\n%s", verify_core.render_checks(checks), verify_core.render_reference_style(checks)
            )
        if check_fks:
            if fk_problems:
                self.log.error("✗ Foreign key integrity:\n  %s", "\n  ".join(fk_problems))
            else:
                self.log.info("✓ Foreign key integrity verified")
        bad = [
            c
            for c in checks
            if not c.ok and not (c.status == verify_core.DRIFT and not self.fail_on_drift and c.sequences_ok)
        ]
        report = {
            "tables": [c.to_dict() for c in checks],
            "foreign_key_problems": fk_problems,
            "ok": not bad and not fk_problems,
        }
        if bad or fk_problems:
            lines = [
                f"{c.label}: {c.detail or c.status}"
                + (f"; {'; '.join(c.sequence_problems)}" if c.sequence_problems else "")
                for c in bad
            ]
            lines += fk_problems
            raise VerificationError("verification failed:\n  " + "\n  ".join(lines))
        return report


def _flatten(results: list[Any]) -> list[dict[str, Any]]:
    out = []
    for r in results:
        if isinstance(r, dict) and "tables" in r:
            out.extend(r["tables"])
        elif isinstance(r, dict):
            out.append(r)
    return out
