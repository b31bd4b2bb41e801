"""Load one table: the whole table, or one key range of it, in one target transaction.

A load either commits complete or leaves the table exactly as it was: it empties the table (or its
range) and fills it in the same transaction, so a failure, a kill or a retry can never leave it half
written or duplicated. The source is read in one REPEATABLE READ, READ ONLY transaction (one
consistent snapshot), and nothing is ever written to it.

Before emptying a table the load checks its target guard (:mod:`core.db.target_guard`, installed on
the first load): if anything but the migration wrote to it since its last load, the load refuses
(TargetWrittenError) unless ``overwrite_target_writes``; its own writes are marked as such.

Strategies:

* ``copy``: ``COPY (SELECT ...) TO STDOUT`` runs on the source itself and is streamed block by block
  into ``COPY ... FROM STDIN`` on the target (:mod:`copy_stream`), binary when every target column
  has a built-in type, text otherwise.
* ``fdw``: ``INSERT INTO target SELECT ... FROM <foreign table>`` on the target (postgres_fdw with a
  large fetch_size, set by setup).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
import psycopg2
from psycopg import sql

from airflow_provider_confiture.core.db import catalog, dbapi, sqlstate, state, target_guard
from airflow_provider_confiture.core.db.dbapi import Connection
from airflow_provider_confiture.core.errors import MigrationError, TargetWrittenError
from airflow_provider_confiture.core.loading import guards, sequences
from airflow_provider_confiture.core.loading.copy_stream import stream_copy
from airflow_provider_confiture.core.planning import estimates, statements
from airflow_provider_confiture.core.planning.plan import TablePlan
from airflow_provider_confiture.core.planning.ranges import KeyRange

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadOptions:
    defer_indexes: bool = True  # rebuild indexes after the data (whole-table loads only)
    freeze: bool = True  # COPY ... FREEZE into the freshly truncated table
    lock_timeout: str = "60s"  # waiting for another run holding the table gives up after this
    progress_interval: float = 10.0
    stall_timeout: float = 600.0
    #: FDW loads: server-side statement_timeout, and the worker closes the connection a little later
    #: if even the cancel cannot get through. None = 30x the estimated time, at least 15 minutes.
    fdw_timeout: float | None = None
    maintenance_work_mem: str | None = "512MB"
    #: Reload a table even though something other than the migration wrote to it since its last load
    #: (the target guard, core/db/target_guard.py). Off: such a load refuses, changing nothing.
    overwrite_target_writes: bool = False


@dataclass
class LoadResult:
    table: str
    key: str
    strategy: str
    part: str
    rows: int
    seconds: float
    bytes: int | None = None
    copy_format: str | None = None
    set_aside: dict[str, int] = field(default_factory=dict)
    sequences: list[str] = field(default_factory=list)
    dry_run: bool = False
    statements: list[str] = field(default_factory=list)
    #: Writes from outside the migration since the last load (TargetWrites.to_dict): what this load
    #: overwrote on purpose, or, in a dry run, what would make it refuse.
    target_writes: dict[str, Any] | None = None

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["strategy"] = str(self.strategy)  # plain text in XCom, not the enum
        d["rows_per_second"] = round(self.rows_per_second, 1)
        d["seconds"] = round(self.seconds, 3)
        return d


def lock_key(plan: TablePlan, key_range: KeyRange | None = None) -> sql.Composable:
    """Advisory lock key of a target table (or of one key range of it): two runs never load the same
    table or range at the same time, while the ranges of one table load in parallel."""
    name = f"confiture:{plan.target}"
    if key_range is not None:
        name += f":{key_range.lower}:{key_range.upper}"
    return sql.SQL("hashtextextended({}, 0)").format(sql.Literal(name))


def statements_for(plan: TablePlan, strategy: str, key_range: KeyRange | None = None) -> list[str]:
    """The data-moving statements a load would run (logged by dry runs)."""
    extra_src = key_range.source_predicate(plan) if key_range else None
    if strategy == "copy":
        stmts = [
            statements.copy_out(plan, plan.binary_copy, extra_src),
            statements.copy_in(plan, plan.binary_copy, freeze=False),
        ]
    else:
        stmts = [statements.fdw_insert(plan, extra_src)]
    return [s.as_string(None) for s in stmts]


def _empty(conn: Connection, plan: TablePlan, key_range: KeyRange | None) -> None:
    if key_range is None:
        dbapi.execute(conn, sql.SQL("TRUNCATE {}").format(plan.target.identifier()))
    else:
        dbapi.execute(
            conn,
            sql.SQL("DELETE FROM {} WHERE {}").format(
                plan.target.identifier(), key_range.target_predicate(plan)
            ),
        )


def load_table(
    source_conn: Connection,
    target_conn: Connection,
    plan: TablePlan,
    strategy: str,
    *,
    options: LoadOptions | None = None,
    key_range: KeyRange | None = None,
    progress: Callable[[str], None] | None = None,
    rows_probe_factory: Callable[[int], Callable[[], int | None]] | None = None,
    run_id: str | None = None,
) -> LoadResult:
    """Load ``plan``'s table (or ``key_range`` of it) with ``strategy`` ("copy" or "fdw").

    ``run_id`` (the Airflow run's) is recorded in ``_confiture.run_progress`` in the load's own
    transaction, so a retry of a unit of several tables knows which ones this run already loaded.
    """
    options = options or LoadOptions()
    say = progress or log.info
    part = key_range.label if key_range else ""
    whole = key_range is None
    started = time.monotonic()
    dbapi.safe_rollback(target_conn)
    dbapi.safe_rollback(source_conn)
    dbapi.use_deterministic_output(target_conn)
    dbapi.use_deterministic_output(source_conn)
    try:
        # Its own short transaction, committed: parallel loads of a table's ranges never race on it.
        target_guard.install_guard(target_conn, plan.target)
        target_guard.mark_own_writes(target_conn)
        dbapi.execute(
            target_conn, sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(options.lock_timeout))
        )
        key = lock_key(plan, key_range)
        if not dbapi.fetch_value(target_conn, sql.SQL("SELECT pg_try_advisory_xact_lock({})").format(key)):
            say(
                f"{plan.label}{' ' + part if part else ''}: another run is loading it; waiting up to "
                f"{options.lock_timeout}"
            )
            try:
                dbapi.execute(target_conn, sql.SQL("SELECT pg_advisory_xact_lock({})").format(key))
            except dbapi.DB_ERRORS as exc:
                raise MigrationError(
                    f"table {plan.target}{' ' + part if part else ''}: another run of this migration is loading it (waited "
                    f"{options.lock_timeout}); let that run finish, then retry",
                    retryable=True,
                ) from exc
        if whole:
            dbapi.execute(
                target_conn,
                sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(plan.target.identifier()),
            )
        else:
            dbapi.execute(
                target_conn, sql.SQL("LOCK TABLE {} IN ROW EXCLUSIVE MODE").format(plan.target.identifier())
            )
        relkind = dbapi.fetch_value(
            target_conn,
            "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s",
            (plan.target.schema, plan.target.name),
        )
        # Under the table's lock, before anything changes: has anyone else written to it?
        guard = target_guard.guard_state(target_conn, plan.target)
        overwritten = guard.writes if guard else None
        if overwritten and not options.overwrite_target_writes:
            raise TargetWrittenError(target_guard.refusal({str(plan.target): overwritten.describe()}))
        if overwritten:
            say(
                f"{plan.label}{' ' + part if part else ''}: overwriting on purpose (overwrite_target_writes) "
                f"{overwritten.describe()} that were not the migration's"
            )
        # A partitioned table's indexes are not rebuilt: their definitions read "ON ONLY" the parent,
        # and replaying them would leave an invalid parent index and no index on the partitions.
        aside = guards.set_aside(
            target_conn,
            plan.target,
            foreign_keys=whole,
            indexes=whole and options.defer_indexes and relkind == "r",
        )
        _empty(target_conn, plan, key_range)

        # Source: one consistent, read-only snapshot.
        dbapi.execute(source_conn, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        snapshot = dbapi.fetch_value(source_conn, "SELECT pg_current_snapshot()::text")
        counters = catalog.modification_counters(source_conn, plan.source)

        extra_src = key_range.source_predicate(plan) if key_range else None
        result = LoadResult(str(plan.target), plan.key, strategy, part, 0, 0.0)
        if strategy == "copy":
            binary = plan.binary_copy
            result.copy_format = "binary" if binary else "text"
            freeze = options.freeze and whole and relkind == "r"
            probe = None
            if rows_probe_factory is not None:
                probe = rows_probe_factory(dbapi.backend_pid(source_conn))

            def report(nbytes: int, rows: int | None, elapsed: float) -> None:
                rate = f"{rows / elapsed:,.0f} rows/s, " if rows and elapsed else ""
                shown = f"{rows:,} rows, " if rows is not None else ""
                say(
                    f"{plan.label}{' ' + part if part else ''}: {shown}{nbytes / 1e6:,.1f} MB copied "
                    f"({rate}{nbytes / 1e6 / max(elapsed, 1e-9):,.1f} MB/s, {elapsed:,.0f} s)"
                )

            stats = stream_copy(
                source_conn,
                statements.copy_out(plan, binary, extra_src),
                target_conn,
                statements.copy_in(plan, binary, freeze),
                progress=report,
                progress_interval=options.progress_interval,
                rows_probe=probe,
                stall_timeout=options.stall_timeout,
            )
            result.rows, result.bytes = stats.rows, stats.bytes
        elif strategy == "fdw":
            # postgres_fdw reads the source in its own REPEATABLE READ transaction; ours would only sit
            # idle (and be killed by idle_in_transaction_session_timeout on a long load).
            source_conn.commit()
            result.rows = _fdw_insert(target_conn, plan, extra_src, options)
        else:
            raise MigrationError(f"table {plan.target}: unknown strategy {strategy!r} (use fdw or copy)")
        source_conn.commit()

        if options.maintenance_work_mem and aside.indexes:
            dbapi.execute(
                target_conn,
                sql.SQL("SET LOCAL maintenance_work_mem = {}").format(
                    sql.Literal(options.maintenance_work_mem)
                ),
            )
        guards.put_back(target_conn, plan.target, aside)
        result.sequences = sequences.sync_sequences(target_conn, plan.target)
        result.seconds = time.monotonic() - started
        if guard is not None:
            target_guard.record_load(target_conn, plan.target, guard.counter)
        if overwritten:
            result.target_writes = overwritten.to_dict()
        if state.state_schema_exists(target_conn):
            state.record_table_load(
                target_conn,
                plan.target.schema or "",
                plan.target.name,
                part,
                strategy,
                result.rows,
                result.seconds,
                counters,
                snapshot,
            )
            if run_id:
                state.record_loaded_in_run(
                    target_conn, plan.target.schema or "", plan.target.name, part, run_id
                )
        target_conn.commit()
        result.set_aside = aside.summary()
        return result
    except BaseException as exc:
        # Whatever went wrong (a server error, our own check, a kill), the table stays as it was.
        dbapi.safe_rollback(target_conn)
        dbapi.safe_rollback(source_conn)
        if isinstance(exc, dbapi.DB_ERRORS):
            raise _explain_failure(plan, exc) from exc
        raise


def _fdw_insert(target_conn: Connection, plan: TablePlan, extra_src: Any, options: LoadOptions) -> int:
    """The FDW load with a deadline, so it cannot hang forever.

    The server cancels the statement at ``fdw_timeout``; on PostgreSQL < 17 postgres_fdw's own cancel
    of the remote query has no timeout and can block on a silent network, so the worker also shuts
    its socket down a little later and the task fails instead of waiting forever.
    """
    deadline = options.fdw_timeout
    if deadline is None:
        deadline = max(900.0, 30 * estimates.estimate_seconds("fdw", plan.estimated_rows, plan.source_bytes))
    session_ms = int(
        dbapi.fetch_value(
            target_conn, "SELECT setting::bigint FROM pg_settings WHERE name = 'statement_timeout'"
        )
    )
    if 0 < session_ms < deadline * 1000:
        deadline = session_ms / 1000  # a stricter statement_timeout chosen by the user wins
    dbapi.execute(
        target_conn,
        sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(f"{int(deadline * 1000)}ms")),
    )
    expired = threading.Event()

    def give_up() -> None:
        expired.set()
        dbapi.shutdown_socket(target_conn)

    timer = threading.Timer(deadline + min(60.0, max(deadline, 1.0)), give_up)
    timer.daemon = True
    timer.start()
    try:
        rows = dbapi.execute(target_conn, statements.fdw_insert(plan, extra_src))
        # The rest of the transaction (index rebuilds) runs under the session's own timeout.
        dbapi.execute(target_conn, "SET LOCAL statement_timeout = DEFAULT")
        return rows
    except dbapi.DB_ERRORS as exc:
        if expired.is_set():
            raise MigrationError(
                f"table {plan.target} (entry {plan.key!r}): the FDW load exceeded its deadline of {deadline:.0f} s "
                "and the cancel did not get through (is the network between the target server and the "
                "source down?); the connection was closed and the table is unchanged. Raise fdw_timeout "
                "or use the copy strategy",
                retryable=True,
            ) from exc
        raise
    finally:
        timer.cancel()


def _explain_failure(plan: TablePlan, exc: BaseException) -> MigrationError:
    """Turn a server error into an error that names the table, the constraint and the offending key,
    and says whether a retry can succeed (a lost connection or a timeout can; bad data cannot)."""
    text = dbapi.error_text(exc)
    constraint = dbapi.diag(exc, "constraint_name")
    column = dbapi.diag(exc, "column_name")
    code = dbapi.sqlstate(exc) or ""
    head = (
        f"table {plan.target} (entry {plan.key!r}): load failed and was rolled back, the table is unchanged"
    )
    if code.startswith(sqlstate.INTEGRITY_CONSTRAINT_VIOLATION_CLASS):
        what = (
            f"constraint {constraint!r}" if constraint else f"column {column!r}" if column else "a constraint"
        )
        return MigrationError(
            f"{head}. The source data violates {what} of the target: {text.rstrip('.')}. Fix the data with a "
            "'where' filter or a 'transform' in the mapping, or relax the constraint in the DDL"
        )
    # No SQLSTATE on an OperationalError: the client library lost the connection itself.
    client_side = not code and isinstance(exc, psycopg.OperationalError | psycopg2.OperationalError)
    if sqlstate.is_connection_loss(code) or client_side:
        return MigrationError(
            f"{head}. A database connection was lost ({text}); the retry will load the table again",
            retryable=True,
        )
    if code == sqlstate.QUERY_CANCELED:
        return MigrationError(
            f"{head}. The statement was cancelled or timed out ({text}); raise the timeout or retry",
            retryable=True,
        )
    if code in (sqlstate.LOCK_NOT_AVAILABLE, sqlstate.DEADLOCK_DETECTED):
        return MigrationError(
            f"{head}. Could not lock the table in time ({text}); another session holds it", retryable=True
        )
    return MigrationError(f"{head}: {text}", retryable=sqlstate.is_transient(code))
