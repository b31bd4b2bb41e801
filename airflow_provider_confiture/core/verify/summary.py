"""Verify's verdict for a step: which checks fail it, and the report it returns.

One policy for every verify task (per table, per list of tables, or the migration-wide summary): a
table that does not match fails, except a table that only ``drift``-ed (the source moved on since the
load; sequences fine) when ``fail_on_drift`` is off; any foreign-key problem fails. The report is
JSON for XCom.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_confiture.core.errors import VerificationError
from airflow_provider_confiture.core.verify.checks import DRIFT, TableCheck


@dataclass
class VerifyReport:
    checks: list[TableCheck]
    foreign_key_problems: list[str] = field(default_factory=list)
    failing: list[TableCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failing and not self.foreign_key_problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "tables": [c.to_dict() for c in self.checks],
            "foreign_key_problems": list(self.foreign_key_problems),
            "ok": self.ok,
        }

    def raise_if_failed(self) -> None:
        """VerificationError naming every failing table (with its detail) and foreign-key problem."""
        if self.ok:
            return
        lines = [
            f"{c.label}: {c.detail or c.status}"
            + (f"; {'; '.join(c.sequence_problems)}" if c.sequence_problems else "")
            for c in self.failing
        ]
        lines += self.foreign_key_problems
        raise VerificationError("verification failed:\n  " + "\n  ".join(lines))


def summarize(
    checks: list[TableCheck], foreign_key_problems: list[str] | None = None, *, fail_on_drift: bool = True
) -> VerifyReport:
    failing = [
        c for c in checks if not c.ok and not (c.status == DRIFT and not fail_on_drift and c.sequences_ok)
    ]
    return VerifyReport(checks, list(foreign_key_problems or []), failing)


def checks_from_results(results: Any) -> list[TableCheck]:
    """The per-table checks inside the XComs of verify tasks (one dict, or a list of them; each a
    report with ``tables`` or a single check)."""
    if isinstance(results, dict):  # xcom_pull gives one value, not a list, for one mapped instance
        results = [results]
    out: list[TableCheck] = []
    for r in _flatten(r for r in (results or []) if r):
        out.append(TableCheck(**{k: v for k, v in r.items() if k != "ok"}))
    return out


def _flatten(results: Iterable[Any]) -> list[dict[str, Any]]:
    out = []
    for r in results:
        if isinstance(r, dict) and "tables" in r:
            out.extend(r["tables"])
        elif isinstance(r, dict):
            out.append(r)
    return out
