"""A live source: a writer keeps inserting, updating and deleting rows during the migration.

* Each table loads (COPY for one, FDW for the other) from one consistent snapshot: the writer only
  makes changes that keep each table's row count and balance total constant (a transfer between two
  rows; a row replaced by a new one with the same balance), so a load that mixed states would show
  it. The loads are slowed so that hundreds of writes commit while each one reads.
* The writer never waits: no lock request on the source is ever seen waiting, and its slowest
  statement stays far below a lock wait.
* Verify tells the truth: ``drift``, with the counts of inserts, updates and deletes since the load,
  never a false match or a crash; after the writer stops and the tables are re-run, it matches.
"""

from __future__ import annotations

import random
import re
import threading
import time

import psycopg
from psycopg import sql

from airflow_provider_confiture.core.errors import VerificationError
from tests.support.steps import raises_step

ROWS = 2000
SOURCE = """
CREATE TABLE accounts (id bigint PRIMARY KEY, owner text NOT NULL, balance bigint NOT NULL);
INSERT INTO accounts SELECT g, 'owner ' || g, 1000 FROM generate_series(1, 2000) g;
CREATE TABLE ledger (id bigint PRIMARY KEY, owner text NOT NULL, balance bigint NOT NULL);
INSERT INTO ledger SELECT g, 'entry ' || g, 50 FROM generate_series(1, 2000) g;
"""
TOTALS = {"accounts": (ROWS, ROWS * 1000), "ledger": (ROWS, ROWS * 50)}
DDL = """
CREATE TABLE accounts (id bigint PRIMARY KEY, owner text NOT NULL, balance bigint NOT NULL);
CREATE TABLE ledger (id bigint PRIMARY KEY, owner text NOT NULL, balance bigint NOT NULL);
"""
# ~1.1 ms per row while reading (the filter is always true): each load spans hundreds of writes.
SLOW = """
accounts: {strategy: copy, where: "pg_sleep(0.0005) IS NOT NULL"}
ledger: {strategy: fdw, where: "pg_sleep(0.0005) IS NOT NULL"}
"""
PLAIN = """
accounts: {strategy: copy}
ledger: {strategy: fdw}
"""


class Writer(threading.Thread):
    """Transfers and replacements that keep each table's count and total, as fast as it can."""

    def __init__(self, conninfo: str) -> None:
        super().__init__(daemon=True, name="live-writer")
        self.conninfo = conninfo
        self.stop = threading.Event()
        self.tally = {"inserts": 0, "updates": 0, "deletes": 0, "transactions": 0}
        self.slowest = 0.0
        self.error: BaseException | None = None
        self.live = {t: list(range(1, ROWS + 1)) for t in TOTALS}
        self.next_id = ROWS + 1

    def _timed(self, cur, query: sql.Composable, params: tuple) -> list:
        started = time.monotonic()
        cur.execute(query, params)
        self.slowest = max(self.slowest, time.monotonic() - started)
        return cur.fetchall() if cur.description else []

    def run(self) -> None:
        rng = random.Random(7)
        try:
            with psycopg.connect(self.conninfo, autocommit=False, application_name="live-writer") as conn:
                cur = conn.cursor()
                while not self.stop.is_set():
                    table = rng.choice(sorted(TOTALS))
                    ids, name = self.live[table], sql.Identifier(table)
                    if rng.random() < 0.5:  # transfer between two rows
                        a, b = rng.sample(ids, 2)
                        self._timed(
                            cur,
                            sql.SQL("UPDATE {} SET balance = balance - 3 WHERE id = %s").format(name),
                            (a,),
                        )
                        self._timed(
                            cur,
                            sql.SQL("UPDATE {} SET balance = balance + 3 WHERE id = %s").format(name),
                            (b,),
                        )
                        self.tally["updates"] += 2
                    else:  # replace a row by a new one with the same balance
                        i = rng.randrange(len(ids))
                        old, new = ids[i], self.next_id
                        ((balance,),) = self._timed(
                            cur,
                            sql.SQL("DELETE FROM {} WHERE id = %s RETURNING balance").format(name),
                            (old,),
                        )
                        self._timed(
                            cur,
                            sql.SQL("INSERT INTO {} VALUES (%s, %s, %s)").format(name),
                            (new, f"new {new}", balance),
                        )
                        ids[i] = new
                        self.next_id += 1
                        self.tally["inserts"] += 1
                        self.tally["deletes"] += 1
                    conn.commit()
                    self.tally["transactions"] += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


class LockWatch(threading.Thread):
    """Samples the source's lock table: any lock request that is waiting is recorded."""

    def __init__(self, db) -> None:
        super().__init__(daemon=True, name="lock-watch")
        self.db = db
        self.stop = threading.Event()
        self.waits: list[tuple] = []
        self.samples = 0

    def run(self) -> None:
        with self.db.connect() as conn:
            while not self.stop.wait(0.02):
                self.waits += conn.execute(
                    "SELECT l.locktype, l.mode, a.application_name, a.query FROM pg_locks l "
                    "JOIN pg_stat_activity a ON a.pid = l.pid WHERE NOT l.granted AND a.datname = %s",
                    (self.db.dbname,),
                ).fetchall()
                self.samples += 1


def _invariants(db, table: str) -> tuple[int, int]:
    ((count, total),) = db.execute(
        sql.SQL("SELECT count(*), sum(balance) FROM {}").format(sql.Identifier(table))
    )
    return count, int(total)


def _stats(db) -> tuple[int, int, int]:
    ((ins, upd, dele),) = db.execute(
        "SELECT sum(n_tup_ins), sum(n_tup_upd), sum(n_tup_del) FROM pg_stat_user_tables"
    )
    return int(ins), int(upd), int(dele)


DRIFT = re.compile(
    r"drift: the source received ([\d,]+) inserts, ([\d,]+) updates and ([\d,]+) deletes since the load"
)


def test_live_source_loads_consistently_without_blocking_writers_and_verify_reports_drift(
    source_db, target_db, airflow_conn, rel, tmp_path
):
    from airflow_provider_confiture.operators import FdwSetupOperator, TableMigrateOperator, VerifyOperator

    source_db.execute(SOURCE)
    (tmp_path / "ddl").mkdir()
    (tmp_path / "ddl" / "01.sql").write_text(DDL)
    (tmp_path / "slow.yaml").write_text(SLOW)
    (tmp_path / "plain.yaml").write_text(PLAIN)
    conns = {
        "source_conn_id": airflow_conn("live_src", source_db),
        "target_conn_id": airflow_conn("live_tgt", target_db),
    }
    slow, plain = (
        {**conns, "mapping_path": str(tmp_path / "slow.yaml")},
        {**conns, "mapping_path": str(tmp_path / "plain.yaml")},
    )
    FdwSetupOperator(task_id="setup", ddl_path=str(tmp_path / "ddl"), create_database=False, **slow).execute(
        {}
    )
    rel.wait_until(lambda: _stats(source_db) == (2 * ROWS, 0, 0), what="the source's statistics to settle")

    writer, watch = Writer(source_db.conninfo()), LockWatch(source_db)
    watch.start()
    writer.start()
    try:
        rel.wait_until(lambda: writer.tally["transactions"] > 20, what="the writer to get going")
        for table, strategy in (("accounts", "copy"), ("ledger", "fdw")):
            before = writer.tally["transactions"]
            result = TableMigrateOperator(task_id="load", table=table, **slow).execute({})
            during = writer.tally["transactions"] - before
            assert result["strategy"] == strategy and result["seconds"] > 2
            assert during > 100, f"only {during} writes committed while {table} loaded"
            # One consistent snapshot: the writer's invariants hold in what was loaded.
            assert _invariants(target_db, table) == TOTALS[table]
        assert writer.error is None, writer.error

        # Verify while the writer still runs: drift, and the task fails saying so (no crash, no match).
        with raises_step(VerificationError) as caught:
            VerifyOperator(task_id="verify", **plain).execute({})
        assert "drift: the source received" in str(caught.value)
    finally:
        writer.stop.set()
        writer.join(30)
        watch.stop.set()
        watch.join(30)
    assert writer.error is None, writer.error
    assert watch.samples > 50 and watch.waits == []  # no lock request on the source ever waited
    assert writer.slowest < 1.0, f"slowest writer statement took {writer.slowest:.3f} s"

    # After the writer stopped (its backend reports its counters when it exits): counts of what changed.
    t = writer.tally
    rel.wait_until(
        lambda: _stats(source_db) == (2 * ROWS + t["inserts"], t["updates"], t["deletes"]),
        what="the writer's statistics",
    )
    report = VerifyOperator(task_id="verify", fail_on_drift=False, **plain).execute({})
    assert {c["label"]: c["status"] for c in report["tables"]} == {"accounts": "drift", "ledger": "drift"}
    seen = [0, 0, 0]
    for check in report["tables"]:
        counts = [int(n.replace(",", "")) for n in DRIFT.search(check["detail"]).groups()]
        seen = [a + b for a, b in zip(seen, counts, strict=True)]
        assert all(n > 0 for n in counts), check["detail"]
    # Everything since each load, nothing before it and nothing invented: at most what the writer did.
    assert seen[0] <= t["inserts"] and seen[1] <= t["updates"] and seen[2] <= t["deletes"], (seen, t)

    for table in ("accounts", "ledger"):
        TableMigrateOperator(task_id="reload", table=table, **plain).execute({})
    report = VerifyOperator(task_id="verify", **plain).execute({})
    assert report["ok"] and {c["status"] for c in report["tables"]} == {"match"}
    for table in ("accounts", "ledger"):
        assert rel.table_text(target_db, table) == rel.table_text(source_db, table)
