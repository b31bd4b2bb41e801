"""Verify's report as the task log shows it: a box table, then one verdict line per kind of check."""

from __future__ import annotations

from airflow_provider_confiture.core.db.text_table import box_table
from airflow_provider_confiture.core.verify.checks import (
    DRIFT,
    MATCH,
    MISMATCH,
    TARGET_WRITTEN,
    Status,
    TableCheck,
)


def render_checks(checks: list[TableCheck]) -> str:
    rows = []
    for c in checks:
        mark = {MATCH: "✓", DRIFT: "~", MISMATCH: "✗", TARGET_WRITTEN: "!"}[Status(c.status)]
        if c.status == MATCH and not c.sequences_ok:
            mark = "✗"
        rows.append(
            (
                mark,
                c.label,
                f"{c.source_rows:,}",
                f"{c.target_rows:,}",
                "equal" if c.source_checksum == c.target_checksum else "DIFFERS",
                c.status if c.sequences_ok else f"{c.status}, sequence behind",
            )
        )
    return box_table(["", "Table", "Source rows", "Target rows", "Checksum", "Status"], rows)


def render_verdicts(checks: list[TableCheck]) -> str:
    """The verdict lines under the table: row counts, then checksums, each with its per-table detail."""
    lines = []
    counts_ok = all(c.source_rows == c.target_rows for c in checks)
    lines.append(("✓" if counts_ok else "✗") + " Row counts " + ("match" if counts_ok else "differ"))
    for c in checks:
        sign = "=" if c.source_rows == c.target_rows else "≠"
        lines.append(f"  → {c.label}: {c.source_rows:,} (source) {sign} {c.target_rows:,} (target)")
    sums_ok = all(c.source_checksum == c.target_checksum for c in checks)
    lines.append(("✓" if sums_ok else "✗") + " Checksum verification " + ("passed" if sums_ok else "failed"))
    for c in checks:
        if c.detail:
            lines.append(f"  → {c.label}: {c.detail}")
    return "\n".join(lines)
