"""Faults in the middle of a load: each one fails the load with a message saying what happened, leaves
the target table exactly as it was (the sentinel rows are still there, nothing half written), and a
retry loads it completely, after which verify matches (no duplicated or missing rows).

Loads are slowed to about 1 ms per row (``rel.SLOW_MAPPING``) so that each fault lands mid-stream.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from airflow_provider_confiture.core import verify
from airflow_provider_confiture.core.db import dbapi
from airflow_provider_confiture.core.errors import MigrationError
from airflow_provider_confiture.core.loading import load
from airflow_provider_confiture.core.loading.load import LoadOptions
from airflow_provider_confiture.testing import ClusterDatabase, PostgresCluster, free_port

FAST = LoadOptions(progress_interval=3600)


def run_in_thread(fn, *args, **kwargs):
    """Start ``fn`` in a thread; returns (thread, outcome) with outcome["value"] or outcome["error"]."""
    outcome: dict = {}

    def body():
        started = time.monotonic()
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - inspected by the test
            outcome["error"] = exc
        outcome["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, outcome


def retry_and_verify(rel, connect, source_db, target_db, strategy: str, target_conn=None, source_conn=None):
    """The retry after a fault: a complete load, then verify matches and the rows are exactly the source's."""
    src = source_conn or connect(source_db)
    tgt = target_conn or connect(target_db)
    plan = rel.plan_for(src, tgt, "items", rel.PLAIN_MAPPING)
    result = load.load_table(src, tgt, plan, strategy, options=FAST)
    assert result.rows == rel.ROWS
    check = verify.verify_table(src, tgt, plan)
    assert check.status == verify.MATCH, check
    assert (check.source_rows, check.target_rows) == (rel.ROWS, rel.ROWS)
    rel.assert_target_equals_source(source_db, target_db)


def wait_mid_load(rel, source_db, target_db, strategy: str, wide: bool = False) -> None:
    """Return once the load is well under way: rows streaming out of the source (and, with wide rows,
    into the target's COPY), or postgres_fdw fetching batch after batch."""
    if strategy == "copy" and wide:
        rel.wait_until(lambda: rel.copy_progress(target_db) >= 300, what="COPY progress on the target")
    elif strategy == "copy":
        rel.wait_until(lambda: rel.copy_progress(source_db, None) >= 300, what="COPY progress on the source")
    else:
        rel.wait_until(
            lambda: rel.sessions(source_db, "application_name = 'confiture_fdw' AND query LIKE 'FETCH%%'"),
            what="postgres_fdw fetching from the source",
        )
        time.sleep(0.4)


@pytest.mark.parametrize("side", ["source", "target"])
@pytest.mark.parametrize("strategy", ["copy", "fdw"])
def test_backend_terminated_mid_load(side, strategy, source_db, target_db, connect, rel):
    rel.create_items(source_db, target_db, wide=True)
    before = rel.table_text(target_db)
    src, tgt = connect(source_db), connect(target_db)
    if strategy == "fdw":
        rel.link_up(src, tgt, rel.fdw_link(source_db), rel.PLAIN_MAPPING)
    plan = rel.plan_for(src, tgt, "items", rel.SLOW_MAPPING)
    worker_source_pid, target_pid = dbapi.backend_pid(src), dbapi.backend_pid(tgt)
    src.rollback()
    tgt.rollback()

    thread, outcome = run_in_thread(load.load_table, src, tgt, plan, strategy, options=FAST)
    wait_mid_load(rel, source_db, target_db, strategy, wide=True)
    if side == "target":
        rel.terminate(target_db, target_pid)
    elif strategy == "copy":
        rel.terminate(source_db, worker_source_pid)
    else:  # the target server's postgres_fdw session on the source
        ((fdw_pid, *_),) = rel.sessions(source_db, "application_name = 'confiture_fdw'")
        rel.terminate(source_db, fdw_pid)
    thread.join(60)
    assert not thread.is_alive(), "the load hung after its backend was terminated"

    error = outcome.get("error")
    assert isinstance(error, MigrationError), repr(error)
    message = str(error)
    assert "table public.items" in message and "rolled back, the table is unchanged" in message, message
    assert "connection was lost" in message, message
    assert rel.copy_progress(target_db) == 0
    assert rel.table_text(target_db) == before  # untouched: the sentinels, nothing else

    # Retry: the surviving connection is reused (a dead one is replaced, as a task retry would).
    retry_and_verify(
        rel,
        connect,
        source_db,
        target_db,
        strategy,
        target_conn=None if side == "target" else tgt,
        source_conn=None if (side == "source" and strategy == "copy") else src,
    )


@pytest.fixture
def extra_target():
    """A dedicated target cluster this test may stop and start (never the session's)."""
    base = Path(os.environ["AIRFLOW_HOME"]).parent / "pg"
    cluster = PostgresCluster(f"extra-target-{secrets.token_hex(3)}", base, port=free_port()).start()
    yield cluster
    cluster.destroy()


def test_target_server_stopped_mid_load_then_restarted(extra_target, source_db, connect, rel):
    target_db = ClusterDatabase(extra_target, extra_target.create_database("tgt_restart"))
    rel.create_items(source_db, target_db)
    before = rel.table_text(target_db)
    src, tgt = connect(source_db), connect(target_db)
    plan = rel.plan_for(src, tgt, "items", rel.SLOW_MAPPING)

    thread, outcome = run_in_thread(load.load_table, src, tgt, plan, "copy", options=FAST)
    wait_mid_load(rel, source_db, target_db, "copy")
    stop = subprocess.run(
        extra_target._cmd(
            [extra_target.bin_dir / "pg_ctl", "-D", extra_target.data_dir, "-m", "fast", "-w", "stop"]
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert stop.returncode == 0, stop.stderr
    thread.join(60)
    assert not thread.is_alive()
    error = outcome.get("error")
    assert isinstance(error, MigrationError), repr(error)
    assert "connection was lost" in str(error) and "table public.items" in str(error), str(error)

    extra_target._started = False
    extra_target.start()  # same port: the same target comes back
    assert rel.table_text(target_db) == before
    retry_and_verify(rel, connect, source_db, target_db, "copy", source_conn=src)


KILLED_WORKER = r"""
import os, sys
from airflow_provider_confiture.core.db import dbapi
from airflow_provider_confiture.core.loading import load
from airflow_provider_confiture.core.planning import plan_migration
from airflow_provider_confiture.core.planning.mapping import parse_mapping_text
from airflow_provider_confiture.core.planning.plan import PlanOptions
import psycopg

def connect(info):
    conn = psycopg.connect(info, autocommit=False, application_name="confiture-doomed-worker")
    dbapi.set_session(conn, dict(dbapi.DETERMINISTIC_SETTINGS))
    conn.commit()
    return conn

src, tgt = connect(os.environ["SRC"]), connect(os.environ["TGT"])
result, _ = plan_migration(src, tgt, parse_mapping_text(os.environ["MAPPING"]), PlanOptions(), ["items"])
load.load_table(src, tgt, result.get("items"), "copy", options=load.LoadOptions(progress_interval=3600))
print("finished: the kill came too late", flush=True)
"""


def test_worker_killed_mid_copy_leaves_nothing_behind(source_db, target_db, connect, rel):
    rel.create_items(source_db, target_db)
    before = rel.table_text(target_db)
    env = {
        **os.environ,
        "MAPPING": rel.SLOW_MAPPING,
        "SRC": source_db.conninfo(),
        "TGT": target_db.conninfo(),
    }
    worker = subprocess.Popen(
        [sys.executable, "-c", KILLED_WORKER],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        rel.wait_until(
            lambda: worker.poll() is not None or rel.copy_progress(source_db, None) >= 300,
            what="the worker's COPY under way",
        )
        assert worker.poll() is None, worker.communicate()
        os.kill(worker.pid, signal.SIGKILL)
        assert worker.wait(10) == -signal.SIGKILL
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()

    doomed = "application_name = 'confiture-doomed-worker'"
    # Both servers notice the dead client on their own (EOF on the socket) and roll back.
    rel.wait_until(lambda: not rel.sessions(target_db, doomed), what="the target backend to go away")
    rel.wait_until(lambda: not rel.sessions(source_db, doomed), what="the source backend to go away")
    assert rel.sessions(target_db, "state LIKE 'idle in transaction%%' OR backend_xid IS NOT NULL") == []
    locks = target_db.execute(
        "SELECT locktype, relation::regclass::text, mode FROM pg_locks WHERE pid <> pg_backend_pid() "
        "AND (locktype = 'advisory' OR relation = 'items'::regclass) "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    assert locks == []
    assert rel.copy_progress(target_db) == 0
    assert rel.table_text(target_db) == before
    retry_and_verify(rel, connect, source_db, target_db, "copy")


def test_network_black_hole_to_source_fails_within_stall_timeout(source_db, target_db, connect, rel):
    rel.create_items(source_db, target_db)
    before = rel.table_text(target_db)
    proxy = rel.BlackHoleProxy(source_db.host, source_db.port)
    try:
        src = connect(source_db.conninfo().replace(f"port={source_db.port}", f"port={proxy.port}"))
        tgt = connect(target_db)
        plan = rel.plan_for(src, tgt, "items", rel.SLOW_MAPPING)
        options = LoadOptions(stall_timeout=3, progress_interval=3600)
        thread, outcome = run_in_thread(load.load_table, src, tgt, plan, "copy", options=options)
        wait_mid_load(rel, source_db, target_db, "copy")
        holed_at = time.monotonic()
        proxy.black_hole()
        thread.join(30)
        waited = time.monotonic() - holed_at
        assert not thread.is_alive(), "the load hung on a silent network"
        error = outcome.get("error")
        assert isinstance(error, MigrationError), repr(error)
        assert "stalled" in str(error) and "stall_timeout" in str(error), str(error)
        assert 2.5 <= waited <= 8, waited  # stall_timeout (3 s) + the watchdog's 1 s tick
        rel.wait_until(lambda: rel.copy_progress(target_db) == 0, what="the target to roll back")
        assert rel.table_text(target_db) == before
    finally:
        proxy.close()
    retry_and_verify(rel, connect, source_db, target_db, "copy")


def test_slow_but_live_source_is_not_a_stall(source_db, target_db, connect, rel):
    """About 2.3 s of a trickle (a few KB at a time) with a 1 s stall_timeout: data keeps moving, so no
    stall, although the target side sees nothing until the worker's buffer fills or the stream ends."""
    rel.create_items(source_db, target_db)
    src, tgt = connect(source_db), connect(target_db)
    plan = rel.plan_for(src, tgt, "items", rel.SLOW_MAPPING)
    result = load.load_table(
        src, tgt, plan, "copy", options=LoadOptions(stall_timeout=1.0, progress_interval=3600)
    )
    assert result.rows == rel.ROWS and result.seconds > 2.0
    rel.assert_target_equals_source(source_db, target_db)


@pytest.mark.parametrize("lock_timeout", ["30s", "300ms"])
def test_two_runs_of_one_table_at_once(lock_timeout, source_db, target_db, connect, rel):
    rel.create_items(source_db, target_db)
    barrier = threading.Barrier(2)
    pairs = [(connect(source_db), connect(target_db)) for _ in range(2)]
    plans = [rel.plan_for(s, t, "items", rel.SLOW_MAPPING) for s, t in pairs]
    options = LoadOptions(lock_timeout=lock_timeout, progress_interval=3600)

    def run(i):
        barrier.wait()
        return load.load_table(pairs[i][0], pairs[i][1], plans[i], "copy", options=options)

    runs = [run_in_thread(run, i) for i in range(2)]
    for thread, _ in runs:
        thread.join(60)
        assert not thread.is_alive()
    outcomes = [o for _, o in runs]
    done = [o for o in outcomes if "value" in o]
    failed = [o for o in outcomes if "error" in o]
    if lock_timeout == "30s":  # the second run waits for the first, then loads again
        assert len(done) == 2, [o.get("error") for o in failed]
        assert all(o["value"].rows == rel.ROWS for o in done)
        first, second = sorted(done, key=lambda o: o["seconds"])
        assert second["seconds"] >= first["seconds"] + 1.5, (first["seconds"], second["seconds"])
    else:  # the second gives up after lock_timeout, saying why
        assert len(done) == 1 and len(failed) == 1
        message = str(failed[0]["error"])
        assert isinstance(failed[0]["error"], MigrationError)
        assert "another run of this migration is loading it" in message and "300ms" in message, message
        assert failed[0]["seconds"] < 3
    rel.assert_target_equals_source(source_db, target_db)
    src, tgt = pairs[0]
    check = verify.verify_table(src, tgt, rel.plan_for(src, tgt, "items", rel.PLAIN_MAPPING))
    assert check.status == verify.MATCH, check


# ------------------------------------------------------------------------------------------ timeouts
def test_statement_timeout_is_configurable_and_stops_a_slow_load(
    source_db, target_db, connect, rel, airflow_conn, tmp_path
):
    """An FDW load runs inside the target server, out of reach of the worker's stall watchdog: the
    operators' ``statement_timeout`` is what bounds it."""
    from airflow_provider_confiture.operators import TableMigrateOperator

    rel.create_items(source_db, target_db)
    before = rel.table_text(target_db)
    src, tgt = connect(source_db), connect(target_db)
    rel.link_up(src, tgt, rel.fdw_link(source_db), rel.PLAIN_MAPPING)
    (tmp_path / "mapping.yaml").write_text(rel.SLOW_MAPPING)
    op = TableMigrateOperator(
        task_id="items",
        table="items",
        strategy="fdw",
        statement_timeout="1s",
        source_conn_id=airflow_conn("st_src", source_db),
        target_conn_id=airflow_conn("st_tgt", target_db),
        mapping_path=str(tmp_path / "mapping.yaml"),
    )
    started = time.monotonic()
    with pytest.raises(MigrationError) as caught:  # a timeout can heal: raised as is, so Airflow retries
        op.execute({})
    assert caught.value.retryable
    assert time.monotonic() - started < 6
    assert "statement timeout" in str(caught.value) and "table public.items" in str(caught.value)
    assert rel.table_text(target_db) == before


def test_connection_defaults_fail_fast_instead_of_hanging(airflow_conn, source_db):
    """connect_timeout, keepalives, idle-in-transaction and read-only defaults are really applied."""
    import socket
    from types import SimpleNamespace

    from airflow_provider_confiture.core.errors import ConnectionFailedError
    from airflow_provider_confiture.hooks import connections

    closed = SimpleNamespace(host="127.0.0.1", port=free_port(), superuser="nobody", password="unused-pw")
    conn_id = airflow_conn("closed_port", closed, dbname="postgres")
    hook_extras = connections.make_hook(conn_id).connection.extra_dejson
    assert hook_extras["connect_timeout"] == 10 and hook_extras["keepalives"] == 1
    assert (
        hook_extras["keepalives_idle"] * 1
        + hook_extras["keepalives_interval"] * hook_extras["keepalives_count"]
        <= 120
    )
    started = time.monotonic()
    with pytest.raises(ConnectionFailedError) as refused, connections.connect(conn_id):
        pass
    assert time.monotonic() - started < 3
    assert f"'closed_port' (127.0.0.1:{closed.port}/postgres as 'nobody')" in str(refused.value)
    assert "Connection refused" in str(refused.value)

    # A server that accepts the TCP connection and never answers: connect_timeout bounds the wait.
    with socket.socket() as mute:
        mute.bind(("127.0.0.1", 0))
        mute.listen(8)
        silent = SimpleNamespace(
            host="127.0.0.1", port=mute.getsockname()[1], superuser="nobody", password="pw"
        )
        conn_id = airflow_conn("mute_server", silent, dbname="postgres", extra={"connect_timeout": 2})
        started = time.monotonic()
        with pytest.raises(ConnectionFailedError) as timed_out, connections.connect(conn_id):
            pass
        assert 1.5 <= time.monotonic() - started < 6
        assert "timeout expired" in str(timed_out.value)

    with connections.connect(airflow_conn("live_src", source_db), read_only=True) as conn:
        settings = conn.execute(
            "SELECT current_setting('idle_in_transaction_session_timeout'), "
            "current_setting('default_transaction_read_only'), current_setting('statement_timeout'), "
            "current_setting('application_name')"
        ).fetchone()
        assert settings == ("15min", "on", "0", "airflow-confiture")  # the libpq defaults reached the server
    with connections.connect(airflow_conn("live_src", source_db), statement_timeout="2h") as conn:
        assert conn.execute("SELECT current_setting('statement_timeout')").fetchone() == ("2h",)
    # A connection with its own libpq "options" keeps them, and still gets read-only and the timeouts.
    own = airflow_conn("own_options", source_db, extra={"options": "-c search_path=public,pg_temp"})
    with connections.connect(own, read_only=True, statement_timeout="5s") as conn:
        assert conn.execute(
            "SELECT current_setting('default_transaction_read_only'), current_setting('statement_timeout'), "
            "current_setting('search_path'), current_setting('DateStyle')"
        ).fetchone() == ("on", "5s", "public,pg_temp", "ISO, MDY")


def test_fdw_load_has_a_deadline_even_without_statement_timeout(source_db, target_db, connect, rel):
    """No step hangs forever: an FDW load gets a deadline (``fdw_timeout``; by default 30x its estimated
    time, at least 15 minutes) even when the connection has no statement_timeout; past it the load
    fails clearly and the table keeps its content."""
    from airflow_provider_confiture.core.loading import load

    rel.create_items(source_db, target_db)
    before = rel.table_text(target_db)
    src, tgt = connect(source_db), connect(target_db)
    rel.link_up(src, tgt, rel.fdw_link(source_db), rel.PLAIN_MAPPING)
    plan = rel.plan_for(src, tgt, "items", rel.SLOW_MAPPING)
    started = time.monotonic()
    with pytest.raises(MigrationError) as caught:
        load.load_table(src, tgt, plan, "fdw", options=load.LoadOptions(fdw_timeout=1.0))
    assert time.monotonic() - started < 6
    assert "statement timeout" in str(caught.value) and "table public.items" in str(caught.value)
    assert rel.table_text(target_db) == before
