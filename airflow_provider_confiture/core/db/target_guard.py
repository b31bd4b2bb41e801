"""The target guard: does anything but the migration itself write to a migrated table?

Once the application is cut over to the new database, a re-run of the migration (a scheduled DAG,
a well-meant manual run) would empty every table and reload it from the old database, silently
destroying the application's writes. The guard makes the migration notice such writes and refuse.

On each migrated target table (and on each of its partitions: a statement-level trigger on a
partitioned table does not fire for statements naming a partition) the load installs a trigger
``confiture_guard``, ``AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ... FOR EACH STATEMENT``,
``ENABLE ALWAYS`` (it fires under ``session_replication_role = replica`` too, e.g. for a logical
replication subscriber). It calls ``_confiture.guard_write()``, which:

* returns at once in the migration's own writing transactions: they call :func:`mark_own_writes`,
  which sets ``confiture.writer`` for the transaction only (the load, its retries and re-runs; the
  catch-up apply);
* otherwise bumps the table's counter sequence (``nextval``: no row lock, so concurrent application
  writers never queue behind each other, and a sequence survives a restart and a statistics reset,
  which the ``pg_stat`` counters do not), and records the first and last write time (each a sequence
  too, set with ``setval``), touching them at most once per second per session: a session setting
  remembers the second it last did, so the usual statement costs one ``nextval`` and two
  ``current_setting`` calls (benchmarks/bench_guard.py measures it).

Counters only ever grow. The load stores the counter's value it started from as the table's
``baseline`` (``_confiture.target_guard``), and resets the first/last times (``ALTER SEQUENCE ...
RESTART`` is transactional: a rolled-back load resets nothing); "written since its last load" is
"counter now > baseline". Sequences are not transactional, so a write the application rolled back is
counted too: the guard errs on the side of refusing.

The trigger function is ``SECURITY DEFINER`` (owned by the migration's role, with a fixed
``search_path``), so application roles need no privilege on ``_confiture``. Cleanup removes the
triggers, sequences and function (:func:`remove_guards`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from airflow_provider_confiture.core.db import dbapi, state
from airflow_provider_confiture.core.db.dbapi import Connection
from airflow_provider_confiture.core.names import QualifiedName

TRIGGER_NAME = "confiture_guard"
FUNCTION_NAME = "guard_write"
#: The setting that marks a transaction's writes as the migration's own (see :func:`mark_own_writes`).
WRITER_SETTING = "confiture.writer"

#: Every name qualified (and search_path fixed as well): it runs SECURITY DEFINER for any role. Few,
#: simple expressions: PL/pgSQL sets each up again in every transaction, and an application in
#: autocommit pays that per statement (measured: benchmarks/bench_guard.py).
_FUNCTION_BODY = """
DECLARE
    at pg_catalog.int8;
BEGIN
    IF pg_catalog.current_setting('confiture.writer', true) OPERATOR(pg_catalog.=) 'on' THEN
        RETURN NULL;
    END IF;
    PERFORM pg_catalog.nextval(TG_ARGV[0]::pg_catalog.regclass);
    -- The write times: touched at most once per second per session (TG_ARGV[3] remembers the second).
    IF pg_catalog.current_setting(TG_ARGV[3], true) IS NULL
       OR pg_catalog.current_setting(TG_ARGV[3], true) OPERATOR(pg_catalog.<>)
          pg_catalog.date_part('epoch', pg_catalog.statement_timestamp())::pg_catalog.int8::pg_catalog.text THEN
        at := pg_catalog.date_part('epoch', pg_catalog.statement_timestamp())::pg_catalog.int8;
        PERFORM pg_catalog.set_config(TG_ARGV[3], at::pg_catalog.text, false);
        IF pg_catalog.pg_sequence_last_value(TG_ARGV[2]::pg_catalog.regclass) IS NULL THEN
            PERFORM pg_catalog.setval(TG_ARGV[1]::pg_catalog.regclass, at);
        END IF;
        IF coalesce(pg_catalog.pg_sequence_last_value(TG_ARGV[2]::pg_catalog.regclass), 0)
           OPERATOR(pg_catalog.<) at THEN
            PERFORM pg_catalog.setval(TG_ARGV[2]::pg_catalog.regclass, at);
        END IF;
    END IF;
    RETURN NULL;
END
"""


def mark_own_writes(conn: Connection) -> None:
    """Mark the current transaction's writes as the migration's own: the guard does not count them.

    Transaction-local (``SET LOCAL``): call it inside the writing transaction, after any rollback or
    commit that starts a new one (in autocommit mode it would last one statement only). Every
    migration step that writes to target tables (the load, the catch-up apply) calls it.
    """
    dbapi.execute(conn, "SELECT set_config(%s, 'on', true)", (WRITER_SETTING,))


@dataclass(frozen=True)
class TargetWrites:
    """Writes to one target table from outside the migration since its last load."""

    table: str
    statements: int
    first_write: dt.datetime | None
    last_write: dt.datetime | None

    def describe(self) -> str:
        """``12 write statements between <first> and <last>``, the figures the guard recorded."""
        what = f"{self.statements:,} write statement{'s' if self.statements != 1 else ''}"
        if self.first_write and self.last_write and self.first_write != self.last_write:
            return f"{what} (INSERT/UPDATE/DELETE/TRUNCATE) between {_at(self.first_write)} and {_at(self.last_write)}"
        if self.last_write or self.first_write:
            return f"{what} (INSERT/UPDATE/DELETE/TRUNCATE) at {_at(self.last_write or self.first_write)}"
        return f"{what} (INSERT/UPDATE/DELETE/TRUNCATE)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "statements": self.statements,
            "first_write": _at(self.first_write) if self.first_write else None,
            "last_write": _at(self.last_write) if self.last_write else None,
            "detail": self.describe(),
        }


def _at(moment: dt.datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "an unknown time"


def _quoted(schema: str, name: str) -> str:
    """``"schema"."name"`` as text, for casts to regclass (quoted by psycopg, not by hand)."""
    return sql.Identifier(schema, name).as_string(None)


def _state_object(name: str) -> str:
    return _quoted(state.STATE_SCHEMA, name)


def _regclass(table: QualifiedName) -> sql.Composable:
    """``'"schema"."table"'::regclass``."""
    return sql.SQL("{}::regclass").format(sql.Literal(_quoted(table.schema or "public", table.name)))


def _q(template: str, **kwargs: sql.Composable) -> sql.Composable:
    return sql.SQL(template).format(s=sql.Identifier(state.STATE_SCHEMA), **kwargs)


def _function(conn: Connection) -> sql.Composable:
    return sql.Identifier(state.STATE_SCHEMA, FUNCTION_NAME)


def _guard_table_exists(conn: Connection) -> bool:
    return bool(
        dbapi.fetch_value(conn, "SELECT to_regclass(%s) IS NOT NULL", (_state_object("target_guard"),))
    )


def _guard_row(conn: Connection, table: QualifiedName) -> tuple[Any, ...] | None:
    """(table oid, counter, first, last sequence names, baseline) of ``table``'s guard, or None."""
    if not _guard_table_exists(conn):
        return None
    return dbapi.fetch_one(
        conn,
        _q(
            "SELECT table_oid, counter_sequence, first_sequence, last_sequence, baseline "
            "FROM {s}.target_guard WHERE table_schema = %s AND table_name = %s"
        ),
        (table.schema or "public", table.name),
    )


def _unguarded_relations(conn: Connection, table: QualifiedName) -> list[tuple[int, str, str]]:
    """(oid, schema, name) of ``table`` and its partitions that lack the guard trigger."""
    return dbapi.fetch_all(
        conn,
        sql.SQL(
            # pg_partition_tree() returns nothing for a table that is not partitioned.
            "WITH tree AS (SELECT {rel} AS relid, 0 AS level UNION SELECT relid, level FROM pg_partition_tree({rel})) "
            "SELECT c.oid::bigint, n.nspname, c.relname FROM tree p "
            "JOIN pg_class c ON c.oid = p.relid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') AND NOT EXISTS "
            "(SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = {name}) "
            "ORDER BY min(p.level) OVER (PARTITION BY c.oid), 2, 3"
        ).format(rel=_regclass(table), name=sql.Literal(TRIGGER_NAME)),
    )


def guard_installed(conn: Connection, table: QualifiedName) -> bool:
    """True when ``table`` (and every partition of it) carries the guard. Read-only."""
    row = _guard_row(conn, table)
    oid = dbapi.fetch_value(conn, sql.SQL("SELECT {}::oid::bigint").format(_regclass(table)))
    return row is not None and int(row[0]) == int(oid) and not _unguarded_relations(conn, table)


def _ensure_function(conn: Connection) -> None:
    """Create the trigger function, or bring one from an older version of this provider up to date."""
    current = dbapi.fetch_value(
        conn,
        "SELECT p.prosrc FROM pg_proc p WHERE p.oid = to_regprocedure(%s)",
        (_state_object(FUNCTION_NAME) + "()",),
    )
    if current == _FUNCTION_BODY:
        return
    dbapi.execute(
        conn,
        sql.SQL(
            "CREATE OR REPLACE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER "
            "SET search_path = pg_catalog, pg_temp AS {}"
        ).format(_function(conn), sql.Literal(_FUNCTION_BODY)),
    )
    dbapi.execute(conn, sql.SQL("REVOKE ALL ON FUNCTION {}() FROM PUBLIC").format(_function(conn)))


def install_guard(conn: Connection, table: QualifiedName) -> bool:
    """Install the guard on ``table`` and its partitions unless present; commits. True if it did.

    Runs in its own short transaction before a load, serialized with other installers by an advisory
    lock, so parallel key-range loads of one table never race to create the same objects (and the
    load itself then holds no lock of ours). A table recreated since (another oid) gets a fresh guard.
    """
    dbapi.safe_rollback(conn)
    if guard_installed(conn, table):
        dbapi.safe_rollback(conn)
        return False
    dbapi.execute(conn, "SELECT pg_advisory_xact_lock(hashtextextended('confiture:target_guard', 0))")
    state.ensure_state_schema(conn)
    _ensure_function(conn)
    oid = int(dbapi.fetch_value(conn, sql.SQL("SELECT {}::oid::bigint").format(_regclass(table))))
    row = _guard_row(conn, table)
    if row is not None and int(row[0]) != oid:
        _drop_sequences(conn, row[1:4])
        dbapi.execute(
            conn,
            _q("DELETE FROM {s}.target_guard WHERE table_schema = %s AND table_name = %s"),
            (table.schema or "public", table.name),
        )
        row = None
    if row is None:
        names = tuple(f"guard_{oid}_{what}" for what in ("writes", "first", "last"))
        for name in names:
            dbapi.execute(
                conn,
                sql.SQL("CREATE SEQUENCE IF NOT EXISTS {} AS bigint MINVALUE 0 START WITH 1").format(
                    sql.Identifier(state.STATE_SCHEMA, name)
                ),
            )
        dbapi.execute(
            conn,
            _q(
                "INSERT INTO {s}.target_guard (table_schema, table_name, table_oid, counter_sequence, "
                "first_sequence, last_sequence) VALUES (%s, %s, %s, %s, %s, %s)"
            ),
            (table.schema or "public", table.name, oid, *names),
        )
        row = (oid, *names, 0)
    args = [sql.Literal(_state_object(name)) for name in row[1:4]]
    args.append(sql.Literal(f"confiture.{row[1]}_at"))  # the session's "times written this second"
    for _, schema, name in _unguarded_relations(conn, table):
        rel = sql.Identifier(schema, name)
        dbapi.execute(
            conn,
            sql.SQL(
                "CREATE TRIGGER {} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {} "
                "FOR EACH STATEMENT EXECUTE FUNCTION {}({})"
            ).format(sql.Identifier(TRIGGER_NAME), rel, _function(conn), sql.SQL(", ").join(args)),
        )
        dbapi.execute(
            conn,
            sql.SQL("ALTER TABLE {} ENABLE ALWAYS TRIGGER {}").format(rel, sql.Identifier(TRIGGER_NAME)),
        )
    conn.commit()
    return True


def _counter(conn: Connection, sequence: str) -> int:
    return int(
        dbapi.fetch_value(
            conn,
            sql.SQL("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {}").format(
                sql.Identifier(state.STATE_SCHEMA, sequence)
            ),
        )
    )


def _moment(conn: Connection, sequence: str) -> dt.datetime | None:
    value = dbapi.fetch_value(
        conn,
        sql.SQL("SELECT pg_sequence_last_value({}::regclass)").format(sql.Literal(_state_object(sequence))),
    )
    return None if value is None else dt.datetime.fromtimestamp(int(value), tz=dt.UTC)


@dataclass(frozen=True)
class GuardState:
    """What a load reads before it empties a table: the counter now, and writes since the last load."""

    counter: int
    writes: TargetWrites | None


def guard_state(conn: Connection, table: QualifiedName) -> GuardState | None:
    """The guard's reading for ``table``, or None when it carries no guard. Read-only."""
    row = _guard_row(conn, table)
    if row is None:
        return None
    _, counter_seq, first_seq, last_seq, baseline = row
    now = _counter(conn, counter_seq)
    if now <= int(baseline):
        return GuardState(now, None)
    writes = TargetWrites(str(table), now - int(baseline), _moment(conn, first_seq), _moment(conn, last_seq))
    return GuardState(now, writes)


def writes_since_load(conn: Connection, table: QualifiedName) -> TargetWrites | None:
    """Writes from outside the migration since ``table``'s last load, or None. Read-only."""
    reading = guard_state(conn, table)
    return reading.writes if reading else None


def record_load(conn: Connection, table: QualifiedName, counter: int) -> None:
    """In the load's transaction, just before it commits: the table's writes so far are its own
    (baseline = the counter the load started from), and the write times start afresh."""
    row = _guard_row(conn, table)
    if row is None:
        return
    dbapi.execute(
        conn,
        _q(
            "UPDATE {s}.target_guard SET baseline = greatest(baseline, %s), loaded_at = now() "
            "WHERE table_schema = %s AND table_name = %s"
        ),
        (counter, table.schema or "public", table.name),
    )
    for sequence in row[2:4]:
        dbapi.execute(
            conn,
            sql.SQL("ALTER SEQUENCE {} RESTART").format(sql.Identifier(state.STATE_SCHEMA, sequence)),
        )


def _drop_sequences(conn: Connection, names: Any) -> None:
    for name in names:
        dbapi.execute(
            conn, sql.SQL("DROP SEQUENCE IF EXISTS {}").format(sql.Identifier(state.STATE_SCHEMA, name))
        )


def remove_guards(conn: Connection) -> list[str]:
    """Drop every guard trigger, the guards' sequences and the trigger function (cleanup). Does not
    commit. Returns the tables (and partitions) whose trigger was dropped."""
    function = dbapi.fetch_value(
        conn, "SELECT to_regprocedure(%s)::oid::bigint", (_state_object(FUNCTION_NAME) + "()",)
    )
    removed: list[str] = []
    if function is not None:
        for trigger, schema, name in dbapi.fetch_all(
            conn,
            "SELECT t.tgname, n.nspname, c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE t.tgfoid = %s ORDER BY 1, 2",
            (function,),
        ):
            dbapi.execute(
                conn,
                sql.SQL("DROP TRIGGER {} ON {}").format(
                    sql.Identifier(trigger), sql.Identifier(schema, name)
                ),
            )
            removed.append(str(QualifiedName(schema, name)))
    if _guard_table_exists(conn):
        for names in dbapi.fetch_all(
            conn, _q("SELECT counter_sequence, first_sequence, last_sequence FROM {s}.target_guard")
        ):
            _drop_sequences(conn, names)
        dbapi.execute(conn, _q("DELETE FROM {s}.target_guard"))
    if function is not None:
        dbapi.execute(conn, sql.SQL("DROP FUNCTION {}()").format(_function(conn)))
    return removed


def refusal(written: dict[str, str], *, step: str = "the load") -> str:
    """Why ``step`` refuses: each table (name -> what was written, when and how much), and how to
    proceed."""
    if len(written) == 1:
        ((table, detail),) = written.items()
        what = f"table {table} has taken writes that are not the migration's since its last load: {detail}."
    else:
        tables = "\n  ".join(f"{table}: {detail}" for table, detail in written.items())
        what = f"these tables have taken writes that are not the migration's since their last load:\n  {tables}\n"
    return (
        f"{what} The application is probably using the new database: reloading would destroy those "
        f"writes, so {step} refused and nothing was changed. To overwrite on purpose (a rehearsal "
        "target), run with overwrite_target_writes=true (the run form's 'Overwrite target writes', the "
        "factory option or the operator argument)"
    )
