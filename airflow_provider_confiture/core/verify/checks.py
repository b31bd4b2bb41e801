"""Verify step: does the target hold exactly the source's rows, with the mapping applied?

Per table (or key range): row count and an order-independent content checksum (count + sum of a
64-bit hash of each row's text) computed on both sides at the same time, the source side with the
mapping's expressions and casts applied so that equal data gives equal text. One changed value, a
missing row or an extra row changes the result. When the counts or checksums differ and the source's
statistics show writes since the table was loaded, the table is reported as ``drift`` (the source
moved on; re-run the table) rather than as corrupt; when the target guard saw writes to the target
table that are not the migration's, as ``target written`` (a reload would destroy them); otherwise
``mismatch``.

Whole-migration checks: foreign keys in force and validated, sequences ahead of their columns.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from airflow_provider_confiture.core.db import catalog, dbapi, state, target_guard
from airflow_provider_confiture.core.db.dbapi import Connection
from airflow_provider_confiture.core.loading import sequences
from airflow_provider_confiture.core.loading.foreign_keys import foreign_key_report
from airflow_provider_confiture.core.names import QualifiedName
from airflow_provider_confiture.core.planning import statements
from airflow_provider_confiture.core.planning.plan import TablePlan
from airflow_provider_confiture.core.planning.ranges import KeyRange
from airflow_provider_confiture.core.planning.validate import validate_table


class Status(StrEnum):
    """A table's verdict; equal to its plain string in XCom (``Status.MATCH == "match"``)."""

    #: Same row count and checksum, sequences ahead of the data.
    MATCH = "match"
    #: The target differs and the source shows no writes since the load: the target is wrong.
    MISMATCH = "mismatch"
    #: The target differs because the source moved on since the load (re-run the table, or catch up).
    DRIFT = "drift"
    #: The target differs because something other than the migration (the application, after
    #: cutover) wrote to it since its load: not an error a reload should "fix" (the target guard).
    TARGET_WRITTEN = "target written"


MATCH, MISMATCH, DRIFT, TARGET_WRITTEN = Status.MATCH, Status.MISMATCH, Status.DRIFT, Status.TARGET_WRITTEN


@dataclass
class TableCheck:
    table: str
    label: str
    part: str
    source_rows: int
    target_rows: int
    source_checksum: str | None
    target_checksum: str | None
    status: str
    detail: str = ""
    sequences_ok: bool = True
    sequence_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == MATCH and self.sequences_ok

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["status"] = str(self.status)  # plain text in XCom, not the enum
        d["ok"] = self.ok
        return d


def _both(
    source_conn: Connection, source_query: Any, target_conn: Connection, target_query: Any
) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """Run one query on each side concurrently (each server scans on its own core)."""
    results: dict[str, Any] = {}

    def run_source() -> None:
        try:
            results["source"] = dbapi.fetch_one(source_conn, source_query)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            results["source_error"] = exc

    thread = threading.Thread(target=run_source, name="confiture-verify-source", daemon=True)
    thread.start()
    try:
        target_row = dbapi.fetch_one(target_conn, target_query)
    finally:
        thread.join()
    if "source_error" in results:
        raise results["source_error"]
    source_row = results["source"]
    assert source_row is not None and target_row is not None  # aggregates always return one row
    return source_row, target_row


def _values_hashable(conn: Connection) -> bool:
    """hash_record_extended() (PostgreSQL 14+) hashes a row's values without printing them as text."""
    info = getattr(conn, "info", None)
    version = getattr(info, "server_version", None) or getattr(conn, "server_version", 0)
    return int(version or 0) >= 140000


def verify_table(
    source_conn: Connection,
    target_conn: Connection,
    plan: TablePlan,
    *,
    checksum: bool = True,
    via_foreign_table: bool = False,
    key_range: KeyRange | None = None,
) -> TableCheck:
    """Compare one table (or key range). ``via_foreign_table`` evaluates the mapping on the target,
    through postgres_fdw, for tables whose expressions only exist there."""
    dbapi.safe_rollback(source_conn)
    dbapi.safe_rollback(target_conn)
    dbapi.use_deterministic_output(source_conn)
    dbapi.use_deterministic_output(target_conn)
    src_filter = key_range.source_predicate(plan) if key_range else None
    tgt_filter = key_range.target_predicate(plan) if key_range else None
    hashed = _values_hashable(source_conn) and _values_hashable(target_conn)
    # The source side runs on the target connection when going through the foreign table.
    src_conn = target_conn if via_foreign_table else source_conn
    if via_foreign_table:
        # One connection cannot run two queries at once: run sequentially.
        s: tuple[Any, ...] | None
        t: tuple[Any, ...] | None
        if checksum:
            s = dbapi.fetch_one(src_conn, statements.source_checksum(plan, True, src_filter, hashed=hashed))
            t = dbapi.fetch_one(target_conn, statements.target_checksum(plan, tgt_filter, hashed=hashed))
        else:
            s = (dbapi.fetch_value(src_conn, statements.source_count(plan, True, src_filter)), None)
            t = (dbapi.fetch_value(target_conn, statements.target_count(plan, tgt_filter)), None)
    elif checksum:
        s, t = _both(
            source_conn,
            statements.source_checksum(plan, False, src_filter, hashed=hashed),
            target_conn,
            statements.target_checksum(plan, tgt_filter, hashed=hashed),
        )
    else:
        s, t = _both(
            source_conn,
            statements.source_count(plan, False, src_filter),
            target_conn,
            statements.target_count(plan, tgt_filter),
        )
        s, t = (s[0], None), (t[0], None)
    assert s is not None and t is not None  # aggregates always return one row
    source_rows, source_sum = int(s[0]), s[1]
    target_rows, target_sum = int(t[0]), t[1]
    equal = source_rows == target_rows and source_sum == target_sum
    status, detail = MATCH, ""
    if not equal:
        status = MISMATCH
        parts = []
        if source_rows != target_rows:
            parts.append(f"row count differs: source {source_rows:,}, target {target_rows:,}")
        elif checksum:
            parts.append("same row count but content differs (checksum)")
        written = target_guard.writes_since_load(target_conn, plan.target)
        dbapi.safe_rollback(target_conn)
        drift = "" if written else _source_drift(source_conn, target_conn, plan, key_range)
        if written:
            status = TARGET_WRITTEN
            parts.append(
                f"target written: {written.describe()} since the load, not by the migration (the "
                "application uses the new database?); a reload would destroy them. Reload only a "
                "rehearsal target, with overwrite_target_writes"
            )
        elif drift:
            status = DRIFT
            parts.append(drift)
        else:
            parts.append(
                "the source shows no writes since the load: the target was changed or loaded wrongly;"
                " re-run this table"
            )
        detail = "; ".join(parts)
    seq_states = [] if key_range else sequences.check_sequences(target_conn, plan.target)
    dbapi.safe_rollback(source_conn)
    dbapi.safe_rollback(target_conn)
    bad_seq = [
        f"{s.sequence} next value {s.next_value} is not beyond {s.column} = {s.column_extreme}"
        for s in seq_states
        if not s.ok
    ]
    return TableCheck(
        table=str(plan.target),
        label=plan.label + (f" {key_range.label}" if key_range else ""),
        part=key_range.label if key_range else "",
        source_rows=source_rows,
        target_rows=target_rows,
        source_checksum=source_sum,
        target_checksum=target_sum,
        status=status,
        detail=detail,
        sequences_ok=not bad_seq,
        sequence_problems=bad_seq,
    )


def _source_drift(
    source_conn: Connection, target_conn: Connection, plan: TablePlan, key_range: KeyRange | None
) -> str:
    """Describe writes the source received since the table was loaded, or '' if none are recorded."""
    part = key_range.label if key_range else ""
    loads = [
        x
        for x in state.table_loads(target_conn, plan.target.schema or "", plan.target.name)
        if x["part"] == part
    ]
    dbapi.safe_rollback(target_conn)
    if not loads or loads[0]["source_inserts"] is None:
        return ""
    now = catalog.modification_counters(source_conn, plan.source)
    dbapi.safe_rollback(source_conn)
    if now is None:
        return ""
    then = (loads[0]["source_inserts"], loads[0]["source_updates"], loads[0]["source_deletes"])
    delta = [a - b for a, b in zip(now, then, strict=True)]
    if any(d < 0 for d in delta):
        return "the source's statistics were reset since the load, so drift cannot be told apart"
    if not any(delta):
        return ""
    return (
        f"drift: the source received {delta[0]:,} inserts, {delta[1]:,} updates and {delta[2]:,} deletes "
        f"since the load at {loads[0]['loaded_at']} (its snapshot was consistent); re-run the table to catch up"
    )


def foreign_key_problems(target_conn: Connection, tables: list[QualifiedName]) -> list[str]:
    problems = []
    for fk in foreign_key_report(target_conn, tables):
        if fk["deferred"]:
            problems.append(
                f"{fk['table']}.{fk['constraint']} is still deferred (not restored): run finalize"
            )
        elif not fk["validated"]:
            problems.append(f"{fk['table']}.{fk['constraint']} is NOT VALID (never checked): run finalize")
    dbapi.safe_rollback(target_conn)
    return problems


def verify_plans(
    source_conn: Connection,
    target_conn: Connection,
    plans: list[TablePlan],
    *,
    origin: str | None = None,
    checksum: bool = True,
    key_range: KeyRange | None = None,
) -> list[TableCheck]:
    """:func:`verify_table` for each plan, evaluating the mapping where the load could: on the source,
    or through the foreign table for mappings whose expressions exist only on the target."""
    out = []
    for plan in plans:
        copy_capable = validate_table(source_conn, target_conn, plan, origin or "<mapping>").copy_capable
        out.append(
            verify_table(
                source_conn,
                target_conn,
                plan,
                checksum=checksum,
                via_foreign_table=not copy_capable,
                key_range=key_range,
            )
        )
    return out
